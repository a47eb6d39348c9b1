"""SLURM executor: one submitit job array per table and scale, records written by the jobs.

Design (pitfalls from ANCHORS.md):
- Submission returns at once; a manifest (job folder, job ids, run ids) under
  ``<results>/<scale>/_slurm/manifest.json`` lets ``--status``, ``--wait`` and ``--report-only``
  reattach from any shell. The records on disk are the truth; ``squeue`` is asked sparingly (no
  sacct: accounting is often disabled).
- Only runs without a finished record are submitted, so a rerun never resubmits finished work.
- Jobs call ``JobTask``, a module-level class holding plain data (no closures), so pickling is
  trivial. Each job runs a chunk of ``runs_per_job`` runs (packing tiny runs into one job).
- A run that raises leaves a ``failed`` record with its traceback tail and the job's log path, and
  the job exits non-zero after its other runs; one failure never cancels siblings.
- Jobs claim each run before training it (``claims``), as local invocations do, so a job and a local
  run never train the same run; a requeued job takes over its own earlier claim.
- Runs checkpoint every epoch; on preemption or time-out submitit calls ``checkpoint()``, the job
  requeues itself and resumes (finished runs are skipped, the interrupted one continues).
- Submission happens under submitit's ``clean_env`` (no SLURM_* leak from a parent job), keeping
  SLURM_CONF, which that helper would otherwise hide.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import claims, store
from .errors import UserError
from .executors import Executor
from .progress import Progress
from .runner import attempt_run

# key: (type, default, help). None default = optional and unset.
PROFILE_KEYS: dict[str, tuple[Any, Any, str]] = {
    "partition": (str, None, "SLURM partition (required)"),
    "time_min": (int, None, "time limit of a job in minutes (required)"),
    "cpus_per_task": (int, 4, "CPUs per job"),
    "mem_gb": ((int, float), 16, "memory per job in GB"),
    "gpus_per_task": (int, 1, "GPUs per job (0 for CPU-only)"),
    "account": (str, None, "--account"),
    "qos": (str, None, "--qos"),
    "array_parallelism": (int, 64, "most array tasks running at once"),
    "runs_per_job": (int, 1, "runs packed into one job, run one after another"),
    "max_requeues": (int, 5, "how often a timed-out job requeues itself"),
    "extra_sbatch": (list, [], "extra sbatch options, e.g. ['--constraint=a100']"),
    "setup": (list, [], "shell lines run before the job, e.g. ['source ~/venv/bin/activate']"),
    "gpu_speedup": ((int, float), 20, "how much faster than this CPU a job runs (cost estimates only)"),
}
REQUIRED = ("partition", "time_min")


def load_profile(path: str | None) -> dict:
    """A validated profile with defaults filled in; UserError naming the problem otherwise."""
    if not path:
        raise UserError("--executor slurm needs --slurm-profile FILE (see envs/slurm/example-gpu.yaml)")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"SLURM profile {path!r} not found; profiles live in envs/slurm/ "
                        f"(example-gpu.yaml, cpu-local.yaml)")
    import yaml

    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"SLURM profile {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"SLURM profile {path!r} must be a mapping of keys to values")
    unknown = sorted(set(raw) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"SLURM profile {path!r}: unknown key(s) {', '.join(unknown)}; "
                        f"valid keys: {', '.join(PROFILE_KEYS)}")
    missing = [k for k in REQUIRED if raw.get(k) is None]
    if missing:
        raise UserError(f"SLURM profile {path!r}: missing required key(s) {', '.join(missing)}")
    prof = {}
    for key, (typ, default, _) in PROFILE_KEYS.items():
        value = raw.get(key, default)
        want = typ.__name__ if isinstance(typ, type) else "number"
        if value is None and default is not None:  # `key:` or `key: null` where a value is needed
            raise UserError(f"SLURM profile {path!r}: {key} must be a {want}, got nothing; give a value or "
                            f"delete the line (default {default!r})")
        if value is not None and (not isinstance(value, typ) or isinstance(value, bool)):
            raise UserError(f"SLURM profile {path!r}: {key} must be a {want}, got {value!r}")
        if key in ("time_min", "cpus_per_task", "array_parallelism", "runs_per_job") and value < 1:
            raise UserError(f"SLURM profile {path!r}: {key} must be at least 1, got {value!r}")
        if key in ("gpus_per_task", "max_requeues") and value < 0:
            raise UserError(f"SLURM profile {path!r}: {key} must be 0 or more, got {value!r}")
        if key in ("mem_gb", "gpu_speedup") and not (math.isfinite(value) and value > 0):
            raise UserError(f"SLURM profile {path!r}: {key} must be a number above 0, got {value!r}")
        if key in ("extra_sbatch", "setup") and not all(isinstance(v, str) for v in value):
            raise UserError(f"SLURM profile {path!r}: {key} must be a list of strings")
        prof[key] = value
    prof["name"] = p.stem
    return prof


def submitit_parameters(profile: dict) -> dict:
    """The profile as submitit AutoExecutor parameters."""
    extra = {}
    for line in profile["extra_sbatch"]:
        key, _, value = line.lstrip("-").partition("=")
        extra[key.replace("-", "_")] = value or True
    params = {"timeout_min": profile["time_min"], "slurm_partition": profile["partition"],
              "cpus_per_task": profile["cpus_per_task"], "mem_gb": profile["mem_gb"],
              "slurm_array_parallelism": profile["array_parallelism"], "slurm_setup": profile["setup"],
              "slurm_additional_parameters": extra}
    if profile["gpus_per_task"]:
        params["slurm_gpus_per_task"] = profile["gpus_per_task"]
    if profile["account"]:
        params["slurm_account"] = profile["account"]
    if profile["qos"]:
        params["slurm_qos"] = profile["qos"]
    return params


def chunks(runs: list[dict], size: int) -> list[list[dict]]:
    return [runs[i:i + size] for i in range(0, len(runs), size)]


class JobTask:
    """What one SLURM job (array task) runs: a chunk of runs, plain data only.

    submitit calls ``checkpoint`` on preemption or time-out (it looks the method up by name), so
    this needs no submitit base class and the suite imports submitit only to submit.
    """

    poll_s = 5.0  # how often a job asks again for runs another process holds

    def __init__(self, runs: list[dict], results_dir: str, data_root: str | None):
        self.runs = runs
        self.results_dir = str(results_dir)
        self.data_root = data_root

    def __call__(self) -> int:
        import submitit

        log = None
        try:
            log = str(submitit.JobEnvironment().paths.stdout)
        except RuntimeError:  # not inside a submitit job (tests call it directly)
            pass
        failed, todo, told = [], list(self.runs), set()
        while todo:
            waiting = []
            for run in todo:
                if store.status_of(self.results_dir, run["scale"], run["table"], run["run_id"]) in store.FINISHED:
                    continue  # done before a requeue, or by another process
                print(f"run {run['run_id']}: {run['table']} {run['row']} | {run['col']} seed {run['seed']}", flush=True)
                # Claimed first: a run another process trains (a local invocation, another job) is
                # waited for, not trained twice; this job's own claim from before a requeue is taken over.
                outcome, payload = attempt_run(run, self.results_dir, data_root=self.data_root, checkpoint=True,
                                               log_path=log)
                if outcome == "busy":
                    if run["run_id"] not in told:
                        told.add(run["run_id"])
                        print(f"run {run['run_id']}: claimed by {claims.describe(payload)}; waiting for it", flush=True)
                    waiting.append(run)
                    continue
                print(f"run {run['run_id']}: {payload['status']}"
                      + (" (by another process)" if outcome == "finished" else ""), flush=True)
                if payload["status"] == "failed" and outcome == "trained":
                    print(payload.get("error", ""), file=sys.stderr, flush=True)
                    failed.append(run["run_id"])
            todo = waiting
            if todo:
                time.sleep(self.poll_s)
        if failed:  # non-zero exit, so SLURM shows the job FAILED; siblings are unaffected
            raise RuntimeError(f"{len(failed)} run(s) failed: {', '.join(failed)}; their records hold the error")
        return len(self.runs)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or time-out: requeue this same task (it resumes)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def manifest_path(results_dir: str, scale: str) -> Path:
    return Path(results_dir) / scale / "_slurm" / "manifest.json"


def _manifest_entry_ok(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("table"), str) and isinstance(entry.get("jobs"), list)
            and all(isinstance(j, dict) and isinstance(j.get("job_id"), str) and isinstance(j.get("run_ids"), list)
                    and all(isinstance(r, str) for r in j["run_ids"]) for j in entry["jobs"]))


def read_manifest(results_dir: str, scale: str) -> list[dict]:
    """The submissions recorded at a scale; an unreadable file or malformed entries are left out."""
    try:
        entries = json.loads(manifest_path(results_dir, scale).read_text())
    except (OSError, ValueError):
        return []
    return [e for e in entries if _manifest_entry_ok(e)] if isinstance(entries, list) else []


def _append_manifest(results_dir: str, scale: str, entry: dict) -> None:
    path = manifest_path(results_dir, scale)
    entries = read_manifest(results_dir, scale) + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """job id -> SLURM state for jobs still known to squeue (one call for all of them)."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    # -r: one line per array element, so "123_4" is listed as such, not folded into "123_[4-9]".
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)], text=True,
                         capture_output=True, timeout=60)
    states = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition(" ")
        states[jid] = state
    return states


