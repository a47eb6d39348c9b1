"""Executors: how planned runs get executed. ``local`` runs them on this machine: in this process
(one worker) or in ``--jobs N`` worker processes (``worker.py``), each with its own thread count and,
on GPU machines, its own GPU.

An executor receives plain run dicts (see ``spec.expand``) and must make every run end in a record
written by ``runner.execute_run``. Every run is claimed first (``claims``): a run another process is
training (another invocation, a SLURM job) is left to it and waited for, so concurrent invocations on
one results folder split the work. ``slurm`` (submitit job arrays) lives in ``slurm.py``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import deque

from . import claims, runner, store
from .errors import UserError
from .progress import Progress
from .runner import REPO_ROOT, attempt_run
from .worker import THREADS_ENV, apply_threads


class Executor:
    name = "base"

    def run(self, runs: list[dict], *, results_dir: str, data_root: str | None,
            progress: Progress) -> list[dict]:
        """Execute runs; return their records (in order)."""
        raise NotImplementedError

    def describe(self, n_runs: int) -> str:
        return f"executor {self.name}"


def cpu_count() -> int:
    """Cores this process may use (its affinity mask, e.g. a SLURM allocation), else all of them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cuda_devices() -> list[str]:
    """The CUDA devices a worker can be pinned to (CUDA_VISIBLE_DEVICES values), without importing a
    framework: the entries of $CUDA_VISIBLE_DEVICES if set, else what ``nvidia-smi -L`` lists (MIG
    instances by their UUIDs), else none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        out = []
        for d in (d.strip() for d in env.split(",")):
            if not d or d.startswith("-"):  # CUDA stops at the first invalid entry ("-1": none)
                break
            out.append(d)
        return out
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        text = subprocess.run(["nvidia-smi", "-L"], text=True, capture_output=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("GPU "):
            gpus.append((s[4:].split(":", 1)[0].strip(), []))
        elif s.startswith("MIG ") and gpus and "UUID: " in s:
            gpus[-1][1].append(s.split("UUID: ", 1)[1].rstrip(")").strip())
    return [m for idx, migs in gpus for m in (migs or [idx])]


def _env_threads() -> int | None:
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n >= 1 else None


def parallelism(jobs: int | None, threads: int | None, n_runs: int, *, cores: int | None = None,
                devices: list[str] | None = None) -> tuple[int, int, list[str]]:
    """(worker processes, threads per run, CUDA devices to pin workers to).

    Workers: ``jobs``, or by default one per CUDA device, or without GPUs as many as fill the cores at
    the per-run thread count; never more than there are runs. Threads per run: ``threads``, or
    $OMP_NUM_THREADS, or the cores shared out among the workers."""
    cores = cores or cpu_count()
    devices = cuda_devices() if devices is None else devices
    base = threads or _env_threads()
    if jobs is None:
        jobs = len(devices) if devices else max(1, cores // (base or 1))
    workers = max(1, min(jobs, n_runs))
    return workers, base or max(1, cores // workers), devices


class _Queue:
    """Runs still to do: fresh ones first, then those another process had claimed, retried every
    ``poll_s`` seconds until their claim is released (their record then stands) or goes stale."""

    def __init__(self, runs: list[dict], poll_s: float):
        self.fresh = deque(runs)
        self.waiting: list[tuple[float, dict]] = []
        self.poll_s = poll_s
        self.told: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.fresh or self.waiting)

    def take(self) -> dict | None:
        if self.fresh:
            return self.fresh.popleft()
        now = time.monotonic()
        for i, (due, run) in enumerate(self.waiting):
            if due <= now:
                return self.waiting.pop(i)[1]
        return None

    def defer(self, run: dict) -> None:
        self.waiting.append((time.monotonic() + self.poll_s, run))

    def seconds_to_next(self) -> float:
        if self.fresh or not self.waiting:
            return 0.0
        return max(0.0, min(due for due, _ in self.waiting) - time.monotonic())


def _key(run: dict) -> tuple[str, str]:
    return run["table"], run["run_id"]


class LocalExecutor(Executor):
    """This machine: one run at a time in this process (one worker), or ``jobs`` worker processes.
    One failing run never stops the others; a worker that dies fails its run and is replaced."""

    name = "local"

    def __init__(self, jobs: int | None = None, threads: int | None = None, poll_s: float = 1.0):
        self.jobs = jobs
        self.threads = threads
        self.poll_s = poll_s

    def workers(self, n_runs: int) -> int:
        return parallelism(self.jobs, self.threads, n_runs)[0]

    def describe(self, n_runs: int) -> str:
        workers, threads, devices = parallelism(self.jobs, self.threads, n_runs)
        where = (f"{workers} worker processes" if workers > 1 else "in this process")
        gpus = f", GPUs {','.join(devices)}" if devices and workers > 1 else ""
        return f"executor local, {where}, {threads} thread{'s' if threads > 1 else ''} a run{gpus}"

    def run(self, runs, *, results_dir, data_root, progress):
        if not runs:
            return []
        workers, threads, devices = parallelism(self.jobs, self.threads, len(runs))
        progress.workers = workers
        not_before = time.time()  # failed records other processes write from now on are their result
        done: dict[tuple[str, str], dict] = {}
        if workers == 1:
            self._here(runs, results_dir, data_root, progress, threads, not_before, done)
        else:
            self._pool(runs, results_dir, data_root, progress, workers, threads, devices, not_before, done)
        return [done[_key(r)] for r in runs if _key(r) in done]

    # Checkpoints every epoch beyond smoke scale (smoke runs take seconds): a run interrupted (Ctrl-C,
    # kill -9, a lost session) resumes from its last finished epoch when rerun.
    @staticmethod
    def _checkpoint(run: dict) -> bool:
        return run["scale"] != "smoke"

    def _settle(self, run, outcome, payload, q: _Queue, progress: Progress, done: dict, slot: int) -> None:
        if outcome == "busy":
            if run["run_id"] not in q.told:
                q.told.add(run["run_id"])
                progress.note(f"{run['table']} {run['row']} | {run['col']} seed {run['seed']} ({run['run_id']}) is "
                              f"claimed by {claims.describe(payload)}; waiting for it")
            q.defer(run)
            progress.waiting = len(q.waiting)
            return
        progress.waiting = len(q.waiting)
        if outcome == "trained":
            progress.end_run(payload, slot=slot)
        else:
            progress.end_run(payload, slot=None, run=run, elsewhere=True)
        done[_key(run)] = payload

    def _here(self, runs, results_dir, data_root, progress, threads, not_before, done) -> None:
        apply_threads(threads)
        q = _Queue(runs, self.poll_s)
        while q:
            run = q.take()
            if run is None:
                time.sleep(q.seconds_to_next())
                continue
            outcome, payload = attempt_run(run, results_dir, data_root=data_root, progress=progress.callback(0),
                                           checkpoint=self._checkpoint(run), not_before=not_before,
                                           on_start=lambda: progress.start_run(run, slot=0))
            self._settle(run, outcome, payload, q, progress, done, slot=0)

    def _pool(self, runs, results_dir, data_root, progress, n, threads, devices, not_before, done) -> None:
        inbox: queue.Queue = queue.Queue()
        q = _Queue(runs, self.poll_s)
        results_dir = os.path.abspath(results_dir)
        data_root = os.path.abspath(data_root) if data_root else None

        def start(i: int) -> _Worker:
            return _Worker(i, threads, devices[i % len(devices)] if devices else None, inbox)

        workers: dict[int, _Worker] = {i: start(i) for i in range(n)}
        restarts = 0
        try:
            while True:
                for w in workers.values():
                    if w.task is None and w.alive:
                        run = q.take()
                        if run is None:
                            break
                        w.give({"run": run, "results_dir": results_dir, "data_root": data_root,
                                "checkpoint": self._checkpoint(run), "not_before": not_before})
                if not q and all(w.task is None for w in workers.values()):
                    return
                if not any(w.alive for w in workers.values()):
                    last = next((line for w in workers.values() for line in reversed(w.tail) if line.strip()), "")
                    raise UserError(f"the local worker processes exited before training ({last.strip()[:200] or 'no output'}); "
                                    f"try --jobs 1, which runs in this process")
                try:
                    i, msg = inbox.get(timeout=max(0.05, min(0.5, q.seconds_to_next() or 0.5)))
                except queue.Empty:
                    continue
                w = workers[i]
                kind = msg["type"]
                if kind == "output":
                    w.tail = (w.tail + [msg["line"]])[-20:]
                    progress.note(f"worker {i + 1}: {msg['line']}")
                elif kind == "started":
                    progress.start_run(w.task, slot=i)
                elif kind == "epoch":
                    progress.epoch(msg["epoch"], msg["epochs"], slot=i, **msg["metrics"])
                elif kind == "result":
                    run, w.task = w.task, None
                    self._settle(run, msg["outcome"], msg["payload"], q, progress, done, slot=i)
                elif kind == "exit":
                    rc = w.proc.wait()
                    w.alive = False
                    if w.task is not None:  # died mid-run (out of memory, a crash): the run fails, others go on
                        run, w.task = w.task, None
                        outcome, payload = _worker_died(run, rc, w.tail, results_dir, w.proc.pid)
                        self._settle(run, outcome, payload, q, progress, done, slot=i)
                        if restarts < len(runs):
                            restarts += 1
                            workers[i] = start(i)
        finally:
            _stop(workers.values())


class _Worker:
    """One worker process and the threads that read its messages and its output into ``inbox``."""

    def __init__(self, index: int, threads: int, device: str | None, inbox: queue.Queue):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_ENV):
            env[var] = str(threads)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        env["FGBENCH_WORKER_PARENT"] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.suite.worker", str(w)], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         pass_fds=(w,), text=True, bufsize=1)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.index = index
        self.task: dict | None = None
        self.alive = True
        self.tail: list[str] = []
        msgs = os.fdopen(r, "r")

        def read_msgs():
            for line in msgs:
                try:
                    inbox.put((index, json.loads(line)))
                except ValueError:
                    inbox.put((index, {"type": "output", "line": line.rstrip()}))
            inbox.put((index, {"type": "exit"}))

        def read_output():
            for line in self.proc.stdout:
                if line.strip():
                    inbox.put((index, {"type": "output", "line": line.rstrip()}))

        threading.Thread(target=read_msgs, daemon=True, name=f"worker-{index}-msgs").start()
        threading.Thread(target=read_output, daemon=True, name=f"worker-{index}-out").start()

    def give(self, task: dict) -> None:
        self.task = task["run"]
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
        except OSError:  # it died; its exit message follows and fails the run
            pass


def _stop(workers) -> None:
    """Close the workers' task streams and wait for them; after a Ctrl-C (which reached them too) they
    release their claims and exit; any still there after a grace period are terminated, then killed."""
    workers = list(workers)
    for w in workers:
        try:
            w.proc.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + 10
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.1, deadline - time.monotonic() - 5))
        except subprocess.TimeoutExpired:
            w.proc.terminate()  # SIGTERM: ends its run like Ctrl-C
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


def _worker_died(run: dict, rc: int, tail: list[str], results_dir: str, pid: int) -> tuple[str, dict]:
    """The failed record of a run whose worker died, written under the run's claim (the dead worker's
    claim is stale and taken over); ``busy`` if another process took the run over first."""
    why = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
    hint = " (out of memory? the kernel's OOM killer sends signal 9)" if rc == -9 else ""
    shown = "\n".join(tail[-10:])
    error = f"worker process {pid} died ({why}){hint} while training this run; its last output:\n{shown}"
    claim, holder = claims.acquire(claims.claim_path(results_dir, run["scale"], run["run_id"]),
                                   {"run_id": run["run_id"], "table": run["table"]})
    if claim is None:
        return "busy", holder
    try:
        rec = store.read_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]))
        if rec is not None and rec["status"] in store.FINISHED:
            return "finished", rec
        return "trained", runner.write_failed(run, results_dir, error, pid=pid)
    finally:
        claim.release()


EXECUTORS = ("local", "slurm")


def get_executor(name: str, *, slurm_profile: str | None = None, wait: bool = False, jobs: int | None = None,
                 threads: int | None = None) -> Executor:
    """The executor a command line names; the slurm one needs a profile (validated here, before
    anything is submitted)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
    if name == "local":
        if slurm_profile:
            raise UserError("--slurm-profile applies to --executor slurm only")
        return LocalExecutor(jobs=jobs, threads=threads)
    if jobs is not None or threads is not None:
        flag = "--jobs" if jobs is not None else "--threads"
        raise UserError(f"{flag} applies to --executor local only; SLURM jobs take their CPUs and parallelism "
                        f"from the profile (cpus_per_task, array_parallelism)")
    from .slurm import SlurmExecutor, load_profile

    return SlurmExecutor(load_profile(slurm_profile), wait=wait)
