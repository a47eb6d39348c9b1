"""Where table specs come from: each paper package exports ``TABLES`` without importing its engine."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import UserError
from .spec import TableSpec

# Paper packages under benchmarks/. Each exports TABLES (list of TableSpec), train(config, ...),
# validate_config(config) and estimate_seconds(config); only train may import torch or jax.
PAPERS = ("ren2023", "fournier2023", "bacho2024")
# Engines that run cells of other papers' specs (a spec's ``engine``): the theory simulations of
# benchmarks/theory reproduce figures of Ren et al. and Bacho & Chu. They export train,
# validate_config and estimate_seconds, but no TABLES.
ENGINES = ("theory",)


def paper_module(paper: str) -> Any:
    if paper not in PAPERS:
        raise UserError(f"unknown paper {paper!r}; known papers: {', '.join(PAPERS)}")
    return importlib.import_module(f"benchmarks.{paper}")


def engine_module(config: dict) -> Any:
    """The package that trains a run config: its ``engine`` if it names one, else its paper."""
    name = config.get("engine") or config["paper"]
    if name in ENGINES:
        return importlib.import_module(f"benchmarks.{name}")
    return paper_module(name)


def all_tables() -> list[TableSpec]:
    tables = []
    for paper in PAPERS:
        tables.extend(paper_module(paper).TABLES)
    return tables


def select_tables(ids: list[str] | None) -> list[TableSpec]:
    """Tables named by id (``bacho2024/table1``) or by paper prefix (``bacho2024``), in registry order."""
    tables = all_tables()
    if not ids:
        return tables
    chosen: list[TableSpec] = []
    for want in ids:
        w = want.strip().strip("/").lower()
        hits = [t for t in tables if t.id.lower() == w or t.paper.lower() == w]
        if not hits:
            known = ", ".join(t.id for t in tables)
            raise UserError(f"unknown table {want!r}; known tables: {known} (or a paper prefix: "
                            f"{', '.join(PAPERS)}); see `python run_all.py --list`")
        chosen.extend(t for t in hits if t not in chosen)
    return [t for t in tables if t in chosen]
