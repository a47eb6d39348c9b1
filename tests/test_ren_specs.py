"""Ren et al. (ICLR 2023) specs and configs: every published number of Tables 3-6 as printed, the
Table 2 sizes, the Appendix 11 protocol, valid configs at every scale, clear errors for bad ones, and
the CLI listing, exporting and dry-running the four tables without importing jax."""

import copy
import csv
import math
import re
import subprocess
import sys

import pytest

from benchmarks.ren2023 import TABLES as ALL_TABLES, estimate_seconds, validate_config
from benchmarks.ren2023.config import ARCHS, KEYS, RUNNER_KEYS, forward_macs, protocol
from benchmarks.suite.errors import SpecError
from benchmarks.suite.spec import REQUIRED_SCALES as SCALES, expand
from helpers import ROOT, cli, needs_paper, paper_text

# The paper's tables (Fig. 8, run by the theory engine, is tested in test_theory_figures.py).
TABLES = [t for t in ALL_TABLES if t.kind == "table"]

PAPER = "001_f992f8fbb32e84c3.txt"
SPEC = {t.table: t for t in TABLES}


# ---- published numbers --------------------------------------------------------------------------

def _printed_cells(body: str, cols: tuple[str, ...]) -> dict:
    """{(row label, col): (test, train)} from a table body of the paper text, bold markup dropped.
    Every line holding 'a / b' pairs is a row: its first tab-separated field is the label."""
    cells = {}
    for line in re.sub(r"</?b>", "", body).splitlines():
        pairs = re.findall(r"(\d+\.\d+|NaN)\s*/\s*(\d+\.\d+|NaN)", line)
        if not pairs:
            continue
        label = line.split("\t")[0].strip()
        assert len(pairs) == len(cols), f"row {label!r} has {len(pairs)} cells, expected {len(cols)}"
        for col, pair in zip(cols, pairs):
            assert (label, col) not in cells
            cells[(label, col)] = pair
    return cells


def _ours(spec) -> dict:
    return {(c.row, c.col): (c.published["test_err"].value, c.published["train_err"].value) for c in spec.cells}


@needs_paper(PAPER)
def test_every_number_of_tables_3_to_6_is_in_the_specs_at_its_place_and_nothing_else():
    text = paper_text(PAPER)
    # In the text every table body precedes its caption.
    t3_start = text.index("Dataset\tMNIST")
    t3_end = text.index("Table 3: Supervised")
    t4_end = text.index("Table 4: Self-supervised")
    t5_start = text.index("\tSupervised M/8/16\t\t\t\tContrastive")
    t5_end = text.index("Table 5: Comparing")
    t6_end = text.index("Table 6: Place of LayerNorm")
    bodies = {"table3": text[t3_start:t3_end], "table4": text[t3_end:t4_end],
              "table5": text[t5_start:t5_end], "table6": text[t5_end:t6_end]}
    total = 0
    for table, body in bodies.items():
        spec = SPEC[table]
        printed = _printed_cells(body, spec.cols)
        assert printed == _ours(spec), table
        assert set(spec.rows) == {r for r, _ in printed}
        total += len(printed)
    # 11 x 4 + 11 x 3 + 3 x 8 + 4 x 6 cells: Table 5's body is in the text, so none is missing.
    assert total == 44 + 33 + 24 + 24
    assert all(p.missing is None and p.std is None for t in TABLES for c in t.cells for p in c.published.values())


