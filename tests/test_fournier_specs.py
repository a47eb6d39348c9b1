"""Fournier et al. (ICML 2023) specs: every published number of Tables 2-12 is transcribed exactly and
lands in exactly one cell, the learning rates follow Appendix A.3, every cell expands at every scale to
a config the validator accepts, bad configs are rejected naming the key, and the CLI lists, exports
and plans the tables. Importing the package must not import torch."""

import csv
import re
import subprocess
import sys
from collections import Counter

import pytest

from benchmarks.fournier2023 import (
    TABLES,
    estimate_seconds,
    learning_rate,
    protocol,
    validate_config,
)
from benchmarks.fournier2023.config import SCHEMA_KEYS, make_config
from benchmarks.fournier2023.specs import TABLE3_RANDOM_MISSING, TRANSCRIPTIONS, grid
from benchmarks.suite.errors import SpecError
from benchmarks.suite.spec import REQUIRED_SCALES as SCALES, Published, expand
from helpers import ROOT, cli, needs_paper, paper_text

PAPER = "002_65102d1a440d7cf2.txt"
NUMBER = re.compile(r"\d+\.\d+(?: ± \d+\.\d+)?")
BY_ID = {t.table: t for t in TABLES}


def published(table_number: str) -> list[tuple[str, str | None]]:
    return [(c.published["test_acc"].value, c.published["test_acc"].std)
            for c in BY_ID[f"table{table_number}"].cells if c.published["test_acc"].missing is None]


def printed_tables(text: str) -> dict[str, list[list[str]]]:
    """Each table's printed value rows from the paper text: its tab-separated lines after its caption,
    the last n fields of each (n = the table's value columns), '' as '-'; header lines dropped."""
    out, current = {}, None
    for line in text.splitlines():
        caption = re.match(r"Table (\d+)\. ", line)
        if caption:
            current = caption.group(1)
            out[current] = []
            continue
        if "\t" not in line or current not in TRANSCRIPTIONS or line.startswith("Width factor"):
            continue  # Table 1 has no numbers; Table 8's header names the widths 0.5, 2, 4
        n = len(grid(TRANSCRIPTIONS[current])[0][1])
        fields = line.split("\t")
        values = [v.strip() or "-" for v in fields[-n:]]
        if not any(NUMBER.fullmatch(v) for v in values):
            continue  # a header line
        labels = [f.strip() for f in fields[:-n]]
        # No number hides among the labels, except Table 10's width label "0.5".
        assert not [f for f in labels if NUMBER.fullmatch(f) and not (current == "10" and f == "0.5")], line
        out[current].append(values)
    return out


def _split(value: str) -> tuple[str, str | None]:
    mean, _, std = (v.strip() for v in value.partition("±"))
    return mean, std or None


# ---- published numbers --------------------------------------------------------------------------

@needs_paper(PAPER)
def test_transcriptions_are_the_paper_tables_value_by_value():
    printed = printed_tables(paper_text(PAPER))
    assert sorted(printed, key=int) == [str(n) for n in range(1, 13)]
    for number, text in TRANSCRIPTIONS.items():
        ours = [values for _, values in grid(text)]
        assert ours == printed[number], f"Table {number} differs from the paper text"


@needs_paper(PAPER)
def test_every_printed_number_is_in_exactly_one_cell_and_nothing_else_is():
    text = paper_text(PAPER)
    printed = printed_tables(text)
    for number in TRANSCRIPTIONS:
        from_paper = Counter(_split(v) for row in printed[number] for v in row if v != "-")
        assert Counter(published(number)) == from_paper, f"Table {number}"
    # Every '±' of the paper is a table entry, so no table region was skipped.
    n_std = sum(1 for t in TABLES for c in t.cells if c.published["test_acc"].std is not None)
    assert n_std == text.count("±") == 354


def test_seed_counts_follow_the_print():
    """'mean ± std' is over 4 runs (captions); a single number is one run."""
    for t in TABLES:
        for c in t.cells:
            p = c.published["test_acc"]
            if p.missing is None:
                assert p.n == (4 if p.std is not None else 1), (t.id, c.row, c.col)
    assert {t.table: t.seeds for t in TABLES if t.seeds == 1} == {"table5": 1, "table11": 1, "table12": 1}
    assert {t.table: t.scales["full"].seeds for t in TABLES}["table2"] == 4


