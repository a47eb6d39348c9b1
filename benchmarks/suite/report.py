"""Reports: our numbers beside the published ones, one paper table at a time.

Joins the run records of a table at a scale with the spec's published values and writes
``<reports>/<scale>/<paper>/<table>.{md,csv,tex,png}`` plus an index ``<reports>/README.md``.
Every header says the scale, the data behind the numbers (real / subset / synthetic) and the
commits, because a number without its protocol is easy to mistake for a reproduction. Record
files that cannot be read, or that parse into something malformed, are skipped and named in the
header: one bad file never stops a report.
Framework-free: numpy, pandas and matplotlib (Agg) only; never torch or jax.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .errors import UserError
from .spec import PAPER, SCALES, Published, TableSpec, expand, run_id, variant_changes
from .store import scan_files

MARKS = {True: "✓", False: "✗", None: ""}
CSV_COLUMNS = ("row", "col", "metric", "ours_mean", "ours_std", "ours_n", "n_diverged", "n_failed",
               "published_value", "published_std", "published_missing", "agrees")
SYNTHETIC_LINE = "SYNTHETIC DATA: smoke test of the pipeline, not a reproduction"


# ----------------------------------------------------------------------------- statistics

def _in_spec(spec: TableSpec, rec: dict) -> bool:
    """A record counts only while its (row, col) is still a cell of the spec (stale ones are ignored)."""
    return rec.get("table", spec.id) == spec.id and spec.cell(rec.get("row"), rec.get("col")) is not None


def _cell_key(config: dict) -> str:
    """What makes two runs the same experiment up to seed and data source (a --seeds override and a
    data root added later still count; an edited spec or scale does not)."""
    return run_id({k: v for k, v in config.items() if k not in ("seed", "data_source")})


FIGURE_METRICS = ("slope", "slope_se", "theory_slope", "max_rel_dev")
FIGURE_CURVES = ("x", "empirical", "theory")


def _numbers(values) -> bool:
    return isinstance(values, list) and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                            for v in values)


def record_problem(spec: TableSpec, rec: dict) -> str | None:
    """Why a record that the store accepts cannot enter this table's report, or None: a table
    metric or the curve a report draws that is not a number, a config with NaN (it has no run
    id), a finished figure record without its fitted slopes and curves."""
    try:
        _cell_key(rec.get("config") or {})
    except (TypeError, ValueError):
        return "'config' holds a NaN or infinite number"
    metrics = rec.get("metrics") or {}
    for m in spec.metrics:
        v = metrics.get(m)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            return f"metric '{m}' is {type(v).__name__} {v!r}, not a number"
    curves = metrics.get("curves") or {}
    if spec.kind == "figure":
        if rec.get("status") == "ok":
            for m in FIGURE_METRICS:
                if not _numbers([metrics.get(m)]) or metrics.get(m) is None:
                    return f"figure record without a number for metric '{m}'"
            if not all(_numbers(curves.get(k)) for k in FIGURE_CURVES):
                return f"figure record without numeric curves {', '.join(FIGURE_CURVES)}"
        return None
    for key in ("epoch", "test_acc", *spec.metrics):
        if key in curves and not _numbers(curves[key]):
            return f"curve '{key}' holds something other than numbers"
    return None


def scan(spec: TableSpec, results_dir, scale: str) -> tuple[list[dict], list[tuple[str, str]]]:
    """The table's usable records at a scale, and (file name, why) of the record files skipped:
    unreadable, not JSON, malformed (``store.record_problem``) or unfit for this report."""
    kept, bad = [], []
    for name, rec, why in scan_files(results_dir, scale, spec.id):
        why = why or record_problem(spec, rec)
        if why is None:
            kept.append(rec)
        else:
            bad.append((name, why))
    return kept, bad


def skipped_line(bad: list[tuple[str, str]], limit: int = 20) -> str | None:
    """One header line naming the skipped record files and why; None when there are none."""
    if not bad:
        return None
    named = "; ".join(f"{name}: {why}" for name, why in bad[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return (f"Skipped {len(bad)} unreadable or malformed record file(s), counted nowhere in this report "
            f"(a run whose record this is counts as not run, and the next run of its command redoes it): "
            f"{named}{more}")


def _load(spec: TableSpec, results_dir, scale: str, variant: str | None = None) -> tuple[list[dict], int]:
    """The table's records at a scale whose config is a current cell's under ``variant`` (None: each
    row's chosen variant), and how many records were skipped (an older spec or scale definition;
    another variant's records are not counted as skipped). A record's config names its variant, so
    records of different variants never share a cell."""
    current = {(r["row"], r["col"], _cell_key(r["config"])) for r in expand(spec, scale, seeds=1, variant=variant)}
    any_variant = {(r["row"], r["col"], _cell_key(r["config"]))
                   for r in expand(spec, scale, seeds=1, variant="all")}
    recs = scan(spec, results_dir, scale)[0]
    kept, stale = [], 0
    for r in recs:
        key = (r.get("row"), r.get("col"), _cell_key(r.get("config") or {}))
        if _in_spec(spec, r) and key in current:
            kept.append(r)
        elif not (_in_spec(spec, r) and key in any_variant):
            stale += 1
    return kept, stale


def _number(x: Any) -> float | None:
    try:
        return None if x is None or isinstance(x, bool) else float(x)
    except (TypeError, ValueError):
        return None


def cell_stats(spec: TableSpec, records: Iterable[dict]) -> dict:
    """Per cell of the spec and per table metric: ``mean, std, n, n_diverged, n_failed, values``.

    ``values`` holds one number a finished run, NaN for a diverged run (the paper prints NaN too;
    an ``ok`` run whose metric is not finite counts as diverged). ``mean``/``std`` are over the
    finite values and ``n`` counts them; std is sample std (ddof=1), None when n < 2. ``mean`` is
    None when no run finished (not run, or only failures) and NaN when every finished run diverged.
    Failed runs are not values; they are only counted. Every spec cell has an entry.
    """
    acc = {(r, c): {m: {"values": [], "n_failed": 0} for m in spec.metrics}
           for r in spec.rows for c in spec.cols if spec.cell(r, c) is not None}
    for rec in records:
        key = (rec.get("row"), rec.get("col"))
        if key not in acc or not _in_spec(spec, rec):
            continue
        status, metrics = rec.get("status"), rec.get("metrics") or {}
        for m, a in acc[key].items():
            if status == "failed":
                a["n_failed"] += 1
            elif status == "diverged":
                a["values"].append(math.nan)
            elif status == "ok" and (v := _number(metrics.get(m))) is not None:
                a["values"].append(v)  # an ok record lacking the metric adds nothing
    out = {}
    for key, per_metric in acc.items():
        out[key] = {}
        for m, a in per_metric.items():
            finite = [v for v in a["values"] if math.isfinite(v)]
            n_div = len(a["values"]) - len(finite)
            mean = float(np.mean(finite)) if finite else (math.nan if n_div else None)
            std = float(np.std(finite, ddof=1)) if len(finite) >= 2 else None
            out[key][m] = {"mean": mean, "std": std, "n": len(finite), "n_diverged": n_div,
                           "n_failed": a["n_failed"], "values": a["values"]}
    return out


def agrees(ours_mean: float | None, published: Published | None) -> bool | None:
    """Whether our mean matches the paper: within 2 published std, or 1 point when no std is printed.

    None when not comparable (no published value, a ``missing`` one, or no mean of ours). A
    published NaN agrees only with an all-diverged cell of ours (NaN), and vice versa.
    """
    if published is None or published.missing is not None or ours_mean is None:
        return None
    ours, pub = float(ours_mean), published.mean
    if math.isnan(ours) or math.isnan(pub):
        return math.isnan(ours) and math.isnan(pub)
    tol = 1.0 if published.spread is None else 2.0 * published.spread
    return abs(ours - pub) <= tol + 1e-9  # slack for float noise in printed decimals


def _spearman(ours: list, published: list) -> tuple[float, int]:
    """Spearman rho (Pearson on pandas average ranks) over pairs where both are finite, and their count."""
    df = pd.DataFrame({"a": ours, "b": published}, dtype=float).replace([np.inf, -np.inf], np.nan).dropna()
    if len(df) < 2:
        return math.nan, len(df)
    r = df.rank()
    if r["a"].nunique() < 2 or r["b"].nunique() < 2:
        return math.nan, len(df)  # a constant side has no ranking to compare
    return float(r["a"].corr(r["b"])), len(df)


def _summary(spec: TableSpec, stats: dict) -> dict:
    """Cells run / comparable / agreeing, and rho per (col, metric) across rows, with their mean.

    A cell agrees when every metric that can be compared agrees.
    """
    run = comparable = agreeing = 0
    for (row, col), per_metric in stats.items():
        if any(s["mean"] is not None for s in per_metric.values()):
            run += 1
        marks = [agrees(s["mean"], spec.cell(row, col).published.get(m)) for m, s in per_metric.items()]
        marks = [a for a in marks if a is not None]
        comparable += bool(marks)
        agreeing += bool(marks) and all(marks)
    rho = {}
    for col in spec.cols:
        for m in spec.metrics:
            ours, pub = [], []
            for row in spec.rows:
                if (row, col) in stats:
                    ours.append(stats[(row, col)][m]["mean"])
                    p = spec.cell(row, col).published.get(m)
                    pub.append(None if p is None else p.mean)
            rho[(col, m)] = _spearman([np.nan if v is None else v for v in ours],
                                      [np.nan if v is None else v for v in pub])
    finite = [r for r, _ in rho.values() if math.isfinite(r)]
    return {"cells": len(stats), "run": run, "comparable": comparable, "agreeing": agreeing,
            "rho": rho, "rho_mean": float(np.mean(finite)) if finite else math.nan}


# ----------------------------------------------------------------------------- text pieces

def _ours_text(s: dict) -> str:
    if s["mean"] is None:
        return f"{s['n_failed']} failed" if s["n_failed"] else "not run"
    if math.isnan(s["mean"]):
        text, notes = "NaN", []
    else:
        text = f"{s['mean']:.2f}" + ("" if s["std"] is None else f" ± {s['std']:.2f}")
        notes = [str(s["n"])]
    notes += [f"{s['n_diverged']} diverged"] * bool(s["n_diverged"]) + [f"{s['n_failed']} failed"] * bool(s["n_failed"])
    return f"{text} ({', '.join(notes)})"


def _pub_text(p: Published | None) -> str:
    if p is None:
        return "—"
    if p.missing is not None:
        return f"missing: {p.missing}"
    return p.value + ("" if p.std is None else f" ± {p.std}")


def _grid(spec: TableSpec, stats: dict) -> tuple[list[str], list[list[str]]]:
    """Header and body of the table in the paper's layout; one sub-column per metric if several."""
    subcols = [(c, m) for c in spec.cols for m in spec.metrics]
    header = [""] + [c if len(spec.metrics) == 1 else f"{c} {m}" for c, m in subcols]
    body = []
    for row in spec.rows:
        line = [row]
        for col, m in subcols:
            if (row, col) not in stats:
                line.append("—")
                continue
            s, p = stats[(row, col)][m], spec.cell(row, col).published.get(m)
            line.append(f"{_ours_text(s)} vs {_pub_text(p)} {MARKS[agrees(s['mean'], p)]}".rstrip())
        body.append(line)
    return header, body


def run_minutes(record: dict) -> float | None:
    """Wall minutes a run took over all its segments; None where unknown (a run resumed from a
    checkpoint whose earlier segments' time its record lacks)."""
    total = _number(record.get("total_wall_time_s"))
    if total is None and "total_wall_time_s" not in record and not record.get("resumed"):
        total = _number(record.get("wall_time_s"))  # an older record of a run that never resumed
    return None if total is None else total / 60.0


def _time_grid(spec: TableSpec, records: list[dict], cells) -> tuple[list[str], list[list[str]]] | None:
    """Median wall minutes per run of each cell (finished runs whose whole time is known), with the
    number of runs behind it; None when no cell has one."""
    minutes: dict = {}
    for r in records:
        key = (r.get("row"), r.get("col"))
        if key in cells and r.get("status") in ("ok", "diverged") and _in_spec(spec, r):
            if (m := run_minutes(r)) is not None:
                minutes.setdefault(key, []).append(m)
    if not minutes:
        return None
    body = []
    for row in spec.rows:
        line = [row]
        for col in spec.cols:
            ms = minutes.get((row, col))
            med = float(np.median(ms)) if ms else None
            line.append("—" if med is None else f"{med:.{0 if med >= 10 else 1}f} ({len(ms)})")
        body.append(line)
    return [""] + list(spec.cols), body


def _devices(records: list[dict]) -> str:
    return ", ".join(sorted({str(r.get("device")) for r in records if r.get("device")})) or "unknown"


def _fmt_rho(summary: dict, spec: TableSpec) -> str:
    parts = []
    for (col, m), (r, n) in summary["rho"].items():
        name = col if len(spec.metrics) == 1 else f"{col} {m}"
        parts.append(f"{name} {'n/a' if math.isnan(r) else f'{r:.2f}'} (n={n})")
    mean = "n/a" if math.isnan(summary["rho_mean"]) else f"{summary['rho_mean']:.2f}"
    return f"{'; '.join(parts)}; mean {mean}"


def _data_lines(records: list[dict]) -> list[str]:
    """One line per dataset: the kinds and descriptions of the data the records were trained on."""
    seen: dict[str, set] = {}
    for rec in records:
        d = rec.get("data") or {}
        if d:
            detail = d.get("description") or d.get("source") or ""
            kind = str(d.get("kind", "unknown"))
            seen.setdefault(str(d.get("dataset", "?")), set()).add(
                (kind.upper() if kind == "synthetic" else kind) + (f" ({detail})" if detail else ""))
    return [f"{name}: {'; '.join(sorted(v))}" for name, v in sorted(seen.items())]


def _kinds(records: list[dict]) -> str:
    kinds = sorted({str((r.get("data") or {}).get("kind")) for r in records if r.get("data")})
    return ", ".join(k.upper() if k == "synthetic" else k for k in kinds) or "unknown"


def _synthetic(records: list[dict]) -> bool:
    return any((r.get("data") or {}).get("kind") == "synthetic" for r in records)


def _commits(records: list[dict]) -> str:
    c = {str(r.get("git_commit") or "unknown") + (" (dirty)" if r.get("git_dirty") else "") for r in records}
    text = ", ".join(sorted(c)) or "none"
    dirty = sum(bool(r.get("git_dirty")) for r in records)
    if dirty:
        text += (f" — {dirty} of {len(records)} records were trained from UNCOMMITTED code (their code is "
                 f"not in history; a stored diff, where present, is beside the record)")
    return text


def variant_line(spec: TableSpec, variant: str | None) -> str | None:
    """Which fidelity variant a report shows; None for a table without variants."""
    if not spec.variants:
        return None
    if variant is None:
        picks: dict[str, list[str]] = {}
        for row in spec.rows:
            picks.setdefault(spec.chosen_variant(row), []).append(row)
        if list(picks) == [PAPER]:
            return f"Variant: {PAPER} (the paper's text) in every row; other variants: {', '.join(spec.variant_names[1:])}"
        return "Variants (the default each row's evidence chose): " + "; ".join(
            f"{name} for {', '.join(rows)}" for name, rows in picks.items())
    if variant == PAPER:
        return f"Variant: {PAPER} (the paper's text)"
    return f"Variant: {variant} ({spec.variant(variant).summary}); cells it leaves as the text has them are not repeated here"


def _header_lines(spec, scale, records, n_stale, commit, variant: str | None = None,
                  skipped: list[tuple[str, str]] = ()) -> list[str]:
    """Header facts shared by md and tex: protocol, variant, data, runs, skipped files, commits."""
    count = {s: sum(r.get("status") == s for r in records) for s in ("ok", "diverged", "failed")}
    lines = [f"Source: {spec.source}", f"Scale: {scale} - {spec.scales[scale].note}"]
    if (vl := variant_line(spec, variant)) is not None:
        lines.append(vl)
    if scale == "screen":
        lines.append("This is a SCREEN of fidelity variants (full data, the paper's schedule cut short, one "
                     "seed): it chooses between variants and is NOT a reproduction.")
    elif scale != "full":
        lines.append(f"At scale '{scale}' the numbers are NOT a reproduction of the paper's protocol.")
    if scale == "full" and spec.kind == "table" and records:
        per_cell: dict = {}
        for r in records:
            if r.get("status") in ("ok", "diverged"):
                per_cell[(r.get("row"), r.get("col"))] = per_cell.get((r.get("row"), r.get("col")), 0) + 1
        if per_cell:
            lo, hi = min(per_cell.values()), max(per_cell.values())
            lines.append(f"Seeds: {lo if lo == hi else f'{lo}-{hi}'} of the paper's {spec.seeds} in each of the "
                         f"{len(per_cell)} cells run")
    lines += [f"Data: {d}" for d in _data_lines(records)] or ["Data: no records"]
    lines.append(f"Runs: {count['ok']} ok / {count['diverged']} diverged / {count['failed']} failed"
                 + (f" ({n_stale} records of cells no longer in the spec, or of an older definition of a cell, ignored)" if n_stale else ""))
    if (line := skipped_line(list(skipped))) is not None:
        lines.append(line)
    lines.append(f"Record commits: {_commits(records)}; rendered at commit {commit}")
    return lines


# ----------------------------------------------------------------------------- writers

def _write_atomic(path: Path, data: str | bytes) -> None:
    """Temp file in the target folder, then rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _markdown(spec, scale, records, n_stale, commit, stats, summary, variant=None, skipped=()) -> str:
    md = lambda s: s.replace("|", "\\|")  # noqa: E731 - a '|' would split a table cell
    title = f"# {spec.id}: {spec.title}" + ("" if variant is None else f" (variant {variant})")
    out = [title, ""]
    if _synthetic(records):
        out += [f"**{SYNTHETIC_LINE}**", ""]
    out += [f"- {line}" for line in _header_lines(spec, scale, records, n_stale, commit, variant, skipped)]
    out += ["", "Each cell: ours `mean ± std (n seeds)` vs published as printed; ✓ within 2 published std "
            "(1 point where the paper gives no std), ✗ outside, blank when not comparable.", ""]
    header, body = _grid(spec, stats)
    out.append("| " + " | ".join(md(h) for h in header) + " |")
    out.append("|" + "---|" * len(header))
    out += ["| " + " | ".join(md(c) for c in line) + " |" for line in body]
    out += ["", f"**Summary:** {summary['run']}/{summary['cells']} cells run, {summary['agreeing']}/"
            f"{summary['comparable']} comparable cells agree; Spearman ρ of ours vs published across rows: "
            f"{_fmt_rho(summary, spec)}."]
    if (times := _time_grid(spec, records, stats)) is not None:
        header, body = times
        out += ["", f"Run time: median wall-clock minutes per run (runs), over all segments of a resumed run; "
                f"device {md(_devices(records))}; runs whose whole time is unknown are left out.", ""]
        out.append("| " + " | ".join(md(h) for h in header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(md(c) for c in line) + " |" for line in body]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        out += ["", "## Failed runs", ""]
        for r in sorted(failed, key=lambda r: (str(r.get("row")), str(r.get("col")), str(r.get("seed")))):
            err = (str(r.get("error") or "no error text").strip().splitlines() or ["no error text"])[0]
            out.append(f"- `{r.get('run_id')}` ({r.get('row')}, {r.get('col')}, seed {r.get('seed')}): {md(err)}")
    if spec.notes:
        out += ["", f"Notes: {spec.notes}"]
    return "\n".join(out) + "\n"


def _csv(spec, stats) -> str:
    num = lambda x: "" if x is None else ("NaN" if math.isnan(x) else format(x, ".10g"))  # noqa: E731
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for (row, col), per_metric in stats.items():
        for m, s in per_metric.items():
            p = spec.cell(row, col).published.get(m)
            a = agrees(s["mean"], p)
            w.writerow([row, col, m, num(s["mean"]), num(s["std"]), s["n"], s["n_diverged"], s["n_failed"],
                        "" if p is None or p.value is None else p.value,
                        "" if p is None or p.std is None else p.std,
                        "" if p is None or p.missing is None else p.missing, "" if a is None else a])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "±": r"$\pm$", "✓": r"\checkmark{}", "✗": r"$\times$", "—": "--"}


def _tex_escape(s: str) -> str:
    """One pass over the characters, so an escape is never escaped again."""
    return "".join(_TEX.get(ch, ch) for ch in s)


def _latex(spec, scale, records, n_stale, commit, stats, summary, variant=None, skipped=()) -> str:
    out = [f"% {spec.id}: {spec.title}"]
    if _synthetic(records):
        out.append(f"% {SYNTHETIC_LINE}")
    out += [f"% {line}" for line in _header_lines(spec, scale, records, n_stale, commit, variant, skipped)]
    out.append(f"% cells run {summary['run']}/{summary['cells']}, agreeing {summary['agreeing']}/"
               f"{summary['comparable']}; Spearman rho: {_fmt_rho(summary, spec)}")
    out.append(r"% needs \usepackage{amssymb} for \checkmark")
    header, body = _grid(spec, stats)
    out += [r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\hline",
            " & ".join(_tex_escape(h) for h in header) + r" \\", r"\hline"]
    out += [" & ".join(_tex_escape(c) for c in line) + r" \\" for line in body]
    out += [r"\hline", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def _curves(spec, records) -> tuple[str | None, dict]:
    """Mean-over-seeds curve per (col, row) of ``ok`` records: the curve metric and {(col,row): Series}."""
    key = None
    for want in ("test_acc", *spec.metrics):
        if any(want in ((r.get("metrics") or {}).get("curves") or {}) for r in records):
            key = want
            break
    if key is None:
        return None, {}
    parts: dict = {}
    for r in records:
        cur = (r.get("metrics") or {}).get("curves") or {}
        if r.get("status") == "ok" and key in cur:
            y = [np.nan if v is None else v for v in cur[key]]
            x = cur.get("epoch") or list(range(1, len(y) + 1))
            if len(x) == len(y):
                parts.setdefault((r["col"], r["row"]), []).append(pd.Series(y, index=x, dtype=float))
    return key, {k: pd.concat(v).groupby(level=0).mean() for k, v in parts.items()}


def _png(spec, scale, records, stats, variant=None) -> bytes:
    """Scatter ours vs published (left); mean test curves per method, one subplot per column (right)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    ckey, curves = _curves(spec, records)
    ccols = [c for c in spec.cols if any((c, r) in curves for r in spec.rows)]
    gc = min(len(ccols), 2)
    gr = math.ceil(len(ccols) / 2) if ccols else 1
    fig = Figure(figsize=(6.5 + 4.2 * gc, max(5.5, 3.4 * gr)), layout="constrained")
    FigureCanvasAgg(fig)
    synthetic = _synthetic(records)
    fig.suptitle(f"{spec.id}: {spec.title}\nscale: {scale}" + ("" if variant is None else f", variant {variant}")
                 + ("  —  SYNTHETIC DATA, not a reproduction" if synthetic else ""),
                 color="red" if synthetic else "black", fontsize=11)
    left, right = fig.subfigures(1, 2, width_ratios=[6.5, 4.2 * gc]) if ccols else (fig, None)
    ax = left.subplots()
    colors = {c: f"C{i % 10}" for i, c in enumerate(spec.cols)}
    markers = {r: "osD^vP*Xph<>"[i % 12] for i, r in enumerate(spec.rows)}
    # Curves colour rows from another palette than the scatter's columns, the same in every subplot.
    # Distinct colours per row: Dark2 for up to 8 rows, tab20 beyond (Table B.6 has 20).
    palette, size = ("Dark2", 8) if len(spec.rows) <= 8 else ("tab20", 20)
    row_colors = {r: matplotlib.colormaps[palette](i % size) for i, r in enumerate(spec.rows)}
    pts = []
    for (row, col), per_metric in stats.items():
        for k, (m, s) in enumerate(per_metric.items()):
            p = spec.cell(row, col).published.get(m)
            if p is None or s["mean"] is None or not (math.isfinite(s["mean"]) and math.isfinite(p.mean)):
                continue
            pts += [p.mean, s["mean"]]
            ax.errorbar(p.mean, s["mean"], yerr=s["std"] or 0, xerr=p.spread or 0, fmt=markers[row],
                        color=colors[col], mfc=colors[col] if k == 0 else "none", ms=7, capsize=3)
    if pts:
        lo, hi = min(pts), max(pts)
        pad = max(1.0, 0.08 * (hi - lo))
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.text(0.5, 0.5, "no cell with both ours and a published number", ha="center", transform=ax.transAxes)
    ax.set_xlabel("published (%)")
    ax.set_ylabel("ours (%), bars = std over seeds")
    ax.set_title(f"ours vs published ({', '.join(spec.metrics)}"
                 + ("; hollow = " + ", ".join(spec.metrics[1:]) if len(spec.metrics) > 1 else "") + ")", fontsize=10)
    handles = [Patch(color=colors[c], label=c) for c in spec.cols]  # colour = column, marker = row
    handles += [Line2D([], [], ls="", marker=markers[r], color="grey", label=r) for r in spec.rows]
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2 if len(handles) > 8 else 1)
    ax.grid(alpha=0.3)
    if right is not None:
        axes = right.subplots(gr, gc, squeeze=False).ravel()
        for a, col in zip(axes, ccols):
            for row in spec.rows:
                if (col, row) in curves:
                    c = curves[(col, row)]
                    a.plot(c.index, c.values, marker=markers[row], ms=4, color=row_colors[row], label=row)
                    # the published level in the row's colour, so a miss reads off the curve
                    cell = spec.cell(row, col)
                    p = cell.published.get(ckey) if cell is not None else None
                    if p is not None and p.missing is None and math.isfinite(p.mean):
                        a.axhline(p.mean, color=row_colors[row], ls=":", lw=1.2)
            a.set_title(f"{col}: {ckey} per epoch, mean over seeds", fontsize=9)
            a.set_xlabel("epoch")
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.set_ylabel(f"{ckey} (%)")
            a.grid(alpha=0.3)
            lines = a.get_legend_handles_labels()[0]
            a.legend(handles=lines + [Line2D([], [], ls=":", color="grey", label="published")], fontsize=7)
        for a in axes[len(ccols):]:
            a.set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# ----------------------------------------------------------------------------- public entry points

