"""Planning runs and executing one run into a record.

``plan`` expands tables into fully resolved runs (data source included, configs validated by their
engine) before anything runs, so bad input fails early with nothing written. ``execute_run`` is the
single module-level entry point a job calls with plain data: it trains, then writes the record.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import socket
import subprocess
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from . import claims, store
from .errors import UserError
from .registry import engine_module
from .spec import ALL_VARIANTS, PAPER, TableSpec, axis_matching, expand

REPO_ROOT = Path(__file__).resolve().parents[2]


def plan(specs: list[TableSpec], scale: str, *, data_root: str | None, seeds: int | None = None,
         rows: list[str] | None = None, cols: list[str] | None = None, variant: str | None = None,
         missing: set | None = None) -> list[dict]:
    """All runs of the tables at a scale; raises UserError on unknown filters, methods, variants or data.

    ``missing``: plan even where a dataset's files are not under the data root (``--dry-run``,
    ``--status``): the names of such datasets are added to the set, their runs carry the source and
    run id they will have once the files are there, and ``run["data_missing"]`` is True. Such runs
    must not train; ``plan`` without ``missing`` raises instead."""
    from benchmarks import data  # torch-free

    _check_filter("row", rows, specs)
    _check_filter("col", cols, specs)
    specs = tables_with_variant(specs, variant)
    specs = tables_with_scale(specs, scale)

    def resolve(config: dict) -> dict:
        if config.get("dataset") is None:  # simulations that draw their own inputs (Ren Fig. 8)
            return {"data_source": None}
        if missing is None:
            return data.resolve(config["dataset"], scale, data_root)
        return data.resolve(config["dataset"], scale, data_root, missing=missing)

    runs = []
    for spec in specs:
        for run in expand(spec, scale, seeds=seeds, rows=rows, cols=cols, resolve=resolve, variant=variant):
            engine_module(run["config"]).validate_config(run["config"])
            run["scale"] = scale
            if missing and run["config"].get("dataset") in missing:
                run["data_missing"] = True
            runs.append(run)
    return runs


def datasets_of(specs: list[TableSpec], scale: str | None = None, *, rows: list[str] | None = None,
                cols: list[str] | None = None) -> dict[str, list[str]]:
    """Datasets the selected cells read (at ``scale``, or at any scale a table defines), each with
    the ids of the tables that read it, in table order. Simulations without a dataset are left out."""
    _check_filter("row", rows, specs)
    _check_filter("col", cols, specs)
    if scale is not None:
        specs = tables_with_scale(specs, scale)
    out: dict[str, list[str]] = {}
    for spec in specs:
        for sc in ([scale] if scale is not None else list(spec.scales)):
            for run in expand(spec, sc, seeds=1, rows=rows, cols=cols, variant=ALL_VARIANTS):
                name = run["config"].get("dataset")
                if name and spec.id not in out.setdefault(name, []):
                    out[name].append(spec.id)
    return out


def tables_with_variant(specs: list[TableSpec], variant: str | None) -> list[TableSpec]:
    """The selected tables that know ``variant`` (every table knows ``paper`` and ``all``).

    A paper-wide selection may hold tables without variants (figures); they are left out. A name no
    selected table knows is an error that lists each table's variants."""
    if variant is None or variant in (PAPER, ALL_VARIANTS):
        return specs
    having = [s for s in specs if variant in s.variant_names]
    if not having:
        known = "; ".join(f"{s.id}: {', '.join(s.variant_names)}" for s in specs if s.variants) or \
            f"none of them has variants beyond '{PAPER}'"
        raise UserError(f"unknown variant {variant!r} for the selected tables; variants are: {known} "
                        f"(or '{ALL_VARIANTS}' for all of them)")
    return having


def tables_with_scale(specs: list[TableSpec], scale: str) -> list[TableSpec]:
    """The selected tables that define ``scale`` (every table defines smoke, small and full)."""
    having = [s for s in specs if scale in s.scales]
    if specs and not having:
        raise UserError(f"none of the selected tables defines the {scale!r} scale; tables with it: "
                        f"{', '.join(t.id for t in registry_tables() if scale in t.scales) or 'none'}")
    return having


