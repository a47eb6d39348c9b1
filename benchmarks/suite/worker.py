"""A local worker process (``python -m benchmarks.suite.worker FD``), started by ``LocalExecutor``
with ``--jobs`` above 1.

It reads tasks, one JSON line each (``{"run", "results_dir", "data_root", "checkpoint", "not_before"}``),
from stdin, trains each through ``runner.attempt_run`` (claim, train, record) and reports JSON lines
on file descriptor FD: ``{"type": "started"}`` once the run is claimed and training begins,
``{"type": "epoch", "epoch", "epochs", "metrics"}`` after every epoch, and ``{"type": "result",
"outcome", "payload"}`` at the end (``trained`` / ``finished`` with the record, ``busy`` with the
claim's holder). Its thread count and GPU come from its environment (``OMP_NUM_THREADS``,
``CUDA_VISIBLE_DEVICES``), set by the executor before Python starts, so before torch is imported.

It exits when stdin closes, on Ctrl-C (its claim released, its checkpoint kept), and when its parent
dies (Linux: a parent-death signal; elsewhere a watchdog thread), so a killed command leaves no
worker behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings

THREADS_ENV = "FGBENCH_WORKER_THREADS"


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the watchdog below does it
        pass
    if os.getppid() != parent:  # died before the prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def apply_threads(threads: int | None) -> None:
    """Limit this process's compute threads (env for libraries not loaded yet, torch if it is)."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _clean(value):
    """JSON-safe: numpy scalars to numbers (NaN stays NaN, which json reads back)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(type(value).__name__)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: claim released, checkpoint kept


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parent = int(os.environ.get("FGBENCH_WORKER_PARENT", os.getppid()))
    _die_with_parent(parent)
    out = os.fdopen(int(argv[0]), "w", buffering=1)
    lock = threading.Lock()

    def send(msg: dict) -> None:
        with lock:
            out.write(json.dumps(msg, default=_clean) + "\n")
            out.flush()

    warnings.filterwarnings("ignore", category=FutureWarning)
    signal.signal(signal.SIGTERM, _interrupt)
    threads = int(os.environ.get(THREADS_ENV) or 0) or None
    from . import runner  # torch-free; engines import torch on their first run, after the env is set

    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            task = json.loads(line)
            apply_threads(threads)

            def progress(epoch, epochs, **metrics):
                send({"type": "epoch", "epoch": epoch, "epochs": epochs,
                      "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}})

            outcome, payload = runner.attempt_run(
                task["run"], task["results_dir"], data_root=task.get("data_root"), progress=progress,
                checkpoint=bool(task.get("checkpoint")), not_before=task.get("not_before"),
                on_start=lambda: send({"type": "started"}))
            send({"type": "result", "outcome": outcome, "payload": payload})
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
