"""Progress display: per run (epoch i/n, elapsed, remaining) and overall (runs done of total, time left).

On a terminal, a live block in tqdm's conventions, one bar per worker and one overall bar, redrawn in
place, with a permanent line as each run ends::

    worker 1 bacho2024/table1 BP | MNIST seed 0:  40%|████      | 2/5 epochs [00:04<00:06] test_acc 91.20
    overall:  29%|██▊       | 2/7 runs [00:12<00:16, estimates x1.30]

Otherwise (logs, pipes) plain lines: one a run as it ends, carrying the overall count and time left,
and at most once a minute a status line a busy worker (epoch, elapsed, remaining).

Time left: the engines' estimates (``estimate_seconds``) of the runs not finished, scaled by how long
the runs finished here took against their estimates (``measured / estimated``), the running runs'
remaining epochs at their measured pace, shared out among the workers.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Callable

BAR = 10


class Progress:
    def __init__(self, total: int, stream=None, live: bool | None = None, *,
                 estimates: dict[str, float] | None = None, workers: int = 1):
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.workers = workers
        self.waiting = 0  # runs other processes hold (claimed), waited for
        self.index = 0
        self.finished = 0
        self.failed = 0
        self.elsewhere = 0
        self.t0 = time.monotonic()
        self._todo = dict(estimates or {})  # run_id -> engine estimate, for runs not finished
        self._known = estimates is not None
        # [wall seconds, engine estimate] summed over runs trained here: [later runs, workers' first runs]
        self._samples = {False: [0.0, 0.0], True: [0.0, 0.0]}
        self._warm: set = set()  # slots that finished a run
        self._slots: dict[int, dict] = {}
        self._drawn = 0
        self._last_draw = 0.0
        self._last_plain = 0.0
        self.plain_every_s = 60.0

    # ---- events --------------------------------------------------------------------------------

    def start_run(self, run: dict, slot: int = 0) -> None:
        self.index += 1
        self._slots[slot] = {"label": self._label(run, self.index), "short": _short(run), "run_id": run["run_id"],
                             "t0": time.monotonic(), "first": None, "epoch": 0, "epochs": None, "shown": ""}
        if self.live:
            self._draw(force=True)

    def callback(self, slot: int = 0) -> Callable[..., None]:
        """The ``progress`` callable an engine gets: ``progress(epoch=, epochs=, **metrics)``."""
        return lambda epoch, epochs, **metrics: self.epoch(epoch, epochs, slot=slot, **metrics)

    def epoch(self, epoch: int, epochs: int, slot: int = 0, **metrics) -> None:
        s = self._slots.get(slot)
        if s is None:
            return
        if s["first"] is None:  # a resumed run starts past epoch 1: time only what ran here
            s["first"] = epoch
        s["epoch"], s["epochs"] = epoch, epochs
        s["shown"] = " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        now = time.monotonic()
        if self.live:
            self._draw()
        elif now - self._last_plain >= self.plain_every_s and epoch < epochs:
            self._last_plain = now
            for line in self._status_lines():
                self.stream.write(line + "\n")
            self.stream.flush()

    def end_run(self, record: dict, slot: int | None = 0, run: dict | None = None, elsewhere: bool = False) -> None:
        """A run ended: trained in ``slot``, or (``elsewhere``) finished by another process."""
        s = self._slots.pop(slot, None) if slot is not None else None
        self.finished += 1
        self.failed += record.get("status") == "failed"
        run_id = record.get("run_id") or (run or {}).get("run_id")
        est = self._todo.pop(run_id, None)
        m = record.get("metrics") or {}
        main = next((f"{k} {m[k]:.2f}" for k in ("test_acc", "test_err") if isinstance(m.get(k), (int, float))), "")
        status = record.get("status", "?")
        if status == "failed":
            main = ((record.get("error") or "").strip().splitlines()[-1:] or [""])[0][:120]
        if elsewhere:
            self.elsewhere += 1
            label = self._label(run or record, None)
            line = f"{label} {status} by another process ({record.get('host', '?')} pid {record.get('pid', '?')}) {main}"
        else:
            secs = record.get("wall_time_s")
            if secs is None:  # jobs elsewhere report their own; a record without it: time it here
                secs = time.monotonic() - s["t0"] if s else 0.0
            if est is not None and isinstance(secs, (int, float)) and status != "failed" and est > 0:
                # A worker's first run also pays for importing its framework: it corrects the estimates
                # only until runs without that cost have finished.
                first = slot not in self._warm
                self._warm.add(slot)
                self._samples[first][0] += secs
                self._samples[first][1] += est
            label = s["label"] if s else self._label(run or record, self.index)
            line = f"{label} {status} {main} ({secs:.1f}s)"
        self._permanent(line + ("" if self.live else f" | {self.overall_text()}"))

    def note(self, text: str) -> None:
        """A line of its own (a worker's output, a claim waited for), kept above the live block."""
        self._permanent(text)

    def close(self) -> None:
        """End the live block: it is erased and the overall line stays, as text."""
        if self.live and self._drawn:
            self._erase()
            self.stream.write(self.overall_text() + "\n")
            self.stream.flush()

    # ---- estimates -----------------------------------------------------------------------------

    @property
    def _estimated(self) -> float:
        return self._samples[False][1] or self._samples[True][1]

    def ratio(self) -> float:
        """Measured over estimated seconds of the runs finished here (1 before any); a worker's first
        run, which also imports its framework, counts only while no later run has finished."""
        measured, estimated = self._samples[False] if self._samples[False][1] else self._samples[True]
        return measured / estimated if estimated > 0 and measured > 0 else 1.0

    def _slot_left(self, s: dict, ratio: float) -> float | None:
        now = time.monotonic()
        if s["first"] is not None and s["epochs"]:
            done_here = s["epoch"] - s["first"] + 1
            return (now - s["t0"]) / max(done_here, 1) * (s["epochs"] - s["epoch"])
        est = self._todo.get(s["run_id"])
        return None if est is None else max(0.0, est * ratio - (now - s["t0"]))

    def seconds_left(self) -> float | None:
        """Estimated seconds until every run has ended, or None without engine estimates."""
        if not self._known:
            return None
        ratio = self.ratio()
        running = {s["run_id"] for s in self._slots.values()}
        queued = sum(e for rid, e in self._todo.items() if rid not in running) * ratio
        active = [x for x in (self._slot_left(s, ratio) for s in self._slots.values()) if x is not None]
        return max(max(active, default=0.0), (queued + sum(active)) / max(1, self.workers))

    def overall_text(self) -> str:
        extra = [f"{self.failed} failed"] if self.failed else []
        if self.elsewhere:
            extra.append(f"{self.elsewhere} by other processes")
        if self.waiting:
            extra.append(f"{self.waiting} held by other processes")
        text = f"overall {self.finished}/{self.total} runs done" + (f" ({', '.join(extra)})" if extra else "")
        text += f", {_fmt(time.monotonic() - self.t0)} elapsed"
        left = self.seconds_left()
        if left is not None and self.finished < self.total:
            text += f", ~{_fmt(left)} left"
            if self._estimated:
                text += f" (estimates x{self.ratio():.2f} from measured times)"
        return text

    # ---- rendering -----------------------------------------------------------------------------

    def _label(self, run: dict, index: int | None) -> str:
        variant = run.get("variant")
        pos = f"[{index}/{self.total}] " if index is not None else ""
        return (f"{pos}{run['table']} {run['row']} | {run['col']} seed {run['seed']}"
                + (f" variant {variant}" if variant and variant != "paper" else "") + f" ({run['run_id']})")

    def _status_lines(self) -> list[str]:
        """Plain status: one line a busy worker, then the overall line."""
        lines = []
        ratio = self.ratio()
        for slot in sorted(self._slots):
            s = self._slots[slot]
            who = f"worker {slot + 1} " if self.workers > 1 else ""
            elapsed = time.monotonic() - s["t0"]
            left = self._slot_left(s, ratio)
            timing = f"{_fmt(elapsed)} elapsed" + (f", ~{_fmt(left)} left" if left is not None else "")
            ep = f" epoch {s['epoch']}/{s['epochs']}" if s["epochs"] else " starting"
            lines.append(f"{who}{s['label']}{ep} {s['shown']} ({timing})".replace("  ", " "))
        if self.workers > 1 or self.total > 1:
            lines.append(self.overall_text())
        return lines

    def _block(self) -> list[str]:
        """The live block: a tqdm-style bar a busy worker, then the overall bar."""
        ratio = self.ratio()
        lines = []
        for slot in sorted(self._slots):
            s = self._slots[slot]
            who = f"worker {slot + 1} " if self.workers > 1 else f"[{self.index}/{self.total}] "
            elapsed = time.monotonic() - s["t0"]
            left = self._slot_left(s, ratio)
            if s["epochs"]:
                bar = _bar(s["epoch"], s["epochs"], "epochs")
                lines.append(f"{who}{s['short']}: {bar} [{_clock(elapsed)}<{_clock(left)}] {s['shown']}".rstrip())
            else:
                lines.append(f"{who}{s['short']}: starting [{_clock(elapsed)}<{_clock(left)}]")
        left = self.seconds_left()
        tail = f", estimates x{ratio:.2f}" if self._estimated else ""
        extra = [f"{self.failed} failed"] if self.failed else []
        if self.elsewhere:
            extra.append(f"{self.elsewhere} by other processes")
        if self.waiting:
            extra.append(f"{self.waiting} held by other processes")
        lines.append(f"overall: {_bar(self.finished, self.total, 'runs')} "
                     f"[{_clock(time.monotonic() - self.t0)}<{_clock(left)}{tail}]"
                     + (f" {', '.join(extra)}" if extra else ""))
        return lines

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._erase()
        width = max(20, shutil.get_terminal_size((120, 20)).columns - 1)
        lines = [line[:width] for line in self._block()]
        self.stream.write("\n".join(lines))
        self.stream.flush()
        self._drawn = len(lines)

    def _erase(self) -> None:
        """Move to the first line of the live block and clear to the end of the screen."""
        if self._drawn:
            up = f"\033[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.stream.write(up + "\r\033[J")
            self._drawn = 0

    def _permanent(self, line: str) -> None:
        if self.live:
            self._erase()
            self.stream.write(line + "\n")
            self._draw(force=True)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()


def _short(run: dict) -> str:
    variant = run.get("variant")
    return (f"{run['table']} {run['row']} | {run['col']} seed {run['seed']}"
            + (f" {variant}" if variant and variant != "paper" else ""))


def _bar(n: int, total: int, unit: str) -> str:
    """tqdm's ``  40%|████      | 2/5`` with the unit after the count."""
    frac = min(1.0, n / total) if total else 1.0
    eighths = int(frac * BAR * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part and full < BAR else "")
    return f"{frac * 100:3.0f}%|{bar:<{BAR}}| {n}/{total} {unit}"


def _clock(seconds: float | None) -> str:
    """tqdm's clock: MM:SS, or H:MM:SS; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