def test_table3_random_rows_are_defined_but_missing_with_the_reason():
    t3 = BY_ID["table3"]
    for row in ("Gaussian", "Rademacher"):
        for col in t3.cols:
            cell = t3.cell(row, col)
            assert cell.published["test_acc"] == Published(None, missing=TABLE3_RANDOM_MISSING)
            assert cell.config["guess"] == row.lower() and cell.config["target"] == "global"
            assert cell.config["aux"] is None and cell.config["n_blocks"] == 8
    assert "lost" in TABLE3_RANDOM_MISSING and "Random Guesses" in TABLE3_RANDOM_MISSING
    assert sum(1 for c in t3.cells if c.published["test_acc"].missing) == 8


@pytest.mark.parametrize("table,row,col,value,config", [
    ("table2", "End-to-End", "CIFAR-10 Activity", ("94.3", "0.1"),
     {"algorithm": "e2e", "space": None, "n_blocks": 16, "dataset": "cifar10"}),
    ("table2", "End-to-End", "ImageNet32 Activity", ("53.7", None), {"algorithm": "e2e", "dataset": "imagenet32"}),
    ("table2", "NTK MLP", "ImageNet32 Weight", ("3.9", None),
     {"guess": "ntk", "aux": "mlp", "space": "weight", "target": "global"}),
    ("table4", "16b Local learning", "MLP Activity", ("89.4", "0.3"),
     {"algorithm": "local", "aux": "mlp", "n_blocks": 16, "target": None, "guess": None}),
    ("table5", "Rademacher Linear tgt", "16b Activity", ("43.6", None),
     {"target": "intermediate", "guess": "rademacher", "aux": "linear", "n_blocks": 16}),
    ("table6", "16b Local Guess MLP", "CIFAR-10 Activity", ("77.9", "3.3"),
     {"projection": "span", "guess": "local", "aux": "mlp", "space": "activity", "n_blocks": 16}),
    ("table7", "8b Local Linear", "CIFAR-100 Activity", ("50.0", "9.8"),
     {"dataset": "cifar100", "n_blocks": 8, "aux": "linear", "space": "activity"}),
    ("table7", "16b End-to-End", "Imagenette Activity", ("88.9", "0.4"),
     {"dataset": "imagenette", "stem": "imagenet", "n_blocks": 16}),
    ("table8", "End-to-End", "k=2 Activity", ("94.9", "0.0"), {"width_factor": 2.0, "algorithm": "e2e"}),
    ("table8", "Random Gaussian", "k=4 Activity", ("29.6", "2.3"), {"width_factor": 4.0, "guess": "gaussian"}),
    ("table9", "8b MLP Gaussian Guess", "CIFAR-100 Activity", ("6.6", "1.8"),
     {"dataset": "cifar100", "n_blocks": 8, "aux": "mlp", "guess": "gaussian", "target": "local", "space": "activity"}),
    ("table9", "16b Linear Local learning", "Imagenette Activity", ("83.2", "0.6"),
     {"dataset": "imagenette", "n_blocks": 16, "aux": "linear", "algorithm": "local"}),
    ("table9", "16b CNN Rademacher Guess", "Fashion-MNIST Weight", ("85.3", "0.5"),
     {"dataset": "fashion_mnist", "augment": False, "space": "weight", "guess": "rademacher"}),
    ("table10", "Linear Gaussian Guess", "k=2 Activity", ("24.9", "7.8"),
     {"width_factor": 2.0, "aux": "linear", "guess": "gaussian", "target": "local", "n_blocks": 16}),
    ("table10", "MLP Local learning", "k=4 Activity", ("91.7", "0.3"), {"width_factor": 4.0, "algorithm": "local"}),
    ("table11", "Fixed NTK Linear", "16b Weight", ("60.5", None), {"guess": "fixed_ntk", "aux": "linear"}),
    ("table12", "Local Target Local learning", "16b Activity", ("86.8", None),
     {"algorithm": "local", "aux": "predsim", "aux_hidden": None, "n_blocks": 16}),
])
def test_cells_sit_where_the_paper_prints_them(table, row, col, value, config):
    cell = BY_ID[table].cell(row, col)
    assert (cell.published["test_acc"].value, cell.published["test_acc"].std) == value
    assert {k: cell.config[k] for k in config} == config