def _array_parent(job_id: str) -> str:
    return job_id.split("_")[0]


def sbatch_summary(profile: dict, n_tasks: int) -> str:
    """The sbatch options a table's array is submitted with (through submitit)."""
    opts = [f"--partition={profile['partition']}", f"--time={profile['time_min']}",
            f"--cpus-per-task={profile['cpus_per_task']}", f"--mem={profile['mem_gb']}G"]
    if profile["gpus_per_task"]:
        opts.append(f"--gpus-per-task={profile['gpus_per_task']}")
    for key in ("account", "qos"):
        if profile[key]:
            opts.append(f"--{key}={profile[key]}")
    opts += [f"--array=0-{n_tasks - 1}%{profile['array_parallelism']}", "--signal=USR2@90 (requeue on time-out, "
             f"at most {profile['max_requeues']} times)"] + list(profile["extra_sbatch"])
    return " ".join(opts)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, profile: dict, wait: bool = False, poll_s: float = 5.0):
        self.profile = profile
        self.wait = wait
        self.poll_s = poll_s

    def run(self, runs, *, results_dir, data_root, progress: Progress):
        if not runs:
            return []
        if shutil.which("sbatch") is None:
            raise UserError("SLURM is not available here (no sbatch on PATH); use --executor local, or run "
                            "envs/slurm/local_cluster.sh start for a local test cluster")
        import submitit

        live = runs_in_live_jobs(results_dir, {r["scale"] for r in runs})
        queued = [r for r in runs if (r["table"], r["run_id"]) in live]
        if queued:
            print(f"{len(queued)} run(s) are still queued or running in earlier jobs; not resubmitted",
                  file=sys.stderr)
            runs = [r for r in runs if (r["table"], r["run_id"]) not in live]
            if not runs:
                return []
        by_table: dict[tuple[str, str], list[dict]] = {}
        for run in runs:
            by_table.setdefault((run["scale"], run["table"]), []).append(run)
        submitted = []
        conf = os.environ.get("SLURM_CONF")
        for (scale, table), table_runs in by_table.items():
            folder = Path(results_dir) / scale / "_slurm" / table
            ex = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                       slurm_max_num_timeout=self.profile["max_requeues"])
            ex.update_parameters(name=f"fgbench-{table.replace('/', '-')}", **submitit_parameters(self.profile))
            packs = chunks(table_runs, self.profile["runs_per_job"])
            try:
                with submitit.helpers.clean_env():
                    if conf:
                        os.environ["SLURM_CONF"] = conf  # clean_env hides it; the cluster needs it
                    with ex.batch():
                        jobs = [ex.submit(JobTask(p, results_dir, data_root)) for p in packs]
            except Exception as e:  # noqa: BLE001 - sbatch's own message is the useful part
                msg = str(e).strip().splitlines()
                raise UserError(f"sbatch refused the {table} array: {msg[-1] if msg else e}; "
                                f"check the profile {self.profile['name']!r}") from None
            entry = {"table": table, "scale": scale, "folder": str(folder), "profile": self.profile["name"],
                     "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "jobs": [{"job_id": j.job_id, "run_ids": [r["run_id"] for r in p],
                               "stdout": str(j.paths.stdout)} for j, p in zip(jobs, packs)]}
            _append_manifest(results_dir, scale, entry)
            submitted.append((entry, table_runs))
            print(f"submitted {table} ({scale}): {len(table_runs)} runs in {len(jobs)} array task(s), job "
                  f"{_array_parent(jobs[0].job_id)}; logs in {folder}", file=sys.stderr)
        if not self.wait:
            print("returning now; follow with `python run_all.py --status` (same --tables/--scale), "
                  "or rerun with --wait", file=sys.stderr)
            return []
        return self._wait(submitted, results_dir, progress)

    def _wait(self, submitted, results_dir, progress: Progress) -> list[dict]:
        """Follow records as jobs write them; stop when every run has one or its job is gone."""
        pending = {(r["table"], r["run_id"]): r for _, rs in submitted for r in rs}
        job_of = {(e["table"], rid): j["job_id"] for e, _ in submitted for j in e["jobs"] for rid in j["run_ids"]}
        records, last_queue, gone = [], 0.0, set()
        while pending:
            for key, run in list(pending.items()):
                rec = store.read_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]))
                if rec is not None and (rec["status"] != "failed" or job_of[key] in gone):
                    progress.start_run(run)
                    progress.end_run(rec)
                    records.append(rec)
                    del pending[key]
            if not pending:
                break
            if time.monotonic() - last_queue > 6 * self.poll_s:  # sparse scheduler queries
                last_queue = time.monotonic()
                ids = sorted({job_of[k] for k in pending})
                alive = queue_states(ids)
                now_gone = {j for j in ids if j not in alive}
                for key in [k for k in pending if job_of[k] in now_gone]:
                    if job_of[key] in gone:  # gone twice in a row and still no record: lost
                        run = pending.pop(key)
                        print(f"job {job_of[key]} ended without a record for run {run['run_id']}; "
                              f"it stays to do (see {run['table']} logs)", file=sys.stderr)
                gone |= now_gone
            time.sleep(self.poll_s)
        return records