def test_layout_and_special_cells():
    t3, t4, t5, t6 = (SPEC[k] for k in ("table3", "table4", "table5", "table6"))
    methods = ("BP", "L-BP", "LG-BP", "FA", "L-FA", "LG-FA", "DFA", "FG-W", "FG-A", "LG-FG-W", "LG-FG-A")
    assert t3.rows == methods and t4.rows == methods
    assert t3.cols == ("MNIST S/1/1", "MNIST M/1/16", "CIFAR-10 M/8/16", "ImageNet L/32/64")
    assert t4.cols == ("CIFAR-10 M/8/16", "CIFAR-10 L/8/64", "ImageNet L/32/64")
    assert t5.rows == ("BN", "LN", "Local LN")
    assert t6.rows == ("Begin Block", "Before Linear", "After Linear", "Before + After Linear")
    assert all(t.metrics == ("test_err", "train_err") for t in TABLES)
    nan = t6.cell("Before Linear", "Contrastive LG-BP").published
    assert nan["test_err"].value == "NaN" and math.isnan(nan["train_err"].mean)
    # Precision as printed ("0.00", not "0.0").
    assert t3.cell("BP", "MNIST S/1/1").published["train_err"].value == "0.00"
    # What each ablation cell changes.
    ng = t5.cell("BN", "Supervised LG-FG-A (NG)").config
    assert (ng["norm"], ng["norm_grad"], ng["method"], ng["objective"]) == ("bn", False, "LG-FG-A", "supervised")
    assert t5.cell("Local LN", "Contrastive LG-FG-A").config["norm_grad"] is True
    place = {**t6.defaults, **t6.cell("Begin Block", "Contrastive BP").config}
    assert (place["ln_place"], place["norm"], place["arch"]) == ("begin_block", "local_ln", "M/8/16")


# ---- Table 2 and Appendix 11 --------------------------------------------------------------------

@needs_paper(PAPER)
def test_archs_follow_table_2_as_printed():
    rows = re.findall(r"LocalMixer (\S+)\t(\d+)\t(.+?)\t(\d+)\t(\d+)\t(\S+)\t(\S+)\n", paper_text(PAPER))
    assert len(rows) == 5
    datasets = {"MNIST": "mnist", "CIFAR-10": "cifar10", "ImageNet": "imagenet"}
    for name, blocks, patches, channels, groups, params, dataset in rows:
        a = ARCHS[name]
        grid = int(re.findall(r"\d+", patches)[0])
        assert (a["num_blocks"], a["patch_grid"], a["channels"], a["groups"]) == (
            int(blocks), grid, int(channels), int(groups)), name
        assert a["params"] == params and isinstance(a["params"], str), name
        assert a["dataset"] == datasets[dataset]
    assert [a["image_size"] for a in ARCHS.values() if a["params"]] == [28, 28, 32, 32, 224]


def test_cost_model_counts_the_one_block_archs_like_table_2():
    """With one patch and one block, forward multiply-adds = parameters minus biases (Table 2)."""
    for name, biases in (("S/1/1", 256 + 256 + 10 + 10), ("M/1/16", 512 + 512 + 10 + 10)):
        config = {**ARCHS[name], "objective": "supervised", "proj_dim": None}
        params = forward_macs(config) + biases
        assert f"{round(params / 1000)}K" == ARCHS[name]["params"], (name, params)


@pytest.mark.parametrize("setting,expected", [
    (("mnist", "supervised", "S/1/1"), dict(batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, epochs=1000,
                                            schedule="linear", warmup_epochs=0, augment="none", crop_area_min=None)),
    (("cifar10", "supervised", "M/8/16"), dict(batch_size=128, optimizer="sgd", lr=0.01, epochs=200,
                                               schedule="linear", augment="none")),
    (("cifar10", "contrastive", "M/8/16"), dict(batch_size=512, optimizer="sgd", lr=1.0, epochs=1000,
                                                schedule="warmup_cosine", warmup_epochs=10, augment="byol",
                                                crop_area_min=0.5)),
    (("cifar10", "contrastive", "L/8/64"), dict(batch_size=2048, lr=4.0, epochs=1000, crop_area_min=0.3)),
    (("imagenet", "supervised", "L/32/64"), dict(batch_size=256, optimizer="sgd", lr=0.05, momentum=0.9,
                                                 epochs=120, schedule="warmup_cosine", warmup_epochs=10,
                                                 augment="byol", crop_area_min=0.3)),
    (("imagenet", "contrastive", "L/32/64"), dict(batch_size=2048, optimizer="lars", lr=0.1, momentum=0.9,
                                                  epochs=800, crop_area_min=0.08, warmup_epochs=10)),
])
def test_protocol_is_appendix_11(setting, expected):
    p = protocol(*setting)
    assert {k: p[k] for k in expected} == expected
    # Completed from the authors' code (IMPLEMENTATION_NOTES section 1).
    assert p["weight_decay"] == 1e-4
    contrastive = setting[1] == "contrastive"
    assert (p["temperature"], p["proj_dim"], p["readout_lr"]) == ((0.5, 128, 0.01) if contrastive else (None,) * 3)


