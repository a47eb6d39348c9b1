"""Progress display: a live line per run and epoch on a terminal; otherwise (logs) one plain line per
run, plus an epoch line at most once a minute with the run's elapsed and remaining time."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, stream=None, live: bool | None = None):
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.index = 0
        self.t0 = time.monotonic()
        self._label = ""
        self._last_plain = 0.0
        self.plain_every_s = 60.0

    def start_run(self, run: dict) -> None:
        self.index += 1
        variant = run.get("variant")
        self._label = (f"[{self.index}/{self.total}] {run['table']} {run['row']} | {run['col']} "
                       f"seed {run['seed']}" + (f" variant {variant}" if variant and variant != "paper" else "")
                       + f" ({run['run_id']})")
        self._run_t0 = time.monotonic()
        self._first_epoch = None
        if self.live:
            self._write_live(self._label + " ...")

    def epoch(self, epoch: int, epochs: int, **metrics) -> None:
        now = time.monotonic()
        if self._first_epoch is None:  # a resumed run starts past epoch 1: time only what ran here
            self._first_epoch = epoch
        done_here = epoch - self._first_epoch + 1
        per_epoch = (now - self._run_t0) / max(done_here, 1)
        timing = f"{_fmt(now - self._run_t0)} elapsed, ~{_fmt(per_epoch * (epochs - epoch))} left"
        shown = " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        if self.live:
            self._write_live(f"{self._label} epoch {epoch}/{epochs} {shown} ({timing})")
        elif now - self._last_plain >= self.plain_every_s and epoch < epochs:
            self._last_plain = now
            self.stream.write(f"{self._label} epoch {epoch}/{epochs} {shown} ({timing})\n")
            self.stream.flush()

    def end_run(self, record: dict) -> None:
        m = record.get("metrics") or {}
        main = next((f"{k} {m[k]:.2f}" for k in ("test_acc", "test_err") if isinstance(m.get(k), (int, float))), "")
        status = record["status"]
        if status == "failed":
            main = (record.get("error") or "").strip().splitlines()[-1:] or [""]
            main = main[0][:120]
        secs = record.get("wall_time_s", time.monotonic() - self._run_t0)  # jobs elsewhere report their own
        line = f"{self._label} {status} {main} ({secs:.1f}s)"
        if self.live:
            self.stream.write("\r\033[K" + line + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _write_live(self, text: str) -> None:
        self.stream.write("\r\033[K" + text[:200])
        self.stream.flush()


def _fmt(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
