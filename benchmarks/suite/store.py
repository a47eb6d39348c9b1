"""Run records: one JSON file a run under ``<results>/<scale>/<paper>/<table>/<run_id>.json``.

A record is written once, when its run ends (``ok``, ``diverged`` or ``failed``), to a temporary
file in the same folder and then renamed, so a killed run leaves either a whole record or none.
The loader ignores temporaries. A ``failed`` record is retried by the next run of the same command;
``ok`` and ``diverged`` records are results and are skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

STATUSES = ("ok", "diverged", "failed")
FINISHED = ("ok", "diverged")  # statuses a rerun does not repeat
SCHEMA = 1


def table_dir(results_dir: str | os.PathLike, scale: str, table_id: str) -> Path:
    return Path(results_dir) / scale / table_id


def record_path(results_dir, scale: str, table_id: str, run_id: str) -> Path:
    return table_dir(results_dir, scale, table_id) / f"{run_id}.json"


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write a record atomically: temp file in the target folder, fsync, rename."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"schema": SCHEMA, **record}, indent=1, sort_keys=True, default=_jsonable)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _jsonable(obj):
    # NaN floats are allowed by json.dumps; numpy scalars and the like become plain numbers.
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """A record, or None when the file is unreadable (treated as absent: the run is redone)."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") in STATUSES else None


def iter_records(results_dir, scale: str, table_id: str) -> Iterator[dict[str, Any]]:
    d = table_dir(results_dir, scale, table_id)
    if not d.is_dir():
        return
    for p in sorted(d.glob("*.json")):
        rec = read_record(p)
        if rec is not None:
            yield rec


def status_of(results_dir, scale: str, table_id: str, run_id: str) -> str | None:
    rec = read_record(record_path(results_dir, scale, table_id, run_id))
    return None if rec is None else rec["status"]