def test_numbers_spanning_two_columns_are_one_cell():
    for table, row, cols in [("table2", "End-to-End", ("CIFAR-10", "ImageNet32")),
                             ("table4", "8b Local learning", ("CNN", "MLP", "Linear")),
                             ("table12", "Local Target Local learning", ("8b", "16b"))]:
        spec = BY_ID[table]
        for prefix in cols:
            assert spec.cell(row, f"{prefix} Activity") is not None
            assert spec.cell(row, f"{prefix} Weight") is None


def test_rows_and_columns_select_by_word():
    t3 = BY_ID["table3"]
    assert t3.rows[:4] == ("End-to-End", "Local CNN", "Local MLP", "Local Linear")
    assert t3.cols == ("CIFAR-10 Activity", "CIFAR-10 Weight", "ImageNet32 Activity", "ImageNet32 Weight")
    runs = expand(t3, "small", cols=["CIFAR-10"], rows=["End-to-End", "Local CNN", "NTK CNN", "Gaussian"])
    # The small run the lead executes: 7 cells x 2 seeds, all on the real Fashion-MNIST stand-in.
    assert len(runs) == 14 and {r["config"]["dataset"] for r in runs} == {"fashion_mnist"}
    assert {r["row"] for r in expand(t3, "smoke", rows=["CNN"])} == {"Local CNN", "NTK CNN"}


# ---- learning rates (Appendix A.3) --------------------------------------------------------------

def _lr(table, row, col):
    c = BY_ID[table].cell(row, col).config
    return c["lr"], c["lr_step"], c["lr_gamma"]


def test_cifar10_learning_rates_follow_a3():
    # "0.005 for Random Guesses (except for the activity-perturbed with a Global Target ... 0.01)"
    assert _lr("table2", "Gaussian", "CIFAR-10 Activity") == (0.01, 30, 0.2)
    assert _lr("table2", "Rademacher", "CIFAR-10 Weight") == (0.005, 30, 0.2)
    assert _lr("table4", "8b Gaussian Guess", "CNN Activity")[0] == 0.005  # local target: no exception
    assert _lr("table5", "Gaussian CNN tgt", "8b Activity")[0] == 0.005
    # "as well as the 16-blocks Local Linear Guess (activity-perturbed)"
    assert _lr("table2", "Local Linear", "CIFAR-10 Activity")[0] == 0.005
    assert _lr("table2", "Local Linear", "CIFAR-10 Weight")[0] == 0.05
    assert _lr("table3", "Local Linear", "CIFAR-10 Activity")[0] == 0.05
    # "NTK Guesses uses a lr of 0.01 in the 16 blocks case (as for the Wide ResNet)"
    assert _lr("table2", "NTK CNN", "CIFAR-10 Weight")[0] == 0.01
    assert _lr("table8", "NTK MLP", "k=4 Activity")[0] == 0.01
    assert _lr("table3", "NTK CNN", "CIFAR-10 Weight")[0] == 0.05
    # "With all other Gradient Guesses, the lr is 0.05."
    assert _lr("table3", "End-to-End", "CIFAR-10 Activity") == (0.05, 30, 0.2)
    assert _lr("table4", "16b Local learning", "CNN Activity")[0] == 0.05
    assert _lr("table11", "Fixed NTK CNN", "16b Weight")[0] == 0.01  # Fixed NTK read as NTK


def test_other_dataset_learning_rates_follow_a3():
    # "CIFAR-100 uses the same lr as CIFAR-10 for the NTK guesses."
    assert _lr("table7", "16b NTK CNN", "CIFAR-100 Activity")[0] == 0.01
    assert _lr("table7", "8b NTK CNN", "CIFAR-100 Activity")[0] == 0.05
    # "Fashion-MNIST uses a lr of 0.01 for activity-perturbed NTK guesses and 0.05 for the weight-perturbed"
    assert _lr("table7", "8b NTK MLP", "Fashion-MNIST Activity")[0] == 0.01
    assert _lr("table7", "8b NTK MLP", "Fashion-MNIST Weight")[0] == 0.05
    # "Imagenette uses a lr of 0.05 for all NTK guesses. The Random Guesses have a lr of 0.005."
    assert _lr("table7", "16b NTK Linear", "Imagenette Activity")[0] == 0.05
    assert _lr("table7", "16b Gaussian", "Imagenette Activity")[0] == 0.005
    assert _lr("table9", "8b CNN Gaussian Guess", "CIFAR-100 Weight")[0] == 0.005
    # "end-to-end learning, local learning and local guesses use a lr of 0.05" (no 16-block Linear exception)
    assert _lr("table7", "16b Local Linear", "CIFAR-100 Activity")[0] == 0.05
    assert _lr("table9", "16b MLP Local learning", "Fashion-MNIST Activity")[0] == 0.05