def render_table(spec: TableSpec, scale: str, results_dir, reports_dir, commit: str) -> list[Path]:
    """Write ``<reports>/<scale>/<paper>/<table>.{md,csv,tex,png}`` from the records; return the paths.

    For a table with fidelity variants also, per variant with records, ``<table>.<variant>.*`` (that
    variant's records only) and ``<table>.fidelity.{md,csv}`` (every variant beside the published
    number, cell by cell). The plain ``<table>.*`` shows each row's chosen variant.
    """
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if scale not in spec.scales:
        return []
    base = Path(reports_dir) / scale / spec.paper / spec.table
    paths = _render_one(spec, scale, results_dir, base, commit, variant=None)
    if spec.kind == "figure" or not spec.variants:
        return paths
    per_variant = {name: _load(spec, results_dir, scale, name)[0] for name in spec.variant_names}
    if not any(per_variant[name] for name in spec.variant_names[1:]):
        return paths  # only the text's variant has run: the plain report says it all
    for name, records in per_variant.items():
        if records:
            paths += _render_one(spec, scale, results_dir, base.with_name(f"{base.name}.{name}"), commit, variant=name)
    if any(per_variant.values()):
        paths += _write_all(base.with_name(f"{base.name}.fidelity"),
                            fidelity_outputs(spec, scale, per_variant, commit, skipped=scan(spec, results_dir, scale)[1]))
    return paths


