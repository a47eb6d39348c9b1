"""Run claims: which process is training a run, so that concurrent invocations, local workers and SLURM
jobs sharing a results folder split the work and no run is trained twice.

A claim is ``<results>/<scale>/.claims/<run_id>.json`` (one per run id, not per table: Bacho & Chu's
Table 1 runs are Table B.6's too, and a claim keeps the two tables from training them at once). The
process that trains the run creates it atomically (``O_CREAT | O_EXCL``) with its host, pid, start
time, a random token and its SLURM job id if any; it touches the file (its heartbeat) after every
epoch and, from a background thread, every minute (a sixth of the lease if that is shorter), and
removes it once the run's record is written, the run failed, or it was interrupted.

A claim is *stale*, and the next process that wants the run takes it over, when
- its process is gone: same host, and no process runs that pid (kill -9, a crash, a lost session);
- it belongs to an earlier incarnation of the same SLURM job (a requeued job resumes its own run);
- its heartbeat is older than the lease, ``$FGBENCH_CLAIM_LEASE_S`` seconds (default 1800): the only
  test for a process on another host, which may have died with its node.

Every change to a claims folder (create, take-over, release) happens under an exclusive ``flock`` of
``.claims/.lock``, and a take-over re-reads the claim under that lock: of several processes that find
the same stale claim, exactly one takes it. (Where the file system refuses ``flock``, creation stays
atomic through ``O_EXCL`` and a take-over goes by the claim's token alone.)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

LEASE_ENV = "FGBENCH_CLAIM_LEASE_S"
DEFAULT_LEASE_S = 1800.0
WRITE_GRACE_S = 30.0  # an unreadable claim this young is being written (no-flock file systems only)


def lease_seconds() -> float:
    """The lease from $FGBENCH_CLAIM_LEASE_S (seconds, above 0), default 30 minutes."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise UserError(f"{LEASE_ENV}={text!r} is not a number of seconds above 0; unset it (default "
                        f"{DEFAULT_LEASE_S:.0f}) or give e.g. {LEASE_ENV}=3600")
    return value


def heartbeat_seconds(lease_s: float) -> float:
    """How often a holder touches its claim: often enough that a live one never expires."""
    return max(0.05, min(60.0, lease_s / 6))


def claims_dir(results_dir, scale: str) -> Path:
    return Path(results_dir) / scale / ".claims"


def claim_path(results_dir, scale: str, run_id: str) -> Path:
    return claims_dir(results_dir, scale) / f"{run_id}.json"


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), to tell a reused pid from the claimer."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether a process of this host runs ``pid`` (and, where known, started when the claim says)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    if _proc_state(pid) in ("Z", "X"):  # a zombie waiting for its parent: dead
        return False
    if start is not None:
        now_start = _proc_start(pid)
        if now_start is not None and now_start != start:
            return False  # the pid was reused by a later process
    return True


