"""Progress display: a live line per run and epoch on a terminal, one plain line per run otherwise."""

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

    def start_run(self, run: dict) -> None:
        self.index += 1
        self._label = (f"[{self.index}/{self.total}] {run['table']} {run['row']} | {run['col']} "
                       f"seed {run['seed']} ({run['run_id']})")
        self._run_t0 = time.monotonic()
        if self.live:
            self._write_live(self._label + " ...")

    def epoch(self, epoch: int, epochs: int, **metrics) -> None:
        if not self.live:
            return
        shown = " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        self._write_live(f"{self._label} epoch {epoch}/{epochs} {shown}")

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
