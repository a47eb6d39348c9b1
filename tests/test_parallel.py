"""Running tables on one machine: --jobs worker processes, run claims shared by every process that
trains (invocations, workers, SLURM jobs), local checkpoints resumed after kill -9, progress with time
left, and a default (smoke) job that leaves every tracked file as it was."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.suite import claims, executors, report, store
from benchmarks.suite.progress import Progress, _bar, _clock
from benchmarks.suite.spec import Cell, Published, Scale, TableSpec
from helpers import ROOT, cli


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: no process has this pid now
    return p.pid


def _put_claim(path: Path, age_s: float = 0.0, **info) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": "theirs", "started_at": "earlier", **info}))
    t = time.time() - age_s
    os.utime(path, (t, t))


# ---- claims ------------------------------------------------------------------------------------

def test_claims_respect_live_holders_and_take_over_stale_ones(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    here = claims.me()["host"]
    path = claims.claim_path(tmp_path, "small", "abc")

    # Free: claimed at once, atomically created; a second claimer in this process sees it held.
    mine, holder = claims.acquire(path, {"run_id": "abc"}, lease_s=60)
    assert mine is not None and holder is None and mine.took_over is None
    assert json.loads(path.read_text())["pid"] == os.getpid()
    again, holder = claims.acquire(path, lease_s=60)
    assert again is None and holder["pid"] == os.getpid()
    mine.release()
    assert not path.exists()

    # A claim naming a pid that is gone on this host (a kill -9, a crash): taken over.
    _put_claim(path, host=here, pid=_dead_pid())
    got, _ = claims.acquire(path, lease_s=60)
    assert got is not None and "is gone" in got.took_over
    got.release()

    # A process that exited but is not reaped yet (a zombie) is gone too.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while claims._proc_state(zombie.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        _put_claim(path, host=here, pid=zombie.pid)
        got, _ = claims.acquire(path, lease_s=60)
        assert got is not None and "is gone" in got.took_over
        got.release()
    finally:
        zombie.wait()

    # A fresh claim of a live process of this host: respected, also by --status.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = {"host": here, "pid": sleeper.pid, "pid_start": claims._proc_start(sleeper.pid)}
        _put_claim(path, **live)
        got, holder = claims.acquire(path, lease_s=60)
        assert got is None and holder["pid"] == sleeper.pid and holder["token"] == "theirs"
        assert claims.live_holder(path, lease_s=60)["pid"] == sleeper.pid
        # Its heartbeat older than the lease (a hung process): taken over.
        _put_claim(path, age_s=120, **live)
        got, _ = claims.acquire(path, lease_s=60)
        assert got is not None and "no heartbeat for" in got.took_over
        got.release()
        # Same pid, but the process started at another time: the pid was reused, the claimer is gone.
        _put_claim(path, **{**live, "pid_start": "1"})
        got, _ = claims.acquire(path, lease_s=60)
        assert got is not None and "is gone" in got.took_over
        got.release()
    finally:
        sleeper.kill()
        sleeper.wait()

    # --status counts a run a live process holds as running, wherever it runs.
    from benchmarks.suite.slurm import status

    run = {"table": "t/x", "run_id": "abc", "scale": "small"}
    held, _ = claims.acquire(path, lease_s=60)
    assert status([run], str(tmp_path))[0]["running"] == 1
    held.release()
    assert status([run], str(tmp_path))[0]["not submitted"] == 1

    # Another host: only the lease tells.
    _put_claim(path, age_s=30, host="elsewhere", pid=1)
    assert claims.acquire(path, lease_s=60)[0] is None
    _put_claim(path, age_s=90, host="elsewhere", pid=1)
    got, _ = claims.acquire(path, lease_s=60)
    assert got is not None and got.took_over.startswith("elsewhere pid 1: no heartbeat")
    got.release()

    # A requeued SLURM job (same job id, another node) takes over its own earlier claim at once.
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    _put_claim(path, host="node9", pid=1, slurm_job="77")
    got, _ = claims.acquire(path, lease_s=60)
    assert got is not None and "SLURM job 77" in got.took_over
    # A holder that lost its claim (taken over after a lapsed heartbeat) never removes the new one.
    _put_claim(path, host="elsewhere", pid=1)
    got.release()
    assert json.loads(path.read_text())["token"] == "theirs"


def test_a_stale_claim_is_taken_over_by_exactly_one_of_many(tmp_path, monkeypatch):
    path = claims.claim_path(tmp_path, "smoke", "abc")
    _put_claim(path, host=claims.me()["host"], pid=_dead_pid())
    judge, replace = claims.stale_reason, claims._replace

    def slow(f):  # widen the window between reading a stale claim and replacing it
        def wrapped(*a, **k):
            time.sleep(0.15)
            return f(*a, **k)
        return wrapped

    monkeypatch.setattr(claims, "stale_reason", slow(judge))
    monkeypatch.setattr(claims, "_replace", slow(replace))
    won = []

    def contender():
        got, _ = claims.acquire(path, lease_s=60)
        if got is not None:
            won.append(got.token)

    threads = [threading.Thread(target=contender) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and json.loads(path.read_text())["token"] == won[0]


def test_a_bad_lease_is_one_line_and_exit_2(tmp_path):
    out = cli("--tables", "bacho2024/table1", "--results-dir", tmp_path / "r", "--reports-dir", tmp_path / "p",
              env_extra={claims.LEASE_ENV: "soon"})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "FGBENCH_CLAIM_LEASE_S='soon'" in out.stderr and not (tmp_path / "r").exists()


# ---- two invocations on one results folder -------------------------------------------------------

TRAINED = re.compile(r"\(([0-9a-f]{12})\) (?:ok|diverged|failed) (?!by another process)")
ELSEWHERE = re.compile(r"\(([0-9a-f]{12})\) \w+ by another process")


def test_two_invocations_split_the_work_and_leave_tracked_files_alone(tmp_path):
    res, rep = tmp_path / "results", tmp_path / "reports"
    cmd = [sys.executable, "run_all.py", "--tables", "bacho2024/table1", "--cols", "MNIST",
           "--results-dir", str(res), "--reports-dir", str(rep)]
    env = {k: v for k, v in os.environ.items() if k != "FGBENCH_DATA_ROOT"}
    env["FGBENCH_RUN_DELAY_S"] = "1"  # each run takes a second or more: the two overlap
    # One in this process, one with two worker processes: three trainers on seven runs.
    procs = [subprocess.Popen(cmd + jobs, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for jobs in (["--jobs", "1"], ["--jobs", "2"])]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    recs = list(store.iter_records(res, "smoke", "bacho2024/table1"))
    ids = {r["run_id"] for r in recs}
    assert len(recs) == 7 and {r["status"] for r in recs} == {"ok"}
    trained = [set(TRAINED.findall(o)) for o in outs]
    elsewhere = [set(ELSEWHERE.findall(o)) for o in outs]
    assert trained[0] | trained[1] == ids and not trained[0] & trained[1], outs  # each run trained once
    assert trained[0] and trained[1], outs  # and both invocations did some of it
    for t, e in zip(trained, elsewhere):
        assert t | e == ids and not t & e  # each reports the other's runs as theirs
    assert not list((res / "smoke" / ".claims").glob("*.json"))  # every claim released
    # The default job's files (smoke scale) are all git-ignored: its smoke index is not reports/README.md.
    assert not (rep / "README.md").exists() and "bacho2024/table1" in (rep / "smoke" / "README.md").read_text()
    written = [f"results/{p.relative_to(res)}" for p in res.rglob("*") if p.is_file()]
    written += [f"reports/{p.relative_to(rep)}" for p in rep.rglob("*") if p.is_file()]
    # Beyond smoke scale, claims and checkpoints (never results or reports) stay out of git too.
    written += ["results/small/.claims/abc.json", "results/full/.claims/.lock",
                "results/full/bacho2024/table1/.checkpoints/abc.pt"]
    check = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"], cwd=ROOT, text=True,
                           input="\n".join(written), capture_output=True)
    not_ignored = [line.split("\t")[-1] for line in check.stdout.splitlines() if line.startswith("::")]
    assert len(written) > 10 and not_ignored == []


def test_index_of_smoke_runs_is_kept_apart_from_the_tracked_index(tmp_path):
    spec = TableSpec(id="demo/table1", paper="demo", title="Demo", source="Demo, Table 1", metrics=("test_acc",),
                     rows=("BP",), cols=("MNIST",), defaults={},
                     cells=(Cell("BP", "MNIST", {"rule": "bp"}, {"test_acc": Published("97.5")}),), seeds=1,
                     scales={s: Scale(note=s) for s in ("smoke", "small", "full")})
    res, rep = tmp_path / "r", tmp_path / "rep"
    for scale, acc in (("smoke", 11.0), ("small", 97.0)):
        rec = {"run_id": f"x-{scale}", "table": spec.id, "row": "BP", "col": "MNIST", "seed": 0, "status": "ok",
               "scale": scale, "config": {"rule": "bp", "paper": "demo", "seed": 0}, "metrics": {"test_acc": acc}}
        store.write_record(store.record_path(res, scale, spec.id, f"x-{scale}"), rec)
        report.render_table(spec, scale, res, rep, commit="c")
    smoke = report.render_index([spec], res, rep, smoke=True)
    assert smoke == rep / "smoke" / "README.md" and not (rep / "README.md").exists()
    text = smoke.read_text()
    assert "| demo/table1 | Demo | smoke |" in text and "| small |" not in text
    assert "[table1.md](demo/table1.md)" in text  # links relative to the smoke folder
    main = report.render_index([spec], res, rep).read_text()
    assert "| demo/table1 | Demo | small |" in main and "| smoke |" not in main
    assert "[table1.md](small/demo/table1.md)" in main and "smoke/README.md" in main


# ---- local checkpoints: kill -9 mid-run, rerun, bit-identical ------------------------------------

RUN_ONE = """
import json, sys
from benchmarks.bacho2024 import TABLES
from benchmarks.suite import runner
from benchmarks.suite.executors import LocalExecutor
from benchmarks.suite.progress import Progress
from benchmarks.suite.spec import run_id