def _render_one(spec, scale, results_dir, base: Path, commit: str, variant: str | None) -> list[Path]:
    records, n_stale = _load(spec, results_dir, scale, variant)
    skipped = scan(spec, results_dir, scale)[1]
    if spec.kind == "figure":
        from . import figure_report

        outputs = figure_report.outputs(spec, scale, records,
                                        _header_lines(spec, scale, records, n_stale, commit, skipped=skipped),
                                        SYNTHETIC_LINE if _synthetic(records) else None)
        return _write_all(base, outputs)
    stats = cell_stats(spec, records)
    if variant is not None:  # only the cells this variant runs (a named variant skips the cells it leaves alone)
        cells = {(r["row"], r["col"]) for r in expand(spec, scale, seeds=1, variant=variant)}
        stats = {k: v for k, v in stats.items() if k in cells}
    summary = _summary(spec, stats)
    outputs = {
        ".md": _markdown(spec, scale, records, n_stale, commit, stats, summary, variant, skipped),
        ".csv": _csv(spec, stats),
        ".tex": _latex(spec, scale, records, n_stale, commit, stats, summary, variant, skipped),
        ".png": _png(spec, scale, records, stats, variant),
    }
    return _write_all(base, outputs)


FIDELITY_CSV_COLUMNS = ("row", "col", "metric", "variant", "changes", "ours_mean", "ours_std", "ours_n",
                        "published_value", "published_std", "agrees", "distance", "closest", "chosen")