def registry_tables() -> list[TableSpec]:
    from .registry import all_tables

    return all_tables()


def _check_filter(kind: str, wanted: list[str] | None, specs: list[TableSpec]) -> None:
    if not wanted:
        return
    axis = {a for s in specs for a in (s.rows if kind == "row" else s.cols)}
    unknown = [w for w in wanted if not axis_matching(axis, w)]
    if unknown:
        raise UserError(f"unknown {kind}(s) {', '.join(map(repr, unknown))} in the selected tables; "
                        f"{kind}s are: {', '.join(sorted(axis))}")


def split_done(runs: list[dict], results_dir: str) -> tuple[list[dict], list[dict]]:
    """(runs still to do, runs already finished). ``failed`` and absent records are to do."""
    todo, done = [], []
    for run in runs:
        status = store.status_of(results_dir, run["scale"], run["table"], run["run_id"])
        (done if status in store.FINISHED else todo).append(run)
    return todo, done


def finished_twin(results_dir: str, run: dict) -> dict | None:
    """A finished record of the same run_id in another table at the same scale, if any.

    Same config, same experiment: Table 1 of Bacho & Chu is Table B.6's 4-layer block, so at full
    scale 210 runs would otherwise be trained twice.
    """
    for path in sorted(Path(results_dir, run["scale"]).glob(f"*/*/{run['run_id']}.json")):
        rec = store.read_record(path)
        if rec is not None and rec["status"] in store.FINISHED and rec.get("table") != run["table"]:
            return rec
    return None


def adopt_twins(todo: list[dict], results_dir: str) -> tuple[list[dict], list[dict]]:
    """Record runs of ``todo`` that another table already finished; return (still to do, adopted)."""
    still, adopted = [], []
    for run in todo:
        twin = finished_twin(results_dir, run)
        if twin is None:
            still.append(run)
            continue
        rec = {**twin, "table": run["table"], "row": run["row"], "col": run["col"],
               "adopted_from": f"{twin['table']} ({twin['row']}, {twin['col']})"}
        store.write_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]), rec)
        adopted.append(run)
    return still, adopted


def first_of_each(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the first run of each run_id, the later duplicates): identical runs train once."""
    seen, first, later = set(), [], []
    for run in runs:
        (later if run["run_id"] in seen else first).append(run)
        seen.add(run["run_id"])
    return first, later


def estimate_seconds(runs: list[dict]) -> float:
    return sum(estimates(runs).values())


def estimates(runs: list[dict]) -> dict[str, float]:
    """run_id -> the engine's estimate of its seconds on this machine's CPU."""
    return {run["run_id"]: float(engine_module(run["config"]).estimate_seconds(run["config"])) for run in runs}


# Generated outputs and prose: changing them does not change what a run computes.
NOT_CODE = ("results/", "reports/")


def changed_code_files() -> list[str] | None:
    """Tracked files with uncommitted changes, and untracked files under benchmarks/, that can change
    what a run computes (everything but results/, reports/ and Markdown); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."], cwd=REPO_ROOT,
                             text=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    changed = []
    for line in out.stdout.splitlines():
        status, path = line[:2], line[3:].split(" -> ")[-1].strip('"')
        if path.startswith(NOT_CODE) or path.endswith(".md"):
            continue
        if status == "??" and not path.startswith("benchmarks/"):
            continue  # stray files outside the package are not imported by runs
        if status == "??" and not path.endswith(".py"):
            continue
        changed.append(path)
    return changed


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(short commit, dirty?) of the code that runs; ('unknown', False) outside a git checkout.
    Dirty means code changed (``changed_code_files``), not reports or records."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                                capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    changed = changed_code_files()
    return (commit or "unknown"), bool(changed)


def git_diff() -> str:
    """The uncommitted change to tracked code files (and new package files), for --allow-dirty runs."""
    files = changed_code_files() or []
    try:
        tracked = subprocess.run(["git", "diff", "HEAD", "--", *files], cwd=REPO_ROOT, text=True,
                                 capture_output=True, timeout=30).stdout if files else ""
    except (OSError, subprocess.SubprocessError):
        tracked = ""
    untracked = []
    for f in files:
        if f not in tracked:
            try:
                untracked.append(f"--- new file {f}\n" + (REPO_ROOT / f).read_text())
            except OSError:
                pass
    return tracked + "\n".join(untracked)