def test_imagenet32_learning_rates_and_steps_follow_a3():
    col_a, col_w = "ImageNet32 Activity", "ImageNet32 Weight"
    # "For the End-to-End training, a lr of 0.05 with step size 20."
    assert _lr("table2", "End-to-End", col_a) == _lr("table3", "End-to-End", col_a) == (0.05, 20, 0.1)
    # 16 blocks: "local guess activity perturbed have a lr of 0.01 with step size 30 and weight perturbed a
    # lr of 0.1 with step size 20"; "The NTK guess have a lr of 0.005 with step size 30 (except the CNN
    # auxiliary, with lr 0.01)"; "Random guesses have a step size of 30 with a lr of 0.001 for the
    # activity perturbed and 0.005 for the weight perturbed."
    assert _lr("table2", "Local MLP", col_a) == (0.01, 30, 0.1)
    assert _lr("table2", "Local MLP", col_w) == (0.1, 20, 0.1)
    assert _lr("table2", "NTK CNN", col_w)[:2] == (0.01, 30)
    assert _lr("table2", "NTK Linear", col_a)[:2] == (0.005, 30)
    assert _lr("table2", "Gaussian", col_a)[:2] == (0.001, 30)
    assert _lr("table2", "Rademacher", col_w)[:2] == (0.005, 30)
    # 8 blocks: "local guesses have a lr of 0.05 for the CNN auxiliary, 0.01 for the linear auxiliary and
    # the activity-perturbed MLP auxiliary, and 0.1 for the weight-perturbed MLP auxiliary. Activity-
    # perturbed CNN and Linear auxiliary and the weight-perturbed MLP auxiliary have a step size of 20,
    # and the other 30."
    assert _lr("table3", "Local CNN", col_a)[:2] == (0.05, 20)
    assert _lr("table3", "Local CNN", col_w)[:2] == (0.05, 30)
    assert _lr("table3", "Local Linear", col_a)[:2] == (0.01, 20)
    assert _lr("table3", "Local MLP", col_a)[:2] == (0.01, 30)
    assert _lr("table3", "Local MLP", col_w)[:2] == (0.1, 20)
    # "NTK guesses have a step size of 30 and lr of 0.001 for the CNN auxiliary, and the MLP and Linear
    # activity-perturbed auxiliaries. The others have a lr of 0.005."
    assert _lr("table3", "NTK CNN", col_w)[:2] == (0.001, 30)
    assert _lr("table3", "NTK Linear", col_a)[:2] == (0.001, 30)
    assert _lr("table3", "NTK MLP", col_w)[:2] == (0.005, 30)


def test_protocol_per_dataset():
    cifar, inet, fashion, nette = (protocol(d) for d in ("cifar10", "imagenet32", "fashion_mnist", "imagenette"))
    assert (cifar["epochs"], cifar["lr_step"], cifar["lr_gamma"]) == (100, 30, 0.2)
    assert (inet["epochs"], inet["lr_step"], inet["lr_gamma"]) == (70, 20, 0.1)
    assert cifar["momentum"] == 0.9 and cifar["weight_decay"] == 5e-4 and cifar["batch_size"] == 128
    assert cifar["augment"] and not fashion["augment"] and fashion["image_size"] == 28
    assert nette["stem"] == "imagenet" and cifar["stem"] == "small"
    with pytest.raises(SpecError, match="mnist"):
        learning_rate("mnist", 8, "e2e")


