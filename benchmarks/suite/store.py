"""Run records: one JSON file a run under ``<results>/<scale>/<paper>/<table>/<run_id>.json``.

A record is written once, when its run ends (``ok``, ``diverged`` or ``failed``), to a temporary
file in the same folder and then renamed, so a killed run leaves either a whole record or none.
The loader ignores temporaries; a record file that cannot be read, or that parses into something
malformed (``record_problem``), counts as absent (its run is redone) and reports name it
(``scan_records``). A ``failed`` record is retried by the next run of the same command;
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


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def record_problem(rec: Any) -> str | None:
    """What makes a parsed record unusable (one phrase), or None for a well-formed record: an object
    with a known status; ``config``, ``metrics`` and ``data`` objects where present (and
    ``metrics.curves`` an object of lists); string ``run_id`` / ``table`` / ``row`` / ``col`` where present."""
    if not isinstance(rec, dict):
        return f"not a record: the file holds {_json_type(rec)}, not an object"
    if rec.get("status") not in STATUSES:
        return f"status {rec.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key in ("config", "metrics", "data"):
        if rec.get(key) is not None and not isinstance(rec[key], dict):
            return f"'{key}' is {_json_type(rec[key])}, not an object"
    curves = (rec.get("metrics") or {}).get("curves")
    if curves is not None and not (isinstance(curves, dict) and all(isinstance(v, list) for v in curves.values())):
        return "'metrics.curves' is not an object of lists"
    for key in ("run_id", "table", "row", "col"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"'{key}' is {_json_type(rec[key])}, not a string"
    return None


def load_record(path: str | os.PathLike) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why it is unusable): unreadable, not JSON, or malformed."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    except ValueError as e:  # JSON syntax, or bytes that are not UTF-8
        return None, f"not valid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    problem = record_problem(rec)
    return (None, problem) if problem else (rec, None)


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """A record, or None when the file is unreadable or malformed (treated as absent: the run is redone)."""
    return load_record(path)[0]


def scan_files(results_dir, scale: str, table_id: str) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """(file name, record or None, None or why it is unusable) for each record file of a table."""
    d = table_dir(results_dir, scale, table_id)
    if not d.is_dir():
        return []
    return [(p.name, *load_record(p)) for p in sorted(d.glob("*.json"))]


def scan_records(results_dir, scale: str, table_id: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The table's usable records, and (file name, why) for each record file that is not usable."""
    files = scan_files(results_dir, scale, table_id)
    return [rec for _, rec, why in files if why is None], [(name, why) for name, _, why in files if why is not None]


def iter_records(results_dir, scale: str, table_id: str) -> Iterator[dict[str, Any]]:
    yield from scan_records(results_dir, scale, table_id)[0]


def status_of(results_dir, scale: str, table_id: str, run_id: str) -> str | None:
    rec = read_record(record_path(results_dir, scale, table_id, run_id))
    return None if rec is None else rec["status"]