# Test hook: run ids listed here (comma-separated) raise instead of training, so the test suite
# can check what a failing job leaves behind, also inside SLURM jobs (which inherit the variable).
FAULT_ENV = "FGBENCH_FAIL_RUNS"
# Test hook: seconds every run sleeps before it trains, so that concurrent invocations overlap.
DELAY_ENV = "FGBENCH_RUN_DELAY_S"


def checkpoint_path(results_dir: str, run: dict) -> Path:
    return store.table_dir(results_dir, run["scale"], run["table"]) / ".checkpoints" / f"{run['run_id']}.pt"


def _seconds_path(ckpt: Path) -> Path:
    """Beside a run's checkpoint: the wall seconds its segments spent up to that checkpoint."""
    return ckpt.with_name(ckpt.name + ".seconds")


def _earlier_seconds(ckpt: Path | None) -> float | None:
    """Wall seconds a run spent in earlier processes (it resumes their checkpoint): 0.0 for a run
    that starts afresh; None where a checkpoint has no count beside it (written by older code)."""
    if ckpt is None or not ckpt.exists():
        return 0.0
    try:
        return float(_seconds_path(ckpt).read_text())
    except (OSError, ValueError):
        return None


def _write_seconds(ckpt: Path, seconds: float) -> None:
    path = _seconds_path(ckpt)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{seconds:.3f}")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a lost count costs the record its total time, not the run


def attempt_run(run: dict, results_dir: str, data_root: str | None = None,
                progress: Callable[..., None] | None = None, checkpoint: bool = False,
                log_path: str | None = None, on_start: Callable[[], None] | None = None,
                not_before: float | None = None, lease_s: float | None = None) -> tuple[str, dict]:
    """Claim a run (``claims``), then train it unless another process has finished it meanwhile.

    Returns ``("trained", record)``; ``("finished", record)`` when, once claimed, the run had a
    finished record (another process trained it, or an identical run of another table did, whose
    record is adopted), or a ``failed`` record written at or after ``not_before`` (a time.time()
    value: this invocation's start), which another process's attempt left; or ``("busy", holder)``
    while a live claim of another process holds it: ask again later. ``on_start`` is called once
    the claim is held and training begins. The claim is touched every epoch and in the background,
    and released when the record is written or the run is interrupted.
    """
    claim, holder = claims.acquire(claims.claim_path(results_dir, run["scale"], run["run_id"]),
                                   {"run_id": run["run_id"], "table": run["table"]}, lease_s)
    if claim is None:
        return "busy", holder
    try:
        path = store.record_path(results_dir, run["scale"], run["table"], run["run_id"])
        rec = store.read_record(path)
        if rec is not None and (rec["status"] in store.FINISHED or (
                not_before is not None and _mtime(path) >= not_before)):
            return "finished", rec
        if adopt_twins([run], results_dir)[1]:
            return "finished", store.read_record(path) or {}
        if on_start is not None:
            on_start()
        claim.start_heartbeat()

        def beat(**kw):
            claim.heartbeat()
            if progress is not None:
                progress(**kw)

        return "trained", execute_run(run, results_dir, data_root=data_root, progress=beat, checkpoint=checkpoint,
                                      log_path=log_path, claim=claim)
    finally:
        claim.release()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _record_head(run: dict, commit: str, dirty: bool) -> dict[str, Any]:
    return {"run_id": run["run_id"], "table": run["table"], "row": run["row"], "col": run["col"],
            "seed": run["seed"], "scale": run["scale"], "variant": run.get("variant", PAPER), "config": run["config"],
            "git_commit": commit, "git_dirty": dirty, "host": socket.gethostname(),
            "python": platform.python_version(), "pid": os.getpid(), "started_at": _now()}


