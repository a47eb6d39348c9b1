"""Executors: how planned runs get executed. ``local`` runs them one after another in this process.

An executor receives plain run dicts (see ``spec.expand``) and must make every run end in a record
written by ``runner.execute_run``. A SLURM executor (submitit job arrays) plugs in here.
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
            rec = execute_run(run, results_dir, data_root=data_root, progress=progress.epoch)
            progress.end_run(rec)
            records.append(rec)
        return records


EXECUTORS = {"local": LocalExecutor}


def get_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()