def test_protocol_rejects_what_the_paper_did_not_run():
    with pytest.raises(SpecError, match="no contrastive protocol for mnist"):
        protocol("mnist", "contrastive", "S/1/1")
    with pytest.raises(SpecError, match="tiny"):
        protocol("cifar10", "supervised", "tiny")


# ---- expansion and validation -------------------------------------------------------------------

def test_every_cell_expands_to_a_valid_fully_resolved_config_at_every_scale():
    schema = set(KEYS) | {"paper", "seed"}
    for spec in TABLES:
        for scale in SCALES:
            runs = expand(spec, scale)
            assert len(runs) == len(spec.cells) * {"smoke": 1, "small": 2, "full": 1}[scale]
            for run in runs:
                config = run["config"]
                # smoke also sets the optional xla_opt_level (test_compile_cache)
                expected = schema | ({"xla_opt_level"} if scale == "smoke" else set())
                assert set(config) == expected, (spec.id, scale, set(config) ^ expected)
                validate_config(config)
                assert estimate_seconds(config) > 0
                if scale == "smoke":
                    assert config["arch"] == "tiny" and config["epochs"] == 1 and config["n_train"] <= 512
                if scale == "full":
                    assert config["arch"] in ARCHS and config["arch"] != "tiny"
                    assert config["n_train"] is None and config["channels"] == ARCHS[config["arch"]]["channels"]


def test_full_scale_is_the_papers_protocol_and_small_keeps_the_real_mnist_archs():
    full = {r["col"]: r["config"] for r in expand(SPEC["table3"], "full", rows=["LG-FG-A"])}
    assert full["ImageNet L/32/64"]["image_size"] == 224 and full["ImageNet L/32/64"]["patch_grid"] == 32
    for config in full.values():
        dataset, arch = config["dataset"], config["arch"]
        assert {k: config[k] for k in protocol(dataset, "supervised", arch)} == protocol(dataset, "supervised", arch)
    small = {r["col"]: r["config"] for r in expand(SPEC["table3"], "small", rows=["BP"])}
    s = small["MNIST S/1/1"]
    assert (s["arch"], s["channels"], s["groups"], s["n_train"], s["n_test"]) == ("S/1/1", 256, 1, 4000, 1000)
    assert small["MNIST M/1/16"]["channels"] == 512
    assert small["CIFAR-10 M/8/16"]["channels"] < 512  # narrowed, and the scale note says so
    assert "128 channels" in SPEC["table3"].scales["small"].note


def test_identical_cells_of_different_tables_are_the_same_run():
    """Table 6's default row is Table 5's Local LN row and Table 3/4's CIFAR-10 M/8/16 cells: one run."""
    for scale in SCALES:
        ids = {(r["table"].split("/")[1], r["row"], r["col"]): r["run_id"]
               for t in TABLES for r in expand(t, scale, seeds=1)}
        for m in ("BP", "LG-BP", "LG-FG-A"):
            sup = {ids[("table3", m, "CIFAR-10 M/8/16")], ids[("table5", "Local LN", f"Supervised {m}")],
                   ids[("table6", "Before + After Linear", f"Supervised {m}")]}
            con = {ids[("table4", m, "CIFAR-10 M/8/16")], ids[("table5", "Local LN", f"Contrastive {m}")],
                   ids[("table6", "Before + After Linear", f"Contrastive {m}")]}
            assert len(sup) == 1 and len(con) == 1, (scale, m)
        assert ids[("table5", "LN", "Supervised BP")] != ids[("table5", "Local LN", "Supervised BP")]


def _good_config(objective="supervised"):
    spec = SPEC["table3"] if objective == "supervised" else SPEC["table4"]
    return copy.deepcopy(expand(spec, "smoke", rows=["LG-FG-A"], cols=["CIFAR-10"])[0]["config"])