def write_failed(run: dict, results_dir: str, error: str, **extra) -> dict:
    """Write and return a ``failed`` record for a run that ended outside ``execute_run`` (its worker
    process died); its checkpoint stays, so the retry resumes."""
    commit, dirty = git_state()
    record = {**_record_head(run, commit, dirty), **extra, "status": "failed", "error": error, "finished_at": _now()}
    store.write_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]), record)
    return record


def execute_run(run: dict, results_dir: str, data_root: str | None = None,
                progress: Callable[..., None] | None = None, checkpoint: bool = False,
                log_path: str | None = None, claim: "claims.Claim | None" = None) -> dict:
    """Train one run and write its record; return the record. Never raises for a failing run.

    The engine's ``train(config, data_root=, progress=, checkpoint=)`` returns ``{"metrics",
    "data", "device", "versions"}`` and sets ``metrics["diverged"]`` when the loss became NaN.
    With ``checkpoint`` the engine saves its state every epoch and resumes from it (an interrupted
    local run, a requeued SLURM job); the file goes once the record is written. ``claim``: the
    run's claim (``attempt_run``); should it have been taken over meanwhile (a heartbeat lost for
    longer than the lease) and the run finished by the new holder, that record stays.
    """
    commit, dirty = git_state()
    diff_name = None
    if dirty and run["scale"] != "smoke":  # the code behind the number, kept beside its record
        diff_name = f"{run['run_id']}.diff"
        path = store.table_dir(results_dir, run["scale"], run["table"]) / diff_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(git_diff())
    record = _record_head(run, commit, dirty)
    if log_path:
        record["log_path"] = log_path
    if claim is not None and claim.took_over:
        record["claim_taken_over"] = claim.took_over  # whose stale claim this run replaced, and why
    if diff_name:
        record["git_diff"] = diff_name
    ckpt = checkpoint_path(results_dir, run) if checkpoint else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_seconds(ckpt)
    t0 = time.monotonic()
    if ckpt is not None and earlier is not None:
        # Engines call progress once an epoch, right after saving their checkpoint: the count
        # beside it then covers the same epochs, and a resumed run adds its segments up.
        report_epoch = progress

        def progress(**kw):
            _write_seconds(ckpt, earlier + time.monotonic() - t0)
            if report_epoch is not None:
                report_epoch(**kw)
    try:
        if run["run_id"] in os.environ.get(FAULT_ENV, "").split(","):
            raise RuntimeError(f"injected failure ({FAULT_ENV})")
        time.sleep(float(os.environ.get(DELAY_ENV) or 0))
        engine = engine_module(run["config"])
        kwargs = {"checkpoint": str(ckpt)} if ckpt is not None else {}
        out = engine.train(run["config"], data_root=data_root, progress=progress, **kwargs)
        metrics = out["metrics"]
        diverged = bool(metrics.pop("diverged", False)) or any(
            isinstance(v, float) and math.isnan(v) for v in metrics.values())
        record.update(status="diverged" if diverged else "ok", metrics=metrics, data=out.get("data"),
                      device=out.get("device"), versions=out.get("versions"),
                      resumed=int(metrics.get("resumed", 0)))  # times it continued from a checkpoint
    except KeyboardInterrupt:
        raise  # an interrupted run leaves no record: the next invocation redoes it
    except Exception as e:  # noqa: BLE001 - any failure of a run becomes its record
        tail = "".join(traceback.format_exception(e)).strip().splitlines()[-25:]
        record.update(status="failed", error="\n".join(tail))
    record["wall_time_s"] = round(time.monotonic() - t0, 3)  # this process only
    # Over every segment of a resumed run (epochs lost to an interruption are not counted);
    # None where the earlier segments' time is unknown.
    record["total_wall_time_s"] = None if earlier is None else round(earlier + record["wall_time_s"], 3)
    record["finished_at"] = _now()
    if claim is not None and not claim.owned():
        theirs = store.read_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]))
        if theirs is not None and theirs["status"] in store.FINISHED:
            return theirs  # another process took the run over and finished it: its record stays
    store.write_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]), record)
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)  # a failed run also starts afresh when retried
        _seconds_path(ckpt).unlink(missing_ok=True)
    return record