def fidelity_stats(spec: TableSpec, scale: str, per_variant: dict[str, list[dict]]) -> dict:
    """Per cell and metric: {variant: stats or None when the variant leaves the cell as the text has
    it}, plus which variant lands closest to the published mean."""
    runs_of = {name: {(r["row"], r["col"]) for r in expand(spec, scale, seeds=1, variant=name)}
               for name in spec.variant_names}
    stats_of = {name: cell_stats(spec, recs) for name, recs in per_variant.items()}
    out = {}
    for (row, col) in stats_of[PAPER]:
        for m in spec.metrics:
            p = spec.cell(row, col).published.get(m)
            entry = {}
            for name in spec.variant_names:
                entry[name] = stats_of[name][(row, col)][m] if (row, col) in runs_of[name] else None
            dist = {name: abs(s["mean"] - p.mean) for name, s in entry.items()
                    if s is not None and p is not None and p.missing is None and s["mean"] is not None
                    and math.isfinite(s["mean"]) and math.isfinite(p.mean)}
            closest = min(dist, key=dist.get) if dist else None
            out[(row, col, m)] = {"variants": entry, "distance": dist, "closest": closest, "published": p}
    return out


def fidelity_rho(spec: TableSpec, fid: dict) -> dict:
    """{(col, metric): {variant: (rho, n)}}: each variant's ranking of a column's rows against the
    paper's, the variant's value where it changes a cell, the text's value where it does not."""
    out = {}
    for col in spec.cols:
        for m in spec.metrics:
            keys = [(row, col, m) for row in spec.rows if (row, col, m) in fid]
            if not keys:
                continue
            per = {}
            for name in spec.variant_names:
                ours, pub = [], []
                for k in keys:
                    f = fid[k]
                    s = f["variants"][name] if f["variants"][name] is not None else f["variants"][PAPER]
                    p = f["published"]
                    ours.append(np.nan if s is None or s["mean"] is None else s["mean"])
                    pub.append(np.nan if p is None or p.missing is not None else p.mean)
                per[name] = _spearman(ours, pub)
            out[(col, m)] = per
    return out


