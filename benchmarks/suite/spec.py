"""Table specs: one paper table as pure data, and its expansion into run configs.

A ``TableSpec`` says which run fills each (row, col) cell and what the paper printed there. Expanding
it at a scale (``smoke``, ``small``, ``screen``, ``full``) merges, in this order, the table defaults,
the cell's overrides, the scale's overrides, the scale's per-column overrides and the fidelity
variant's changes, adds the seed, and hashes the result into a stable ``run_id``. Nothing here knows
about torch or jax.

Fidelity variants: where a paper's text and its authors' code disagree, a spec declares named
``Variant``s (``code``, or single decisions), each a list of config changes with their sources. The
baseline is the text itself, the implicit variant ``paper``: its configs carry no ``variant`` key, so
its run ids are those of a spec without variants. Every other variant adds ``variant: <name>`` to
the configs it changes, so its runs and records never mix with another variant's. ``chosen`` names,
per row, the variant the evidence favours; that is what a run without ``--variant`` uses.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import SpecError, UserError

SCALES = ("smoke", "small", "screen", "full")
# Every table defines these; ``screen`` (the paper's protocol on the full data, cut short, one seed,
# to choose between fidelity variants) only where a table has variants worth screening.
REQUIRED_SCALES = ("smoke", "small", "full")
PAPER = "paper"  # the implicit baseline variant: the paper's text
ALL_VARIANTS = "all"  # --variant all: the baseline and every variant, each on the cells it changes
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
class Change:
    """Config keys a variant sets (``set``) in the cells whose config matches ``when`` (every key:
    equal to its value, or one of them when the value is a list; empty matches every cell), and where
    the choice comes from (``source``: page, equation or algorithm line of the paper; file of the
    authors' code)."""

    set: Mapping[str, Any]
    source: str
    when: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, config: Mapping[str, Any]) -> bool:
        return all(config.get(k, _ABSENT) in v if isinstance(v, (list, tuple)) else config.get(k, _ABSENT) == v
                   for k, v in self.when.items())


_ABSENT = object()


@dataclass(frozen=True)
class Variant:
    """A named fidelity variant: changes to the paper's baseline config, each with its source."""

    name: str
    summary: str
    changes: tuple[Change, ...]

    def apply(self, config: Mapping[str, Any]) -> dict:
        """The config with every applicable change made (conditions see the baseline config)."""
        out = dict(config)
        for ch in self.changes:
            if ch.applies(config):
                out.update(ch.set)
        return out


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
    # Fidelity variants beside the implicit ``paper`` baseline, and per row the one the evidence
    # favours (rows not named use ``paper``); the spec notes say why.
    variants: tuple[Variant, ...] = ()
    chosen: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        validate(self)

    @property
    def variant_names(self) -> tuple[str, ...]:
        return (PAPER, *(v.name for v in self.variants))

    def variant(self, name: str) -> Variant | None:
        """The named variant; None for the baseline ``paper``."""
        for v in self.variants:
            if v.name == name:
                return v
        if name == PAPER:
            return None
        raise UserError(f"table {self.id} has no variant {name!r}; its variants are: "
                        f"{', '.join(self.variant_names)} (see `python run_all.py --list --tables {self.id}`)")

    def chosen_variant(self, row: str) -> str:
        return self.chosen.get(row, PAPER)

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
    for s in REQUIRED_SCALES:
        if s not in spec.scales:
            raise SpecError(f"{where}: no '{s}' scale; every table defines {', '.join(REQUIRED_SCALES)}")
    for s, sc in spec.scales.items():
        if s not in SCALES:
            raise SpecError(f"{where}: unknown scale {s!r}; use one of {', '.join(SCALES)}")
        for col in sc.col_config:
            if col not in spec.cols:
                raise SpecError(f"{where}: scale '{s}' overrides unknown column {col!r}")
    if spec.seeds < 1:
        raise SpecError(f"{where}: seeds must be >= 1")
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names) or PAPER in names or ALL_VARIANTS in names:
        raise SpecError(f"{where}: variant names must be unique and not {PAPER!r} or {ALL_VARIANTS!r}")
    for v in spec.variants:
        if not v.changes or any(not ch.set or not ch.source for ch in v.changes):
            raise SpecError(f"{where}: variant {v.name!r} needs changes, each with keys to set and a source")
        for ch in v.changes:
            try:
                canonical_json({**ch.set, **ch.when})
            except (TypeError, ValueError) as e:
                raise SpecError(f"{where}: variant {v.name!r} change is not plain JSON: {e}") from None
            if "variant" in ch.set:
                raise SpecError(f"{where}: variant {v.name!r} may not set the 'variant' key itself")
    for row, name in spec.chosen.items():
        if row not in spec.rows:
            raise SpecError(f"{where}: chosen variant for unknown row {row!r}")
        if name not in (PAPER, *names):
            raise SpecError(f"{where}: row {row!r} chooses unknown variant {name!r}")


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
    variant: str | None = None,
) -> list[dict]:
    """Fully resolved runs of a table at a scale, in table order.

    Each run is ``{"table", "row", "col", "seed", "variant", "run_id", "config"}``. ``resolve`` may
    add keys to a config before it is hashed (the runner uses it to record which data source serves
    a run). ``variant``: None runs each row's chosen variant; ``paper`` the baseline; a named variant
    only the cells it changes (the others would repeat the baseline's runs); ``all`` the baseline
    and every variant.
    """
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if scale not in spec.scales:
        having = "" if scale != "screen" else " (the screen exists where a table has fidelity variants to choose between)"
        raise UserError(f"table {spec.id} has no {scale!r} scale{having}; choose other tables or another --scale")
    if variant == ALL_VARIANTS:
        return [run for name in spec.variant_names
                for run in expand(spec, scale, seeds=seeds, rows=rows, cols=cols, resolve=resolve, variant=name)]
    if variant is not None:
        spec.variant(variant)  # unknown name: UserError listing the table's variants
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
            name = spec.chosen_variant(row) if variant is None else variant
            v = spec.variant(name)
            if v is not None:
                changed = v.apply(base)
                if changed == base:
                    if variant is not None:
                        continue  # this variant leaves the cell as the paper has it: the baseline's runs
                    # a chosen variant that does not touch this cell: the baseline's runs
                    name, changed = PAPER, base
                else:
                    changed["variant"] = name
                base = changed
            for seed in range(n_seeds):
                config = dict(base, seed=seed)
                if resolve is not None:
                    config.update(resolve(config))
                runs.append({"table": spec.id, "row": row, "col": col, "seed": seed, "variant": name,
                             "run_id": run_id(config), "config": config})
    return runs


def variant_of(config: Mapping[str, Any]) -> str:
    """The fidelity variant a run config (or record config) belongs to."""
    return str(config.get("variant") or PAPER)


def variant_changes(spec: TableSpec, name: str, row: str, col: str) -> dict:
    """The keys variant ``name`` changes in cell (row, col), as {key: (baseline value, new value)}."""
    cell = spec.cell(row, col)
    v = spec.variant(name)
    if cell is None or v is None:
        return {}
    base = {**spec.defaults, **cell.config}
    new = v.apply(base)
    return {k: (base.get(k), new[k]) for k in new if base.get(k, _ABSENT) != new[k]}


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
