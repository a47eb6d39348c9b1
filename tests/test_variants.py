"""Fidelity variants: a variant changes only the keys it names (and the run id), the baseline keeps the
ids of a spec without variants, unknown names are exit 2 with the list, reports never mix variants."""

import json

import pytest

from benchmarks.bacho2024.specs import TABLE1, TABLE2, TABLE_B6, VARIANTS
from benchmarks.suite import report
from benchmarks.suite.errors import SpecError, UserError
from benchmarks.suite.spec import (PAPER, Cell, Change, Published, Scale, TableSpec, Variant, expand, run_id,
                                   variant_changes)
from benchmarks.suite.store import record_path, write_record
from helpers import cli

SCALES = {s: Scale(note=f"{s} note") for s in ("smoke", "small", "full")}


def demo(variants=(), chosen=None, **over):
    P = Published
    cells = (Cell("BP", "A", {"rule": "bp", "lr": 1.0}, {"test_acc": P("90.0", "0.5", 3)}),
             Cell("FG", "A", {"rule": "fg", "lr": 1.0}, {"test_acc": P("80.0", "1.0", 3)}))
    kw = dict(id="demo/t1", paper="demo", title="Demo", source="Demo, Table 1", metrics=("test_acc",),
              rows=("BP", "FG"), cols=("A",), defaults={"bn": False, "width": 8}, cells=cells, seeds=2,
              scales=SCALES, variants=tuple(variants), chosen=chosen or {})
    kw.update(over)
    return TableSpec(**kw)


CODE = Variant("code", "the code", (Change({"bn": True}, source="net.py"),
                                    Change({"lr": 2.0}, when={"rule": "fg"}, source="main.py --lr")))
FGONLY = Variant("fgonly", "one decision", (Change({"lr": 3.0}, when={"rule": ["fg", "other"]}, source="Alg. 1"),))


def test_a_variant_changes_only_the_keys_it_names_and_the_run_id():
    spec = demo([CODE, FGONLY])
    base = {(r["row"], r["seed"]): r for r in expand(spec, "full", variant=PAPER)}
    code = {(r["row"], r["seed"]): r for r in expand(spec, "full", variant="code")}
    assert set(base) == set(code)
    for key, r in code.items():
        b = base[key]
        diff = {k for k in set(r["config"]) | set(b["config"]) if r["config"].get(k) != b["config"].get(k)}
        named = {"bn", "variant"} | ({"lr"} if key[0] == "FG" else set())
        assert diff == named, (key, diff)
        assert r["config"]["variant"] == "code" and r["variant"] == "code"
        assert r["run_id"] != b["run_id"] and r["run_id"] == run_id(r["config"])
    # The baseline carries no variant key: its ids are those of the same spec without variants.
    plain = {(r["row"], r["seed"]): r["run_id"] for r in expand(demo(), "full")}
    assert {k: r["run_id"] for k, r in base.items()} == plain
    assert all("variant" not in r["config"] and r["variant"] == PAPER for r in base.values())


def test_a_named_variant_runs_only_the_cells_it_changes_and_all_runs_every_variant():
    spec = demo([CODE, FGONLY])
    only = expand(spec, "full", variant="fgonly")
    assert {r["row"] for r in only} == {"FG"} and all(r["config"]["lr"] == 3.0 for r in only)
    every = expand(spec, "full", variant="all")
    assert len(every) == 2 * 2 + 2 * 2 + 1 * 2  # paper + code on both rows, fgonly on FG
    assert len({r["run_id"] for r in every}) == len(every)
    assert variant_changes(spec, "code", "FG", "A") == {"bn": (False, True), "lr": (1.0, 2.0)}
    assert variant_changes(spec, "fgonly", "BP", "A") == {}


def test_chosen_variants_are_the_default_per_row():
    spec = demo([CODE, FGONLY], chosen={"FG": "fgonly"})
    runs = expand(spec, "full", seeds=1)
    by_row = {r["row"]: r for r in runs}
    assert by_row["BP"]["variant"] == PAPER and "variant" not in by_row["BP"]["config"]
    assert by_row["FG"]["variant"] == "fgonly" and by_row["FG"]["config"]["lr"] == 3.0
    # A chosen variant that leaves a row alone is that row's baseline run, under the baseline's name.
    spec2 = demo([CODE, FGONLY], chosen={"BP": "fgonly"})
    bp = next(r for r in expand(spec2, "full", seeds=1) if r["row"] == "BP")
    assert bp["variant"] == PAPER and "variant" not in bp["config"]


