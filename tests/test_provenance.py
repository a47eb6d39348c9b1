"""Provenance: small, screen and full runs refuse uncommitted code unless --allow-dirty, which keeps
the diff beside the record; reports flag records trained from uncommitted code."""

import subprocess

import pytest

from benchmarks.suite import cli, runner, store


def test_changed_code_files_ignores_records_reports_and_prose(tmp_path, monkeypatch):
    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for f in ("benchmarks/eng.py", "reports/t.md", "results/full/r.json", "README.md", "run_all.py"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x\n")
    git("add", "-A")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    monkeypatch.setattr(runner, "REPO_ROOT", tmp_path)
    assert runner.changed_code_files() == []
    for f in ("reports/t.md", "results/full/r.json", "README.md"):
        (tmp_path / f).write_text("changed\n")
    (tmp_path / "results/full/new.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("stray")
    assert runner.changed_code_files() == []
    (tmp_path / "run_all.py").write_text("changed\n")
    (tmp_path / "benchmarks/new_rule.py").write_text("new\n")
    assert sorted(runner.changed_code_files()) == ["benchmarks/new_rule.py", "run_all.py"]
    diff = runner.git_diff()
    assert "+changed" in diff and "--- new file benchmarks/new_rule.py\nnew" in diff


@pytest.mark.parametrize("scale", ["small", "screen", "full"])
def test_runs_beyond_smoke_refuse_uncommitted_code(tmp_path, monkeypatch, capsys, scale):
    from benchmarks import data

    monkeypatch.setattr(runner, "changed_code_files", lambda: ["benchmarks/bacho2024/rules.py"])
    monkeypatch.setattr(data, "resolve", lambda name, scale, root: {"data_source": "torchvision"})
    res, rep = tmp_path / "r", tmp_path / "p"
    code = cli.main(["--tables", "bacho2024/table1", "--rows", "BP", "--cols", "MNIST", "--seeds", "1",
                     "--scale", scale, "--results-dir", str(res), "--reports-dir", str(rep)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "uncommitted code changes (benchmarks/bacho2024/rules.py)" in err[0] and "--allow-dirty" in err[0]
    assert not res.exists() and not rep.exists()


def test_smoke_and_dry_runs_do_not_care_and_allow_dirty_keeps_the_diff(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "changed_code_files", lambda: ["benchmarks/bacho2024/rules.py"])
    assert cli.main(["--tables", "bacho2024/table1", "--scale", "small", "--dry-run", "--rows", "BP",
                     "--cols", "MNIST", "--results-dir", str(tmp_path / "r")]) == 0
    import benchmarks.bacho2024 as engine

    monkeypatch.setattr(engine, "train", lambda config, **kw: {"metrics": {"test_acc": 50.0}, "data": {"kind": "subset"}})
    monkeypatch.setattr(runner, "git_state", lambda: ("abc1234", True))
    monkeypatch.setattr(runner, "git_diff", lambda: "--- a/rules.py\n+changed\n")
    res, rep = tmp_path / "r", tmp_path / "p"
    code = cli.main(["--tables", "bacho2024/table1", "--scale", "small", "--rows", "BP", "--cols", "MNIST",
                     "--seeds", "1", "--allow-dirty", "--results-dir", str(res), "--reports-dir", str(rep)])
    assert code == 0, capsys.readouterr().err
    (rec,) = list(store.iter_records(res, "small", "bacho2024/table1"))
    assert rec["git_dirty"] is True and rec["git_diff"] == f"{rec['run_id']}.diff"
    assert (res / "small" / "bacho2024" / "table1" / rec["git_diff"]).read_text() == "--- a/rules.py\n+changed\n"
    md = (rep / "small" / "bacho2024" / "table1.md").read_text()
    assert "abc1234 (dirty)" in md and "1 of 1 records were trained from UNCOMMITTED code" in md