def _variant_cell(f: dict, name: str) -> str:
    """One variant's cell of a fidelity table: ours with its agreement mark, bold where closest."""
    s = f["variants"][name]
    if s is None:
        return "= paper"
    text = f"{_ours_text(s)} {MARKS[agrees(s['mean'], f['published'])]}".rstrip()
    return f"**{text}**" if name == f["closest"] else text


def fidelity_outputs(spec: TableSpec, scale: str, per_variant: dict[str, list[dict]], commit: str,
                     skipped: list[tuple[str, str]] = ()) -> dict:
    """``.md`` and ``.csv`` of the fidelity report: every variant of every cell beside the paper."""
    fid = fidelity_stats(spec, scale, per_variant)
    everything = [r for recs in per_variant.values() for r in recs]
    md = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [f"# {spec.id}: fidelity variants at scale '{scale}'", ""]
    if _synthetic(everything):
        lines += [f"**{SYNTHETIC_LINE}**", ""]
    head = [f"Source: {spec.source}", f"Scale: {scale} - {spec.scales[scale].note}"]
    if scale == "screen":
        head.append("This is a SCREEN of fidelity variants (full data, the paper's schedule cut short, one "
                    "seed): it chooses between variants and is NOT a reproduction.")
    elif scale != "full":
        head.append(f"At scale '{scale}' the numbers are NOT a reproduction of the paper's protocol.")
    head += [f"Data: {d}" for d in _data_lines(everything)] or ["Data: no records"]
    if (line := skipped_line(list(skipped))) is not None:
        head.append(line)
    head.append(f"Record commits: {_commits(everything)}; rendered at commit {commit}")
    lines += [f"- {h}" for h in head]
    lines += ["", "Variants:", "", f"- `{PAPER}`: the paper's text (the baseline)"]
    for v in spec.variants:
        lines.append(f"- `{v.name}`: {v.summary}")
        for ch in v.changes:
            when = ", ".join(f"{k}={val}" for k, val in ch.when.items()) or "every cell"
            sets = ", ".join(f"{k}={val}" for k, val in ch.set.items())
            lines.append(f"    - {sets} (where {when}); source: {ch.source}")
    lines += ["", "Each cell: ours `mean ± std (n seeds)` and the agreement mark (✓ within 2 published std, "
              "1 point where the paper gives no std); `= paper` where the variant leaves the cell as the text "
              "has it. **Bold**: the variant closest to the published mean. Chosen: the default the spec "
              "uses for the row.", ""]
    names = list(spec.variant_names)
    header = ["row", "col"] + (["metric"] if len(spec.metrics) > 1 else []) + ["published"] + names + ["closest", "chosen"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIDELITY_CSV_COLUMNS)
    num = lambda x: "" if x is None else ("NaN" if math.isnan(x) else format(x, ".10g"))  # noqa: E731
    for (row, col, m), f in fid.items():
        p = f["published"]
        cells = [_variant_cell(f, name) for name in names]
        for name in names:
            s = f["variants"][name]
            if s is None:
                continue
            a = agrees(s["mean"], p)
            changes = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in
                                variant_changes(spec, name, row, col).items())
            w.writerow([row, col, m, name, changes, num(s["mean"]), num(s["std"]), s["n"],
                        "" if p is None or p.value is None else p.value,
                        "" if p is None or p.std is None else p.std, "" if a is None else a,
                        num(f["distance"].get(name)), name == f["closest"], name == spec.chosen_variant(row)])
        lead = [row, col] + ([m] if len(spec.metrics) > 1 else [])
        lines.append("| " + " | ".join(md(c) for c in lead + [_pub_text(p)] + cells
                                        + [f["closest"] or "—", spec.chosen_variant(row)]) + " |")
    won = {}
    for f in fid.values():
        if f["closest"]:
            won[f["closest"]] = won.get(f["closest"], 0) + 1
    agree_n = {name: sum(1 for f in fid.values() if f["variants"][name] is not None
                         and agrees(f["variants"][name]["mean"], f["published"])) for name in names}
    ran_n = {name: sum(1 for f in fid.values() if f["variants"][name] is not None
                       and f["variants"][name]["mean"] is not None) for name in names}
    lines += ["", "**Summary:** closest to the paper: " + (", ".join(f"{k} in {v} cells" for k, v in won.items()) or "none")
              + "; cells within tolerance: " + ", ".join(f"{n} {agree_n[n]}/{ran_n[n]}" for n in names) + "."]
    rho = fidelity_rho(spec, fid)
    if any(n for per in rho.values() for _, n in per.values()):
        lines += ["", "Spearman ρ of ours vs published across rows, per column and variant (a variant's column "
                  "takes the paper's value where the variant leaves the cell as the text has it):", ""]
        lines.append("| column | " + " | ".join(names) + " |")
        lines.append("|" + "---|" * (len(names) + 1))
        for (col, m), per in rho.items():
            label = col + (f" ({m})" if len(spec.metrics) > 1 else "")
            lines.append(f"| {md(label)} | " + " | ".join(
                ("n/a" if not math.isfinite(r) else f"{r:.2f}") + f" (n={n})" for r, n in per.values()) + " |")
    lines += _best_epoch_lines(spec, scale, per_variant)
    if spec.notes:
        lines += ["", f"Notes: {spec.notes}"]
    return {".md": "\n".join(lines) + "\n", ".csv": buf.getvalue()}