@pytest.mark.parametrize("key,value,needle", [
    ("method", "LG-FG-X", "unknown method 'LG-FG-X'"),
    ("arch", "Q/1/1", "unknown arch 'Q/1/1'"),
    ("dataset", "svhn", "unknown dataset 'svhn'"),
    ("norm", "gn", "unknown norm 'gn'"),
    ("ln_place", "end_block", "unknown ln_place 'end_block'"),
    ("objective", "rl", "unknown objective 'rl'"),
    ("optimizer", "adam", "unknown optimizer 'adam'"),
    ("schedule", "step", "unknown schedule 'step'"),
    ("augment", "autoaugment", "unknown augment 'autoaugment'"),
    ("epochs", "10", "'epochs' must be an integer"),
    ("epochs", 0, "'epochs' must be >= 1"),
    ("lr", True, "'lr' must be a number"),
    ("norm_grad", 1, "'norm_grad' must be true or false"),
    ("channels", 15, "'channels' (15) must be divisible by 'groups'"),
    ("patch_grid", 3, "'image_size' (32) must be divisible by 'patch_grid' (3)"),
    ("momentum", 1.5, "'momentum'"),
    ("temperature", 0.5, "'temperature' applies to contrastive runs only"),
    ("crop_area_min", 0.3, "'crop_area_min' must be null"),
    ("warmup_epochs", 2, "'warmup_epochs' must be 0 or below"),
    ("lr", None, "'lr' must not be null"),
    ("lr_decay", 0.95, "unknown key 'lr_decay'"),
])
def test_validate_config_names_the_bad_key(key, value, needle):
    config = _good_config()
    validate_config(config)
    config[key] = value
    with pytest.raises(SpecError, match=re.escape(needle)):
        validate_config(config)


def test_validate_config_checks_presence_and_contrastive_keys():
    config = _good_config()
    del config["ln_place"]
    with pytest.raises(SpecError, match="missing key 'ln_place'"):
        validate_config(config)
    config = _good_config("contrastive")
    validate_config(config)
    config["proj_dim"] = None
    with pytest.raises(SpecError, match="'proj_dim' is needed by contrastive runs"):
        validate_config(config)
    assert set(RUNNER_KEYS) >= {"paper", "seed", "data_source"}


def test_cost_estimate_grows_with_work():
    config = _good_config()
    longer = {**config, "epochs": 10}
    wider = {**config, "channels": 64, "groups": 2}
    assert estimate_seconds(longer) > estimate_seconds(config) and estimate_seconds(wider) > estimate_seconds(config)
    full = expand(SPEC["table3"], "full", rows=["BP"], cols=["CIFAR-10"])[0]["config"]
    assert estimate_seconds(full) > 100 * estimate_seconds(config)


# ---- imports and CLI ----------------------------------------------------------------------------

def test_package_imports_no_framework():
    code = ("import sys, benchmarks.ren2023; "
            "assert not {'torch', 'jax', 'flax', 'optax', 'torchvision'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_cli_lists_exports_and_dry_runs_the_four_tables(tmp_path):
    out = cli("--list")
    assert out.returncode == 0, out.stderr
    for t in ("table3 ", "table4 ", "table5 ", "table6 "):
        assert f"ren2023/{t}" in out.stdout
    assert re.search(r"ren2023/table3\s+44\s+88\s+44/88/-/44", out.stdout)

    csv_path = tmp_path / "pub.csv"
    assert cli("--tables", "ren2023", "--export-published", str(csv_path)).returncode == 0
    rows = list(csv.reader(csv_path.open()))
    ren_tables = [r for r in rows[1:] if r[0] != "ren2023/fig8"]  # Fig. 8: 2 metrics x 15 curves, missing
    assert len(ren_tables) == 2 * (44 + 33 + 24 + 24) and len(rows) == 1 + len(ren_tables) + 30
    assert ["ren2023/table6", "Before Linear", "Contrastive LG-BP", "test_err", "NaN", ""] in rows
    assert ["ren2023/table3", "LG-FG-A", "ImageNet L/32/64", "train_err", "44.86", ""] in rows

    dry = cli("--tables", "ren2023/table3", "ren2023/table4", "ren2023/table5", "ren2023/table6", "--scale",
              "smoke", "--dry-run", "--results-dir", str(tmp_path / "r"))
    assert dry.returncode == 0, dry.stderr
    assert "125 runs" in dry.stdout and "estimated cost" in dry.stdout
    assert not (tmp_path / "r").exists()