@pytest.mark.parametrize("over,match", [
    ({"variants": (Variant("paper", "x", (Change({"a": 1}, source="s"),)),)}, "variant names"),
    ({"variants": (CODE, CODE)}, "variant names"),
    ({"variants": (Variant("v", "x", ()),)}, "needs changes"),
    ({"variants": (Variant("v", "x", (Change({"a": 1}, source=""),)),)}, "needs changes"),
    ({"variants": (Variant("v", "x", (Change({"variant": "w"}, source="s"),)),)}, "'variant' key"),
    ({"variants": (CODE,), "chosen": {"NOPE": "code"}}, "unknown row"),
    ({"variants": (CODE,), "chosen": {"BP": "nope"}}, "unknown variant"),
])
def test_malformed_variants_are_spec_errors(over, match):
    with pytest.raises(SpecError, match=match):
        demo(**over)


def test_an_unknown_variant_is_a_user_error_listing_the_names():
    with pytest.raises(UserError, match="paper, code, fgonly"):
        expand(demo([CODE, FGONLY]), "full", variant="nope")


@pytest.mark.parametrize("args,needle", [
    (("--tables", "bacho2024/table1", "--variant", "nope"), "bacho2024/table1: paper, code, alg3, code-alg3, dfa-init, fgw-code-nobn"),
    (("--tables", "ren2023/table3", "--variant", "code"), "unknown variant 'code'"),
    (("--tables", "bacho2024/table1", "--variant", " "), "--variant needs a name"),
    (("--tables", "bacho2024/table3", "--scale", "screen"), "bacho2024/table1, bacho2024/table2"),
])
def test_cli_rejects_unknown_variants_and_scales_with_exit_2(tmp_path, args, needle):
    out = cli(*args, "--results-dir", str(tmp_path / "r"), "--reports-dir", str(tmp_path / "p"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and needle in lines[0], out.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


def test_cli_lists_variants_and_dry_runs_them():
    out = cli("--list", "--tables", "bacho2024/table1")
    assert out.returncode == 0 and "code-alg3" in out.stdout and "3 of 21 cells" in out.stdout
    dry = cli("--tables", "bacho2024/table1", "--variant", "alg3", "--dry-run")
    rows = [l for l in dry.stdout.splitlines() if l.startswith("bacho2024/table1")]
    assert dry.returncode == 0 and len(rows) == 3 and all(" FG-A " in l and " alg3 " in l for l in rows)


def _record(results, spec, scale, run, acc):
    rec = {"run_id": run["run_id"], "table": spec.id, "row": run["row"], "col": run["col"], "seed": run["seed"],
           "status": "ok", "config": run["config"], "variant": run["variant"], "scale": scale,
           "data": {"dataset": "x", "source": "s", "kind": "real"}, "git_commit": "abc", "git_dirty": False,
           "metrics": {"test_acc": acc}}
    write_record(record_path(results, scale, spec.id, run["run_id"]), rec)


def test_reports_of_different_variants_never_mix_records(tmp_path):
    spec = demo([CODE, FGONLY], chosen={"FG": "code"})
    res, rep = tmp_path / "results", tmp_path / "reports"
    acc = {PAPER: 10.0, "code": 50.0, "fgonly": 80.0}
    for run in expand(spec, "full", variant="all"):
        _record(res, spec, "full", run, acc[run["variant"]] + run["seed"])
    report.render_table(spec, "full", res, rep, commit="abc")
    out = rep / "full" / "demo"

    def cells(name):
        import csv
        return {(r["row"], r["col"]): r for r in csv.DictReader(open(out / f"t1.{name}.csv"))}

    assert {k: float(v["ours_mean"]) for k, v in cells("paper").items()} == {("BP", "A"): 10.5, ("FG", "A"): 10.5}
    assert {k: float(v["ours_mean"]) for k, v in cells("code").items()} == {("BP", "A"): 50.5, ("FG", "A"): 50.5}
    assert {k: float(v["ours_mean"]) for k, v in cells("fgonly").items()} == {("FG", "A"): 80.5}
    # The plain report shows each row's chosen variant and says so.
    import csv
    plain = {(r["row"], r["col"]): float(r["ours_mean"]) for r in csv.DictReader(open(out / "t1.csv"))}
    assert plain == {("BP", "A"): 10.5, ("FG", "A"): 50.5}
    md = (out / "t1.md").read_text()
    assert "paper for BP; code for FG" in md
    # The fidelity report puts every variant beside the published number and marks the closest.
    fid = list(csv.DictReader(open(out / "t1.fidelity.csv")))
    fg = {r["variant"]: r for r in fid if r["row"] == "FG"}
    assert set(fg) == {PAPER, "code", "fgonly"} and fg["fgonly"]["closest"] == "True"
    assert fg["fgonly"]["agrees"] == "True" and fg["code"]["agrees"] == "False"
    assert {r["variant"] for r in fid if r["row"] == "BP"} == {PAPER, "code"}
    fmd = (out / "t1.fidelity.md").read_text()
    assert "| BP | A | 90.0 ± 0.5 |" in fmd and "= paper" in fmd and "source: main.py --lr" in fmd


def test_the_fidelity_report_ranks_each_column_per_variant_with_the_texts_values_where_unchanged(tmp_path):
    P = Published
    cells = tuple(Cell(row, "A", {"rule": rule, "lr": 1.0}, {"test_acc": P(pub, "0.5", 3)})
                  for row, rule, pub in (("BP", "bp", "90.0"), ("FG", "fg", "80.0"), ("Z", "z", "70.0")))
    spec = demo([FGONLY], rows=("BP", "FG", "Z"), cells=cells)
    res, rep = tmp_path / "results", tmp_path / "reports"
    # paper: 30 > 20 > 10, the published order (rho 1); fgonly moves FG alone to the top (rho 0.5)
    acc = {("BP", PAPER): 30.0, ("FG", PAPER): 20.0, ("Z", PAPER): 10.0, ("FG", "fgonly"): 40.0}
    for run in expand(spec, "full", variant="all"):
        _record(res, spec, "full", run, acc[(run["row"], run["variant"])])
    report.render_table(spec, "full", res, rep, commit="abc")
    fmd = (rep / "full" / "demo" / "t1.fidelity.md").read_text()
    assert "| column | paper | fgonly |" in fmd
    assert "| A | 1.00 (n=3) | 0.50 (n=3) |" in fmd


def test_the_fidelity_report_adds_a_best_epoch_reading_from_each_runs_own_curve(tmp_path):
    spec = demo([FGONLY])
    res, rep = tmp_path / "results", tmp_path / "reports"
    # seed 0 peaks mid-run (a NaN epoch in its curve is skipped), seed 1 peaks at its last epoch
    curves = {0: [float("nan"), 70.0, 91.0, 89.0], 1: [80.0, 85.0, 89.5]}
    for run in expand(spec, "full", variant="all"):
        final = {PAPER: 89.0, "fgonly": 70.0}[run["variant"]]
        curve = curves[run["seed"]] if run["row"] == "BP" else [60.0, final]
        _record(res, spec, "full", run, final)
        path = record_path(res, "full", spec.id, run["run_id"])
        rec = json.loads(path.read_text())
        rec["metrics"]["curves"] = {"epoch": list(range(1, len(curve) + 1)), "test_acc": curve}
        path.write_text(json.dumps(rec))
    report.render_table(spec, "full", res, rep, commit="abc")
    fmd = (rep / "full" / "demo" / "t1.fidelity.md").read_text()
    final_table, best_table = fmd.split("Best-epoch reading")
    assert "| BP | A | 90.0 ± 0.5 | **89.00 ± 0.00 (2) ✓** |" in final_table
    # best epochs 91.0 and 89.5: mean 90.25, std 1.06; the FG runs peak at their final epoch
    assert "| BP | A | 90.0 ± 0.5 | **90.25 ± 1.06 (2) ✓** | = paper | paper |" in best_table
    assert "| FG | A | 80.0 ± 1.0 | **89.00 ± 0.00 (2) ✗** | 70.00 ± 0.00 (2) ✗ | paper |" in best_table
    # A record without a curve has no best-epoch reading, and the section disappears with the curves.
    assert report.best_epoch_records([{"status": "ok", "metrics": {"test_acc": 5.0}}], "test_acc") == []
    assert report.best_epoch_records([{"status": "ok", "metrics": {"curves": {"test_err": [3.0, 1.0, 2.0]}}}],
                                     "test_err")[0]["metrics"]["test_err"] == 1.0
    res2, rep2 = tmp_path / "results2", tmp_path / "reports2"
    for run in expand(spec, "full", variant="all"):
        _record(res2, spec, "full", run, 50.0)
    report.render_table(spec, "full", res2, rep2, commit="abc")
    assert "Best-epoch" not in (rep2 / "full" / "demo" / "t1.fidelity.md").read_text()


def test_bacho_variants_follow_their_sources():
    """The code variant: BN everywhere but the (Fashion-)MNIST FG-W net, one-pool CNN, FG-W lr 1e-3,
    default DFA init, FDFA's late B update; alg3 touches FG-A only; dfa-init DFA's init only (no batch
    norm); fgw-code-nobn FG-W only: lr 1e-3, one pool, never batch norm; the baseline is the text."""
    for spec in (TABLE1, TABLE2, TABLE_B6):
        assert spec.variant_names == (PAPER, "code", "alg3", "code-alg3", "dfa-init", "fgw-code-nobn") and spec.variants == VARIANTS
    ch = lambda spec, v, row, col: {k: new for k, (_, new) in variant_changes(spec, v, row, col).items()}  # noqa: E731
    assert ch(TABLE1, "code", "FG-W", "MNIST") == {"lr": 1e-3}
    assert ch(TABLE1, "code", "FG-W", "CIFAR10") == {"lr": 1e-3, "batchnorm": True}
    assert ch(TABLE1, "code", "BP", "Fashion MNIST") == {"batchnorm": True}
    assert ch(TABLE1, "code", "DFA", "MNIST") == {"batchnorm": True, "dfa_zero_init": False}
    assert ch(TABLE1, "code", "FDFA", "MNIST") == {"batchnorm": True, "fdfa_feedback_update": "after"}
    assert ch(TABLE2, "code", "FG-W", "MNIST") == {"lr": 1e-3, "batchnorm": True, "cnn_pools": 1}
    assert ch(TABLE1, "alg3", "FG-A", "MNIST") == {"fga_output": "exact"}
    assert ch(TABLE1, "alg3", "BP", "MNIST") == {}
    assert ch(TABLE2, "code-alg3", "FG-A", "MNIST") == {"batchnorm": True, "cnn_pools": 1, "fga_output": "exact"}
    assert ch(TABLE1, "code-alg3", "LG-FG-A", "MNIST") == {}
    assert ch(TABLE1, "dfa-init", "DFA", "MNIST") == {"dfa_zero_init": False}  # no batch norm: the text's net
    assert ch(TABLE2, "dfa-init", "DFA", "MNIST") == {"dfa_zero_init": False}
    assert ch(TABLE1, "dfa-init", "DKP", "MNIST") == {}
    assert ch(TABLE2, "fgw-code-nobn", "FG-W", "MNIST") == {"lr": 1e-3, "cnn_pools": 1}  # no batch norm
    assert ch(TABLE2, "fgw-code-nobn", "BP", "MNIST") == {}
    assert ch(TABLE1, "fgw-code-nobn", "FG-W", "CIFAR10") == {"lr": 1e-3}
    # The screen is the full protocol cut at 20 epochs, one seed.
    full = {r["row"]: r["config"] for r in expand(TABLE1, "full", seeds=1, cols=["MNIST"])}
    screen = {r["row"]: r["config"] for r in expand(TABLE1, "screen", cols=["MNIST"])}
    assert all({**screen[k], "epochs": 100} == full[k] and screen[k]["epochs"] == 20 for k in full)


def test_reproduction_status_lists_full_cells_per_variant_and_rewrites_only_its_readme_block(tmp_path):
    spec = demo([CODE, FGONLY], chosen={"FG": "fgonly"})
    res, rep = tmp_path / "results", tmp_path / "reports"
    for run in expand(spec, "full", variant="all"):
        if run["variant"] != "code":
            _record(res, spec, "full", run, {"paper": 89.5, "fgonly": 79.0}[run["variant"]] + run["seed"])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.STATUS_BEGIN}\nold table\n{report.STATUS_END}\nrest\n")
    path = report.write_reproduction_status([spec], res, rep, readme=readme)
    lines = path.read_text().splitlines()
    fg = [l for l in lines if "| FG, A |" in l]
    # The row's default first, then the others that have full records; seeds out of the paper's count.
    assert fg[0].startswith("| demo/t1 | FG, A | 79.50 ± 0.71 | 80.0 ± 1.0 | fgonly (default) | 2 of 2 | ✓ |")
    assert "| paper | 2 of 2 | ✗ |" in fg[1] and len(fg) == 2
    assert any("| BP, A | 90.00 ± 0.71 | 90.0 ± 0.5 | paper (default) | 2 of 2 | ✓ |" in l for l in lines)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{report.STATUS_END}\nrest\n") and "old table" not in text
    assert "| demo/t1 | FG, A | 79.50" in text
    empty = report.reproduction_status([spec], tmp_path / "nothing")
    assert empty == ["No table cell has full-protocol records yet."]