# ---- expansion and validation -------------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
def test_every_cell_expands_to_a_valid_config_at_every_scale(scale):
    for t in TABLES:
        runs = expand(t, scale)
        for run in runs:
            config = dict(run["config"], data_source="synthetic")
            validate_config(config)
            assert set(SCHEMA_KEYS) <= set(config)
            assert estimate_seconds(config) > 0
        # Two cells of one table are never the same experiment (they would share one record).
        seed0 = [r["run_id"] for r in runs if r["seed"] == 0]
        assert len(seed0) == len(set(seed0)) == len(t.cells), (t.id, scale)


def test_scales_narrow_and_substitute_as_their_notes_say():
    t3, t7, t8 = BY_ID["table3"], BY_ID["table7"], BY_ID["table8"]
    smoke = {(r["row"], r["col"]): r["config"] for r in expand(t3, "smoke")}
    assert {c["width_factor"] for c in smoke.values()} == {0.0625}
    assert {(c["epochs"], c["n_train"], c["n_test"]) for c in smoke.values()} == {(1, 64, 64)}
    assert smoke[("Local CNN", "ImageNet32 Weight")]["dataset"] == "imagenet32"
    small = {(r["row"], r["col"]): r["config"] for r in expand(t3, "small", seeds=1)}
    assert small[("Local CNN", "CIFAR-10 Weight")]["dataset"] == "fashion_mnist"
    assert small[("Local CNN", "CIFAR-10 Weight")]["augment"] is False
    # the stand-in is downsampled to 14 px and the net widened to 0.25 (specs docstring: why)
    assert small[("Local CNN", "CIFAR-10 Weight")]["image_size"] == 14
    assert small[("Local CNN", "CIFAR-10 Weight")]["width_factor"] == 0.25
    assert "downsampled to 14 px" in t3.scales["small"].note
    assert small[("Local CNN", "ImageNet32 Weight")]["dataset"] == "imagenet32"  # not substituted
    assert "substitution: real Fashion-MNIST for CIFAR-10" in t3.scales["small"].note
    t2 = BY_ID["table2"]
    small2 = {(r["row"], r["col"]): r["config"] for r in expand(t2, "small", seeds=1)}
    assert small2[("Local CNN", "CIFAR-10 Weight")]["dataset"] == "mnist"  # packaged digits, no data root
    assert "substitution: MNIST digits for CIFAR-10" in t2.scales["small"].note
    small7 = {(r["row"], r["col"]): r["config"] for r in expand(t7, "small", seeds=1)}
    assert small7[("8b Local CNN", "Fashion-MNIST Weight")]["dataset"] == "fashion_mnist"  # itself, a subset
    assert small7[("8b Local CNN", "Fashion-MNIST Weight")]["n_train"] == 4000
    assert small7[("8b Local CNN", "CIFAR-100 Weight")]["dataset"] == "cifar100"
    assert expand(t7, "smoke", rows=["8b Local CNN"], cols=["Imagenette"])[0]["config"]["image_size"] == 64
    widths = {r["col"]: r["config"]["width_factor"] for r in expand(t8, "smoke", rows=["End-to-End"])}
    assert widths == {"k=0.5 Activity": 0.03125, "k=2 Activity": 0.125, "k=4 Activity": 0.25}
    small_widths = {r["col"]: r["config"]["width_factor"] for r in expand(t8, "small", seeds=1, rows=["End-to-End"])}
    assert small_widths == {"k=0.5 Activity": 0.125, "k=2 Activity": 0.5, "k=4 Activity": 1.0}
    assert {r["config"]["width_factor"] for r in expand(t8, "full")} == {0.5, 2.0, 4.0}
    for t in TABLES:
        assert len(expand(t, "full")) == len(t.cells) * t.seeds


def _valid():
    return dict(BY_ID["table3"].cell("Local CNN", "CIFAR-10 Weight").config, seed=0, paper="fournier2023",
                data_source="synthetic")


E2E_KEEPING_GUESS = {"algorithm": "e2e", "target": None, "space": None, "projection": None, "aux": None,
                     "aux_hidden": None, "aux_depth": None}