def _best_epoch(value_curve: list, metric: str) -> float | None:
    """The best value of a per-epoch curve: max for an accuracy, min for an error; None otherwise."""
    finite = [v for v in map(_number, value_curve) if v is not None and math.isfinite(v)]
    if not finite or not metric.endswith(("_acc", "_err")):
        return None
    return max(finite) if metric.endswith("_acc") else min(finite)


def best_epoch_records(records: list[dict], metric: str) -> list[dict]:
    """Copies of the finished records whose metric is replaced by its best epoch on the record's own
    per-epoch curve (``metrics.curves[metric]``); records without such a curve are left out."""
    out = []
    for r in records:
        metrics = r.get("metrics") or {}
        curve = (metrics.get("curves") or {}).get(metric)
        if r.get("status") != "ok" or not isinstance(curve, list) or (b := _best_epoch(curve, metric)) is None:
            continue
        out.append({**r, "metrics": {**metrics, metric: b}})
    return out


def _best_epoch_lines(spec: TableSpec, scale: str, per_variant: dict[str, list[dict]]) -> list[str]:
    """A second reading of the same records, for papers that do not say which epoch they report:
    each run's best test epoch. It selects on the test set, so it is optimistic by construction; it
    is shown beside the final-epoch reading (the table above), never instead of it."""
    metrics = [m for m in spec.metrics if m.endswith(("_acc", "_err"))]
    if len(metrics) != 1:
        return []
    m = metrics[0]
    peak = {name: best_epoch_records(recs, m) for name, recs in per_variant.items()}
    if not any(peak.values()):
        return []
    fid = fidelity_stats(spec, scale, peak)
    names = list(spec.variant_names)
    lines = ["", f"Best-epoch reading (each run's best per-epoch test value of `{m}`, averaged over seeds), "
             "for comparison with papers that may report it: it selects on the test set, so it is "
             "optimistic, and it is shown beside the final-epoch reading above, not in place of it:", ""]
    header = ["row", "col", "published"] + names + ["closest"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (row, col, _), f in fid.items():
        if not any(s is not None and s["n"] for s in f["variants"].values()):
            continue
        cells = [_variant_cell(f, name) for name in names]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [row, col, _pub_text(f["published"])] + cells
                                        + [f["closest"] or "—"]) + " |")
    return lines


