"""Executors: how planned runs get executed. ``local`` runs them one after another in this process.

An executor receives plain run dicts (see ``spec.expand``) and must make every run end in a record
written by ``runner.execute_run``. ``slurm`` (submitit job arrays) lives in ``slurm.py``.
"""

from __future__ import annotations

from .errors import UserError
from .progress import Progress
from .runner import execute_run


class Executor:
    name = "base"

    def run(self, runs: list[dict], *, results_dir: str, data_root: str | None,
            progress: Progress) -> list[dict]:
        """Execute runs; return their records (in order)."""
        raise NotImplementedError


class LocalExecutor(Executor):
    """In-process, sequential. One failing run never stops the others."""

    name = "local"

    def run(self, runs, *, results_dir, data_root, progress):
        records = []
        for run in runs:
            progress.start_run(run)
            # Checkpoints every epoch beyond smoke scale (smoke runs take seconds): a run interrupted
            # (Ctrl-C, kill, a lost session) resumes from its last finished epoch when rerun.
            rec = execute_run(run, results_dir, data_root=data_root, progress=progress.epoch,
                              checkpoint=run["scale"] != "smoke")
            progress.end_run(rec)
            records.append(rec)
        return records


EXECUTORS = ("local", "slurm")


def get_executor(name: str, *, slurm_profile: str | None = None, wait: bool = False) -> Executor:
    """The executor a command line names; the slurm one needs a profile (validated here, before
    anything is submitted)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
    if name == "local":
        if slurm_profile:
            raise UserError("--slurm-profile applies to --executor slurm only")
        return LocalExecutor()
    from .slurm import SlurmExecutor, load_profile

    return SlurmExecutor(load_profile(slurm_profile), wait=wait)
