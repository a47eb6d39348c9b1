"""What CI relies on: the local SLURM cluster script starts a cluster without changing the machine
(installing is its own verb, which .ci/run calls), and FGBENCH_REQUIRE_PAPERS turns a missing paper
text from a skip into a failure."""

import os
import shutil
import subprocess
import sys

from helpers import ROOT

SCRIPT = "envs/slurm/local_cluster.sh"


def _package_manager_stubs(folder, log):
    """A PATH holding only stand-ins for the package tools, each logging its call and succeeding:
    SLURM's programs are absent from it, whatever this machine has installed."""
    folder.mkdir()
    for name in ("apt-get", "apt", "dpkg", "sudo"):
        stub = folder / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        stub.chmod(0o755)
    return {"PATH": str(folder), "HOME": str(folder)}


def test_starting_the_local_cluster_never_installs_and_names_the_install_verb(tmp_path):
    log = tmp_path / "package-calls"
    env = _package_manager_stubs(tmp_path / "bin", log)
    bash = shutil.which("bash")
    out = subprocess.run([bash, SCRIPT, "start", str(tmp_path / "cluster")], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode != 0
    assert not log.exists(), f"start called the package manager: {log.read_text()}"
    assert "local_cluster.sh install" in out.stderr
    # The install verb is where packages come from (.ci/run calls it).
    out = subprocess.run([bash, SCRIPT, "install"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("apt-get update") and "slurmctld" in calls[1] and "munge" in calls[1]


def test_a_missing_paper_text_skips_unless_required(tmp_path):
    test = "tests/test_suite.py::test_published_numbers_are_exactly_as_printed_in_the_paper"
    env = {k: v for k, v in os.environ.items() if k != "FGBENCH_REQUIRE_PAPERS"}
    env["FGBENCH_PAPERS_DIR"] = str(tmp_path)  # an empty folder: no paper text in it

    def pytest_(extra):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test],
                              cwd=ROOT, env={**env, **extra}, text=True, capture_output=True, timeout=120)

    skipped = pytest_({})
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
    required = pytest_({"FGBENCH_REQUIRE_PAPERS": "1"})
    assert required.returncode == 1 and "1 failed" in required.stdout, required.stdout[-2000:]
    assert f"paper text {tmp_path / '003_f22b276a271e5e73.txt'} not found" in required.stdout


def test_ci_installs_before_it_starts_the_cluster_and_sets_both_requirements():
    text = (ROOT / ".ci" / "run").read_text()
    assert text.index(f"{SCRIPT} install") < text.index(f"{SCRIPT} start")
    assert "FGBENCH_REQUIRE_SLURM=1" in text and "export FGBENCH_REQUIRE_PAPERS=1" in text