# FG-W: random tangents every step, so the random generators' states are part of what must resume.
run = runner.plan([TABLES[0]], "small", data_root=None, rows=["FG-W"], cols=["MNIST"], seeds=1)[0]
cfg = {**run["config"], "epochs": 8, "n_train": 2000, "n_test": 200, "hidden": 256}
run = {**run, "config": cfg, "run_id": run_id(cfg)}
print(run["run_id"], flush=True)
(rec,) = LocalExecutor(jobs=1, threads=1).run([run], results_dir=sys.argv[1], data_root=None,
                                              progress=Progress(1, live=False))
"""


def _run_one(results: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "FGBENCH_DATA_ROOT"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-c", RUN_ONE, str(results)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_local_run_killed_mid_way_resumes_bit_identical(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    victim, reference = _run_one(killed), _run_one(whole)  # the uninterrupted one runs alongside
    try:
        run_id = victim.stdout.readline().strip()
        ckpt = killed / "small" / "bacho2024" / "table1" / ".checkpoints" / f"{run_id}.pt"
        seconds = ckpt.with_name(ckpt.name + ".seconds")  # the time its epochs took, written after the checkpoint
        deadline = time.monotonic() + 120
        while not seconds.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)  # after its first epoch's checkpoint, before its last epoch
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    record = store.record_path(killed, "small", "bacho2024/table1", run_id)
    assert ckpt.exists() and not record.exists(), victim.stderr.read()[-2000:]
    first_segment = float(seconds.read_text())
    assert first_segment > 0
    claim = json.loads(claims.claim_path(killed, "small", run_id).read_text())
    assert claim["pid"] == victim.pid  # left behind by the killed process ...
    again = _run_one(killed)  # ... and taken over by the rerun, which resumes the checkpoint
    assert again.wait(timeout=300) == 0, again.stderr.read()[-3000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    resumed = json.loads(record.read_text())
    ref = json.loads(store.record_path(whole, "small", "bacho2024/table1", run_id).read_text())
    assert resumed["status"] == "ok" and resumed["resumed"] >= 1 and ref["resumed"] == 0
    assert f"pid {victim.pid}" in resumed["claim_taken_over"]
    assert resumed["metrics"]["curves"]["epoch"] == list(range(1, 9))  # no epoch lost or repeated
    strip = lambda m: {k: v for k, v in m.items() if k != "resumed"}  # noqa: E731
    assert strip(resumed["metrics"]) == strip(ref["metrics"])  # every curve point and final metric, bit for bit
    assert not ckpt.exists() and not claims.claim_path(killed, "small", run_id).exists()
    # Its run time covers both processes; the uninterrupted run's is its own wall time.
    assert resumed["total_wall_time_s"] == pytest.approx(first_segment + resumed["wall_time_s"], abs=2e-3)
    assert ref["total_wall_time_s"] == ref["wall_time_s"] and not seconds.exists()


# ---- worker processes ------------------------------------------------------------------------------

def test_a_worker_that_dies_fails_only_its_run(tmp_path, monkeypatch):
    from benchmarks.bacho2024 import TABLES
    from benchmarks.suite import runner

    runs = runner.plan([TABLES[0]], "smoke", data_root=None, rows=["BP", "DFA"], cols=["MNIST"])
    monkeypatch.setenv("FGBENCH_RUN_DELAY_S", "2")  # workers inherit it: time to find and kill one
    killed = {}

    def kill_first_claimer():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for path in (tmp_path / "smoke" / ".claims").glob("*.json"):
                try:
                    info = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                killed.update(run_id=info["run_id"], pid=info["pid"])
                os.kill(info["pid"], signal.SIGKILL)  # as the kernel's OOM killer would
                break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_claimer)
    killer.start()
    out = io.StringIO()
    recs = executors.LocalExecutor(jobs=2, threads=1).run(runs, results_dir=str(tmp_path), data_root=None,
                                                           progress=Progress(2, out, live=False))
    killer.join()
    by_id = {r["run_id"]: r for r in recs}
    assert len(recs) == 2 and killed["pid"] != os.getpid()
    dead = by_id.pop(killed["run_id"])
    assert dead["status"] == "failed" and f"worker process {killed['pid']} died (killed by signal 9)" in dead["error"]
    assert [r["status"] for r in by_id.values()] == ["ok"]  # the other worker's run went on
    assert store.status_of(tmp_path, "smoke", "bacho2024/table1", killed["run_id"]) == "failed"
    assert "died (killed by signal 9)" in out.getvalue()
    assert not list((tmp_path / "smoke" / ".claims").glob("*.json"))


# ---- parallelism defaults and worker pinning -----------------------------------------------------

def test_jobs_default_to_devices_or_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    par = executors.parallelism
    assert par(None, None, 21, cores=2, devices=[]) == (2, 1, [])  # fill the cores, a thread each
    assert par(None, None, 1, cores=2, devices=[]) == (1, 2, [])  # one run: it gets every core
    assert par(None, 2, 21, cores=8, devices=[]) == (4, 2, [])
    assert par(3, None, 21, cores=12, devices=[]) == (3, 4, [])
    assert par(None, None, 21, cores=16, devices=["0", "1"]) == (2, 8, ["0", "1"])  # one per GPU
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert par(None, None, 21, cores=8, devices=[]) == (4, 2, [])


def test_cuda_devices_come_from_the_environment_or_nvidia_smi(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert executors.cuda_devices() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert executors.cuda_devices() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    listing = ("GPU 0: NVIDIA H100 (UUID: GPU-aaa)\nGPU 1: NVIDIA H100 (UUID: GPU-bbb)\n"
               "  MIG 3g.40gb     Device  0: (UUID: MIG-ccc)\n  MIG 3g.40gb     Device  1: (UUID: MIG-ddd)\n")
    monkeypatch.setattr(executors.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(executors.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listing, stderr=""))
    assert executors.cuda_devices() == ["0", "MIG-ccc", "MIG-ddd"]


def test_workers_are_pinned_and_limited(monkeypatch):
    seen = []

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            seen.append(env)
            raise OSError("not starting workers in this test")

    monkeypatch.setattr(executors.subprocess, "Popen", FakePopen)
    with pytest.raises(OSError):
        executors._Worker(1, 3, "MIG-ccc", None)
    env = seen[0]
    assert env["CUDA_VISIBLE_DEVICES"] == "MIG-ccc" and env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env["FGBENCH_WORKER_THREADS"] == "3"


@pytest.mark.parametrize("args,needle", [
    (("--executor", "slurm", "--slurm-profile", "envs/slurm/cpu-local.yaml", "--jobs", "2"), "--jobs applies to --executor local"),
    (("--jobs", "0"), "--jobs: must be at least 1"),
    (("--threads", "x"), "--threads: expected a whole number"),
])
def test_bad_parallelism_flags_exit_2_with_one_line(tmp_path, args, needle):
    out = cli("--tables", "bacho2024/table1", "--results-dir", tmp_path / "r", *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()


# ---- progress --------------------------------------------------------------------------------------

RUN = {"table": "t/x", "row": "BP", "col": "MNIST", "seed": 0}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_shows_each_run_and_the_time_left_corrected_by_measured_times(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("benchmarks.suite.progress.time.monotonic", clock)
    out = io.StringIO()
    est = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}
    p = Progress(4, out, live=False, estimates=est, workers=2)
    p.plain_every_s = 0
    p.start_run({**RUN, "run_id": "a"}, slot=0)
    p.start_run({**RUN, "run_id": "b"}, slot=1)
    clock.now += 4
    p.epoch(1, 4, slot=0, test_acc=40.0)
    clock.now += 4
    p.epoch(2, 4, slot=0, test_acc=50.0)  # a: 4 s an epoch, 8 s left
    lines = out.getvalue().splitlines()[-3:]
    assert lines[0].startswith("worker 1 [1/4] t/x BP | MNIST seed 0 (a) epoch 2/4 test_acc 50.00 (0m08s elapsed, ~0m08s left)")
    assert lines[1].startswith("worker 2 [2/4] t/x BP | MNIST seed 0 (b) starting (0m08s elapsed, ~0m02s left)")
    # queued c, d: 20 s; a: 8 s; b: 2 s; two workers: 15 s.
    assert lines[2] == "overall 0/4 runs done, 0m08s elapsed, ~0m15s left"
    clock.now += 8
    p.end_run({"run_id": "b", "status": "ok", "wall_time_s": 16.0, "metrics": {"test_acc": 90.0}}, slot=1)
    p.start_run({**RUN, "run_id": "c"}, slot=1)
    clock.now += 4
    p.end_run({"run_id": "c", "status": "ok", "wall_time_s": 4.0, "metrics": {"test_acc": 90.0}}, slot=1)
    # b was worker 2's first run (framework import); c corrects the estimates: 4 s / 10 s.
    end = out.getvalue().splitlines()[-1]
    assert end.startswith("[3/4] t/x BP | MNIST seed 0 (c) ok test_acc 90.00 (4.0s) | overall 2/4 runs done")
    assert p.ratio() == pytest.approx(0.4) and "(estimates x0.40 from measured times)" in end
    p.end_run({"run_id": "d", "status": "ok", "host": "h", "pid": 7}, slot=None,
              run={**RUN, "run_id": "d"}, elsewhere=True)
    assert "t/x BP | MNIST seed 0 (d) ok by another process (h pid 7)" in out.getvalue().splitlines()[-1]
    assert "1 by other processes" in p.overall_text()


def test_progress_on_a_terminal_draws_a_bar_per_worker_and_an_overall_bar(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("benchmarks.suite.progress.time.monotonic", clock)
    out = io.StringIO()
    p = Progress(7, out, live=True, estimates={k: 5.0 for k in "abcdefg"}, workers=2)
    p.start_run({**RUN, "run_id": "a"}, slot=0)
    p.start_run({**RUN, "run_id": "b"}, slot=1)
    clock.now += 2
    p.epoch(1, 5, slot=0, test_acc=80.0)
    clock.now += 2
    p.epoch(2, 5, slot=0, test_acc=91.2)
    screen = out.getvalue().split("\033[J")[-1].splitlines()  # the block as last drawn
    assert screen[0] == "worker 1 t/x BP | MNIST seed 0:  40%|████      | 2/5 epochs [00:04<00:06] test_acc 91.20"
    assert screen[1].startswith("worker 2 t/x BP | MNIST seed 0: starting [00:04<00:01]")
    assert screen[2].startswith("overall:   0%|          | 0/7 runs [00:04<")
    p.end_run({"run_id": "a", "status": "ok", "wall_time_s": 4.0, "metrics": {}}, slot=0)
    # The block is erased (cursor up to its first line, clear), the run's line printed, the block redrawn.
    assert "\033[2A\r\033[J[1/7] t/x BP | MNIST seed 0 (a) ok  (4.0s)\nworker 2 " in out.getvalue()
    p.close()  # the live block is erased at the end, the overall line stays
    assert out.getvalue().endswith("\033[1A\r\033[Joverall 1/7 runs done, 0m04s elapsed, ~0m10s left "
                                   "(estimates x0.80 from measured times)\n")
    assert _bar(3, 7, "runs") == " 43%|████▎     | 3/7 runs" and _clock(3725) == "1:02:05" and _clock(None) == "?"