def slurm_job() -> str | None:
    """This process's SLURM job (array task) id, which a requeued job keeps."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _proc_start(os.getpid()),
            "slurm_job": slurm_job()}


def stale_reason(info: dict | None, age_s: float, lease_s: float) -> str | None:
    """Why a claim (its parsed content and its heartbeat's age) is stale, or None while it holds."""
    if info is None:  # unreadable: a claim being written, or one whose writer died mid-write
        return None if age_s < WRITE_GRACE_S else "unreadable claim file"
    mine = me()
    host, pid = info.get("host"), info.get("pid")
    if host == mine["host"] and not pid_alive(pid, info.get("pid_start")):
        return f"process {pid} on {host} is gone"
    if (info.get("slurm_job") and info["slurm_job"] == mine["slurm_job"]
            and (host, pid) != (mine["host"], mine["pid"])):
        return f"an earlier run of SLURM job {info['slurm_job']} (requeued)"
    if age_s > lease_s:
        return f"no heartbeat for {age_s:.0f}s (lease {lease_s:.0f}s, ${LEASE_ENV})"
    return None


def _read(path: Path) -> tuple[dict | None, float] | None:
    """(parsed claim or None if unreadable, heartbeat age in seconds), or None when there is no claim."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return None, 0.0
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        info = None
    return info, max(0.0, time.time() - mtime)


@contextmanager
def _locked(folder: Path):
    """An exclusive flock of ``folder/.lock`` (released by the kernel if this process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock here (Windows, some network file systems)
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_new(path: Path, info: dict) -> bool:
    """Create the claim file with ``info``; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:  # no fsync: a claim need not outlive its host (then it is stale anyway)
        f.write(json.dumps(info, indent=1))
    return True


def _replace(path: Path, info: dict) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(info, indent=1))
    os.replace(tmp, path)


class Claim:
    """A claim this process holds. ``took_over`` says whose stale claim it replaced, if any."""

    def __init__(self, path: Path, info: dict, took_over: str | None = None, lease_s: float = DEFAULT_LEASE_S):
        self.path = path
        self.info = info
        self.token = info["token"]
        self.took_over = took_over
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owned(self) -> bool:
        """Whether the claim file is still this one (not taken over after a lost heartbeat)."""
        got = _read(self.path)
        return bool(got and got[0] and got[0].get("token") == self.token)

    def heartbeat(self) -> None:
        now = time.time()
        try:
            os.utime(self.path, (now, now))
        except OSError:
            pass  # gone or taken over: ``owned`` tells

    def start_heartbeat(self, interval_s: float | None = None) -> None:
        """Touch the claim every ``interval_s`` seconds in a daemon thread (epochs may be long)."""
        interval = interval_s or heartbeat_seconds(self.lease_s)

        def beat():
            while not self._stop.wait(interval):
                self.heartbeat()

        self._thread = threading.Thread(target=beat, name=f"claim-heartbeat-{self.path.stem}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Remove the claim if it is still this process's (never another's that took it over)."""
        self._stop.set()
        try:
            with _locked(self.path.parent):
                if self.owned():
                    self.path.unlink(missing_ok=True)
        except OSError:
            pass


def acquire(path: Path, about: dict | None = None, lease_s: float | None = None) -> tuple[Claim | None, dict | None]:
    """Claim a run: ``(Claim, None)`` when this process now holds it, ``(None, holder)`` when a live
    claim of another process holds it (``holder`` is that claim's content, with ``age_s``)."""
    lease = lease_seconds() if lease_s is None else lease_s
    info = {**(about or {}), **me(), "token": secrets.token_hex(8),
            "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with _locked(path.parent):
        for _ in range(3):
            if _write_new(path, info):
                return Claim(path, info, lease_s=lease), None
            got = _read(path)
            if got is None:  # released between the two calls (no-flock file systems): try again
                continue
            old, age = got
            reason = stale_reason(old, age, lease)
            if reason is None:
                return None, {**(old or {"host": "?", "pid": "?"}), "age_s": round(age, 1)}
            # Stale: replace it, unless someone else replaced it since we read it (no-flock fallback).
            again = _read(path)
            if again is None or (again[0] or {}).get("token") != (old or {}).get("token"):
                continue
            _replace(path, info)
            who = f"{(old or {}).get('host', '?')} pid {(old or {}).get('pid', '?')}"
            return Claim(path, info, took_over=f"{who}: {reason}", lease_s=lease), None
    got = _read(path)
    return None, {**((got or (None, 0))[0] or {"host": "?", "pid": "?"}), "age_s": 0.0}


def live_holder(path: Path, lease_s: float | None = None) -> dict | None:
    """The content of a live claim at ``path``, or None when there is none or it is stale."""
    got = _read(path)
    if got is None:
        return None
    info, age = got
    if stale_reason(info, age, lease_seconds() if lease_s is None else lease_s) is not None:
        return None
    return {**(info or {"host": "?", "pid": "?"}), "age_s": round(age, 1)}


def describe(holder: dict) -> str:
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    return f"{holder.get('host', '?')} pid {holder.get('pid', '?')}{job}, since {holder.get('started_at', '?')}"