def _write_all(base: Path, outputs: dict) -> list[Path]:
    paths = []
    for ext, data in outputs.items():
        path = base.with_name(base.name + ext)
        _write_atomic(path, data)
        paths.append(path)
    return paths


STATUS_BEGIN = "<!-- reproduction-status: regenerated by `python run_all.py --report-only --scale full`; do not edit -->"
STATUS_END = "<!-- reproduction-status: end -->"


def reproduction_status(specs: list[TableSpec], results_dir) -> list[str]:
    """Markdown lines: every table cell with full-protocol records, per variant that has them, ours
    beside the published number, the seeds behind it and the agreement mark; the row's default
    variant comes first and is marked."""
    lines = ["| table | cell | ours | published | variant | seeds | agrees |", "|---|---|---|---|---|---|---|"]
    n = 0
    for spec in specs:
        if spec.kind != "table" or "full" not in spec.scales:
            continue
        stats_of = {name: cell_stats(spec, _load(spec, results_dir, "full", name)[0]) for name in spec.variant_names}
        for row in spec.rows:
            for col in spec.cols:
                cell = spec.cell(row, col)
                if cell is None:
                    continue
                names = sorted(spec.variant_names, key=lambda v: v != spec.chosen_variant(row))
                for name in names:
                    for m in spec.metrics:
                        st = stats_of[name].get((row, col), {}).get(m)
                        if st is None or st["mean"] is None:
                            continue
                        p = cell.published.get(m)
                        label = name + (" (default)" if name == spec.chosen_variant(row) and spec.variants else "")
                        ours = "NaN" if math.isnan(st["mean"]) else f"{st['mean']:.2f}" + (
                            "" if st["std"] is None else f" ± {st['std']:.2f}")
                        lines.append(f"| {spec.id} | {row}, {col}{'' if len(spec.metrics) == 1 else ' ' + m} | {ours} | "
                                     f"{_pub_text(p)} | {label} | {st['n']} of {spec.seeds} | {MARKS[agrees(st['mean'], p)] or '—'} |")
                        n += 1
    if not n:
        return ["No table cell has full-protocol records yet."]
    return lines