@pytest.mark.parametrize("change,key", [
    ({"dataset": "svhn"}, "dataset"),
    ({"algorithm": "dfa"}, "algorithm"),
    ({"target": "above"}, "target"),
    ({"guess": "random"}, "guess"),
    ({"aux": "resnet"}, "aux"),
    ({"space": "avg-weight"}, "space"),
    ({"projection": "sign"}, "projection"),
    ({"guess": None}, "guess"),  # fg without a guess
    (E2E_KEEPING_GUESS, "guess"),  # e2e with a guess
    ({"algorithm": "local", "target": None, "space": None, "projection": None}, "guess"),
    ({"target": "local", "guess": "local"}, "guess"),  # that is local learning
    ({"guess": "gaussian"}, "aux"),  # a random guess of the global target has no auxiliary
    ({"projection": "span"}, "space"),  # span is Table 6's activity-space projection
    ({"epochs": "10"}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"batch_size": True}, "batch_size"),
    ({"augment": 1}, "augment"),
    ({"n_blocks": 12}, "n_blocks"),
    ({"image_size": 64}, "image_size"),
    ({"aux_hidden": None}, "aux_hidden"),
    ({"lr": -0.1}, "lr"),
    ({"lr_gamma": 2.0}, "lr_gamma"),
    ({"width_factor": 0.001}, "width_factor"),
    ({"n_train": 0}, "n_train"),
    ({"lr_sched": "cosine"}, "lr_sched"),
    ({"optimizer": "adam"}, "optimizer"),
])
def test_validate_config_rejects_bad_configs_naming_the_key(change, key):
    config = {**_valid(), **change}
    validate_config(_valid())
    with pytest.raises(SpecError) as err:
        validate_config(config)
    msg = str(err.value)
    assert f"{key}=" in msg or f"'{key}'" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("key", ["lr", "space", "aux_depth", "seed"])
def test_validate_config_names_a_missing_key(key):
    config = _valid()
    del config[key]
    with pytest.raises(SpecError, match=f"missing key '{key}'"):
        validate_config(config)


def test_make_config_rejects_impossible_cells():
    with pytest.raises(SpecError, match="guess"):
        make_config("cifar10", 8, "fg", target="global", aux="cnn", space="weight")
    with pytest.raises(SpecError, match="aux"):
        make_config("cifar10", 8, "local")
    with pytest.raises(SpecError, match="local learning"):
        make_config("imagenet32", 8, "local", aux="cnn")  # A.3 has no such learning rate


def test_estimate_seconds_scales_with_work():
    base = dict(_valid(), n_train=1000, n_test=100, epochs=2)
    e2e = dict(base, **E2E_KEEPING_GUESS, guess=None)
    assert estimate_seconds(base) > 1.9 * estimate_seconds(e2e) - 2  # fg: target + guess passes
    assert estimate_seconds(dict(base, epochs=4)) - 1 == pytest.approx(2 * (estimate_seconds(base) - 1))
    assert estimate_seconds(dict(base, width_factor=2.0)) > 3 * estimate_seconds(base)
    small_stem = dict(base, dataset="imagenette", image_size=128, stem="small")
    assert estimate_seconds(dict(small_stem, stem="imagenet")) < estimate_seconds(small_stem) / 8


# ---- package and CLI ----------------------------------------------------------------------------

def test_importing_the_package_imports_no_framework():
    code = ("import sys, benchmarks.fournier2023 as f; assert f.TABLES and callable(f.train); "
            "assert not {'torch', 'torchvision', 'jax'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_cli_lists_exports_and_plans_the_tables(tmp_path):
    out = cli("--list")
    assert out.returncode == 0, out.stderr
    for t in TABLES:
        assert t.id in out.stdout
    csv_path = tmp_path / "pub.csv"
    exp = cli("--export-published", str(csv_path))
    assert exp.returncode == 0, exp.stderr
    rows = [r for r in csv.reader(csv_path.open()) if r[0].startswith("fournier2023/")]
    assert len(rows) == sum(len(t.cells) for t in TABLES) == 470
    assert ["fournier2023/table9", "8b MLP Gaussian Guess", "CIFAR-100 Activity", "test_acc", "6.6", "1.8"] in rows
    assert ["fournier2023/table3", "Gaussian", "CIFAR-10 Weight", "test_acc", "missing", ""] in rows
    dry = cli("--tables", "fournier2023", "--scale", "smoke", "--dry-run", "--results-dir", str(tmp_path / "r"))
    assert dry.returncode == 0, dry.stderr
    assert "470 to run" in dry.stdout and "estimated cost" in dry.stdout
    assert not (tmp_path / "r").exists()