def _manifest_jobs(results_dir: str, scales) -> dict[tuple[str, str], str]:
    """(table, run_id) -> the job id that last took the run, from the manifests."""
    job_of = {}
    for scale in scales:
        for entry in read_manifest(results_dir, scale):
            for j in entry["jobs"]:
                for rid in j["run_ids"]:
                    job_of[(entry["table"], rid)] = j["job_id"]
    return job_of


def runs_in_live_jobs(results_dir: str, scales) -> set[tuple[str, str]]:
    """(table, run_id) of runs whose job squeue still lists (pending, running, requeued)."""
    job_of = _manifest_jobs(results_dir, scales)
    alive = queue_states(sorted(set(job_of.values())))
    return {key for key, job in job_of.items() if job in alive}


def status(runs: list[dict], results_dir: str) -> list[dict]:
    """Per table: counts of pending, running, done, failed, and the failures' log paths."""
    job_of = _manifest_jobs(results_dir, {r["scale"] for r in runs})
    states = queue_states(sorted(set(job_of.values())))
    rows: dict[str, dict] = {}
    for run in runs:
        row = rows.setdefault(run["table"], {"table": run["table"], "pending": 0, "running": 0, "done": 0,
                                             "failed": 0, "not submitted": 0, "logs": []})
        rec = store.read_record(store.record_path(results_dir, run["scale"], run["table"], run["run_id"]))
        if rec is not None and rec["status"] in store.FINISHED:
            row["done"] += 1
            continue
        job = job_of.get((run["table"], run["run_id"]))
        state = states.get(job) if job else None
        if state is None and claims.live_holder(claims.claim_path(results_dir, run["scale"], run["run_id"])):
            state = "RUNNING"  # claimed by a live process: a local invocation or worker, or a job
        if state == "RUNNING":
            row["running"] += 1
        elif state is not None:
            row["pending"] += 1
        elif rec is not None:  # failed, and not queued again
            row["failed"] += 1
            row["logs"].append(f"{run['run_id']}: {rec.get('log_path') or 'no log (ran locally)'}")
        else:
            row["not submitted"] += 1
    return list(rows.values())