def write_reproduction_status(specs: list[TableSpec], results_dir, reports_dir, readme: Path | None = None) -> Path:
    """``<reports>/full/STATUS.md``, and the same table between the markers of ``readme`` if given."""
    table = reproduction_status(specs, results_dir)
    intro = ["# Reproduction status (full protocol)", "",
             "Cells with records at the papers' full protocol, ours `mean ± std` over the seeds run (of the "
             "paper's count), ✓ within 2 published std. Regenerated from `results/full`; every other scale is "
             "not a reproduction.", ""]
    path = Path(reports_dir) / "full" / "STATUS.md"
    _write_atomic(path, "\n".join(intro + table) + "\n")
    if readme is not None and readme.exists():
        text = readme.read_text()
        if STATUS_BEGIN in text and STATUS_END in text:
            head, rest = text.split(STATUS_BEGIN, 1)
            _, tail = rest.split(STATUS_END, 1)
            _write_atomic(readme, head + STATUS_BEGIN + "\n" + "\n".join(table) + "\n" + STATUS_END + tail)
    return path


def render_index(specs: list[TableSpec], results_dir, reports_dir, smoke: bool = False) -> Path:
    """Write the index of the reports: one line per (table, scale) with records; tables never run say so.

    ``<reports>/README.md`` (tracked) indexes the small, screen and full scales; with ``smoke`` only
    ``<reports>/smoke/README.md`` is written, beside the smoke reports and git-ignored like them, so
    the default job (smoke scale) leaves every tracked file as it was."""
    if smoke:
        scales, path, prefix = ("smoke",), Path(reports_dir) / "smoke" / "README.md", "smoke/"
        lines = ["# Smoke-scale reports", "", "Regenerated from `results/smoke` by every smoke run (the default "
                 "job). Smoke runs prove the pipeline on tiny subsets or labelled synthetic stand-ins; they are "
                 "never reproductions. Git-ignored, like the reports beside it; the other scales are indexed "
                 "in `../README.md`.", ""]
    else:
        scales, path, prefix = tuple(s for s in SCALES if s != "smoke"), Path(reports_dir) / "README.md", ""
        lines = ["# Reports", "", "Regenerated from `results/`; scales in order small, screen, full. Only "
                 "`full` follows the papers' protocols; the other scales are not reproductions (`screen` chooses "
                 "between fidelity variants). Smoke-scale runs (the default job) are indexed in "
                 "`smoke/README.md`, which is not tracked.", ""]
    lines += ["| id | title | scale | status | report |", "|---|---|---|---|---|"]
    for spec in specs:
        seen = False
        for scale in scales:
            if scale not in spec.scales:
                continue
            records, _ = _load(spec, results_dir, scale)
            n_bad = len(scan(spec, results_dir, scale)[1])
            if not records and not n_bad:
                continue
            seen = True
            n_failed = sum(r.get("status") == "failed" for r in records)
            if spec.kind == "figure":
                from . import figure_report

                status = figure_report.summary_line(spec, figure_report.figure_stats(spec, records))
            else:
                s = _summary(spec, cell_stats(spec, records))
                rho = "n/a" if math.isnan(s["rho_mean"]) else f"{s['rho_mean']:.2f}"
                status = f"{s['run']}/{s['cells']} cells run, {s['agreeing']} agree, ρ={rho}"
            status += (f", {n_failed} failed runs" if n_failed else "") + f"; data: {_kinds(records)}"
            if n_bad:
                status += f"; {n_bad} unreadable or malformed record file(s) skipped"
            rel = f"{scale}/{spec.paper}/{spec.table}.md"
            link = (f"[{spec.table}.md]({rel.removeprefix(prefix)})" if (Path(reports_dir) / rel).exists()
                    else "not rendered yet")
            fid = f"{scale}/{spec.paper}/{spec.table}.fidelity.md"
            if (Path(reports_dir) / fid).exists():
                link += f", [variants]({fid.removeprefix(prefix)})"
            lines.append(f"| {spec.id} | {spec.title} | {scale} | {status} | {link} |")
        if not seen:
            lines.append(f"| {spec.id} | {spec.title} | — | not run | |")
    _write_atomic(path, "\n".join(lines) + "\n")
    return path
