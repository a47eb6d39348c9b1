"""Table specs: one paper table as pure data, and its expansion into run configs.

A ``TableSpec`` says which run fills each (row, col) cell and what the paper printed there. Expanding
it at a scale (``smoke``, ``small``, ``full``) merges, in this order, the table defaults, the cell's
overrides, the scale's overrides and the scale's per-column overrides, adds the seed, and hashes the
result into a stable ``run_id``. Nothing here knows about torch or jax.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import SpecError, UserError

SCALES = ("smoke", "small", "full")
METRICS = ("test_acc", "test_err", "train_err", "slope", "max_rel_dev")
# Metrics where a larger number is better; used for rankings in reports. Figure metrics (a fitted
# log-log slope; the largest relative deviation of a measured curve from its theory line, in
# percent) are compared with their theory, not ranked.
HIGHER_IS_BETTER = {"test_acc": True, "test_err": False, "train_err": False}
KINDS = ("table", "figure")


@dataclass(frozen=True)
class Published:
    """A number exactly as the paper printed it (strings keep the paper's precision).

    ``value`` is the printed mean ("98.46", or "NaN" where the paper prints NaN); ``std`` the
    printed spread or None; ``n`` the number of seeds behind it. A value the source text lost is
    ``missing`` with the reason, and has no value.
    """

    value: str | None
    std: str | None = None
    n: int | None = None
    missing: str | None = None

    def __post_init__(self):
        if self.missing is None:
            if self.value is None:
                raise SpecError("a published value needs a value or a 'missing' reason")
            _parse_number(self.value)
            if self.std is not None:
                _parse_number(self.std)
        elif self.value is not None:
            raise SpecError("a published value is either given or missing, not both")

    @property
    def mean(self) -> float:
        return math.nan if self.value is None else _parse_number(self.value)

    @property
    def spread(self) -> float | None:
        return None if self.std is None else _parse_number(self.std)


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpecError(f"published value {text!r} is not a number") from None


@dataclass(frozen=True)
class Cell:
    """One table cell: the config overrides of its runs and the published number per metric."""

    row: str
    col: str
    config: Mapping[str, Any]
    published: Mapping[str, Published]


@dataclass(frozen=True)
class Scale:
    """How a table runs at one scale.

    ``seeds`` None means the paper's seed count. ``config`` overrides every cell; ``col_config``
    overrides the cells of one column (e.g. a dataset substitution). ``note`` says in one line what
    the scale does; reports print it.
    """

    note: str
    seeds: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    col_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TableSpec:
    id: str  # "<paper>/<table>", e.g. "bacho2024/table1"
    paper: str  # engine package under benchmarks/, e.g. "bacho2024"
    title: str
    source: str  # where the numbers are printed, e.g. "Bacho & Chu 2024, Table 1, p. 577"
    metrics: tuple[str, ...]
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    defaults: Mapping[str, Any]
    cells: tuple[Cell, ...]
    seeds: int  # how many seeds the paper averaged
    scales: Mapping[str, Scale]
    notes: str = ""  # fidelity choices and their sources
    # "figure": a paper figure reproduced as a spec (cells are curves; reports plot them against
    # their theory lines). ``engine`` names the package that runs the cells when it is not the
    # paper's own (the theory simulations in benchmarks/theory); it is added to every run config.
    kind: str = "table"
    engine: str = ""

    def __post_init__(self):
        validate(self)

    def cell(self, row: str, col: str) -> Cell | None:
        for c in self.cells:
            if c.row == row and c.col == col:
                return c
        return None

    @property
    def table(self) -> str:
        return self.id.split("/", 1)[1]


def validate(spec: TableSpec) -> None:
    """Raise SpecError naming the first problem in a spec."""
    where = f"table spec {spec.id!r}"
    if spec.id.count("/") != 1 or not spec.id.startswith(spec.paper + "/"):
        raise SpecError(f"{where}: id must look like '{spec.paper}/<table>'")
    if spec.kind not in KINDS:
        raise SpecError(f"{where}: unknown kind {spec.kind!r}; use one of {', '.join(KINDS)}")
    for m in spec.metrics:
        if m not in METRICS:
            raise SpecError(f"{where}: unknown metric {m!r}; use one of {', '.join(METRICS)}")
    for name, axis in (("rows", spec.rows), ("cols", spec.cols)):
        if len(set(axis)) != len(axis):
            raise SpecError(f"{where}: duplicate entries in {name}")
    seen = set()
    for c in spec.cells:
        if c.row not in spec.rows or c.col not in spec.cols:
            raise SpecError(f"{where}: cell ({c.row}, {c.col}) is not in the table's rows x cols")
        if (c.row, c.col) in seen:
            raise SpecError(f"{where}: cell ({c.row}, {c.col}) appears twice")
        seen.add((c.row, c.col))
        for m in c.published:
            if m not in spec.metrics:
                raise SpecError(f"{where}: cell ({c.row}, {c.col}) publishes {m!r}, not a table metric")
        try:
            canonical_json(dict(c.config))
        except (TypeError, ValueError) as e:
            raise SpecError(f"{where}: cell ({c.row}, {c.col}) config is not plain JSON: {e}") from None
    for s in SCALES:
        if s not in spec.scales:
            raise SpecError(f"{where}: no '{s}' scale; every table defines {', '.join(SCALES)}")
        for col in spec.scales[s].col_config:
            if col not in spec.cols:
                raise SpecError(f"{where}: scale '{s}' overrides unknown column {col!r}")
    if spec.seeds < 1:
        raise SpecError(f"{where}: seeds must be >= 1")


def canonical_json(config: Mapping[str, Any]) -> str:
    """The one JSON text of a config: sorted keys, no spaces, no NaN (so hashes agree everywhere)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: Mapping[str, Any]) -> str:
    """Short, stable hash of a fully resolved config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]


def expand(
    spec: TableSpec,
    scale: str,
    *,
    seeds: int | None = None,
    rows: Iterable[str] | None = None,
    cols: Iterable[str] | None = None,
    resolve: Callable[[dict], Mapping[str, Any]] | None = None,
) -> list[dict]:
    """Fully resolved runs of a table at a scale, in table order.

    Each run is ``{"table", "row", "col", "seed", "run_id", "config"}``. ``resolve`` may add keys to
    a config before it is hashed (the runner uses it to record which data source serves a run).
    """
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    sc = spec.scales[scale]
    n_seeds = seeds if seeds is not None else (sc.seeds if sc.seeds is not None else spec.seeds)
    if n_seeds < 1:
        raise UserError("--seeds must be at least 1")
    rows = _select(spec, "row", spec.rows, rows)
    cols = _select(spec, "col", spec.cols, cols)
    runs = []
    for row in spec.rows:
        if row not in rows:
            continue
        for col in spec.cols:
            cell = spec.cell(row, col)
            if col not in cols or cell is None:
                continue
            base = {**spec.defaults, **cell.config, **sc.config, **sc.col_config.get(col, {})}
            base["paper"] = spec.paper
            if spec.engine:
                base["engine"] = spec.engine
            for seed in range(n_seeds):
                config = dict(base, seed=seed)
                if resolve is not None:
                    config.update(resolve(config))
                runs.append({"table": spec.id, "row": row, "col": col, "seed": seed,
                             "run_id": run_id(config), "config": config})
    return runs


def axis_matching(axis, wanted: str) -> set[str]:
    """Entries of a row/col axis that a filter names, case-insensitively.

    A filter naming an entry exactly selects just that entry ("MNIST" is not "Fashion MNIST");
    otherwise it selects the entries that contain it as a word, so ``FDFA`` selects every
    "<depth>L FDFA" row of Table B.6.
    """
    w = wanted.strip().lower()
    exact = {a for a in axis if a.lower() == w}
    return exact or {a for a in axis if w in a.lower().split()}


def _select(spec: TableSpec, kind: str, axis: tuple[str, ...], wanted) -> set[str]:
    if wanted is None:
        return set(axis)
    # A filter may name a row of one table and not of another; the runner checks that every
    # filter matches somewhere in the selection.
    return set().union(*(axis_matching(axis, w) for w in wanted))


def published_rows(spec: TableSpec) -> list[dict]:
    """Every published number of a table, in table order, as export rows."""
    out = []
    for row in spec.rows:
        for col in spec.cols:
            cell = spec.cell(row, col)
            if cell is None:
                continue
            for metric in spec.metrics:
                p = cell.published.get(metric)
                if p is None:
                    continue
                out.append({"table": spec.id, "row": row, "col": col, "metric": metric,
                            "value": "missing" if p.missing else p.value,
                            "std": "" if p.std is None else p.std})
    return out
