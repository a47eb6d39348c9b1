"""Reports of figure specs: each cell is a measured curve beside its theory line.

The markdown/CSV give, per cell, the fitted log-log slope ± its standard error next to the theory
line's slope and the slope the paper's propositions predict (``expected_slope`` in the config),
whether the measured slope agrees with each, and the largest relative deviation of the measured
curve from the theory line. The theory line is the engine's own prediction over the same points;
the paper's slope is what the paper claims, so the report compares the measurement with both and
lists the curves whose slope differs from the paper's, saying whether the theory line departs from
the paper's slope too (the gap is then in the theory over that sweep) or only the measurement does.
The PNG draws one log-log panel per column: markers for measurements, lines for theory. Seeds are
averaged.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .spec import TableSpec

CSV_COLUMNS = ("row", "col", "n", "slope", "slope_se", "theory_slope", "expected_slope",
               "slope_agrees", "paper_slope_agrees", "max_rel_dev_pct")


def slopes_agree(slope: float, se: float, reference: float) -> bool:
    """A measured slope agrees with a reference slope within 3 standard errors (or 0.05 when the fit
    is near-perfect and the SE vanishes)."""
    return abs(slope - reference) <= max(3 * se, 0.05)


def _ok(records, row, col):
    return [r for r in records if r.get("row") == row and r.get("col") == col and r.get("status") == "ok"]


def figure_stats(spec: TableSpec, records: list[dict]) -> dict:
    """{(row, col): {...}} for cells with ok records; slopes are means over seeds."""
    out = {}
    for row in spec.rows:
        for col in spec.cols:
            if spec.cell(row, col) is None:
                continue
            recs = _ok(records, row, col)
            if not recs:
                continue
            m = [r["metrics"] for r in recs]
            slope = float(np.mean([x["slope"] for x in m]))
            se = float(np.sqrt(np.mean([x["slope_se"] ** 2 for x in m]) / len(m)))
            theory = float(np.mean([x["theory_slope"] for x in m]))
            expected = recs[0]["config"].get("expected_slope")
            out[(row, col)] = {
                "n": len(recs), "slope": slope, "slope_se": se, "theory_slope": theory,
                "expected_slope": expected,
                "slope_agrees": slopes_agree(slope, se, theory),
                # None where the paper predicts no single power law for the curve
                "paper_slope_agrees": None if expected is None else slopes_agree(slope, se, expected),
                "max_rel_dev": float(np.max([x["max_rel_dev"] for x in m])),
                "curves": [x["curves"] for x in m],
            }
    return out


def summary_line(spec: TableSpec, stats: dict) -> str:
    cells = sum(1 for _ in spec.cells)
    if not stats:
        return f"0/{cells} curves run"
    agree = sum(s["slope_agrees"] for s in stats.values())
    predicted = [s for s in stats.values() if s["paper_slope_agrees"] is not None]
    paper = (f"{sum(s['paper_slope_agrees'] for s in predicted)}/{len(predicted)} with the slope the paper predicts"
             if predicted else "the paper predicts no slope for these curves")
    worst = max(s["max_rel_dev"] for s in stats.values())
    return (f"{len(stats)}/{cells} curves run; {agree}/{len(stats)} measured slopes agree with their "
            f"theory line (within 3 SE), {paper}; max relative deviation from theory {worst:.1f}%")


def paper_differences(spec: TableSpec, stats: dict) -> list[str]:
    """One line per curve whose measured slope differs from the paper's predicted slope."""
    lines = []
    for row in spec.rows:
        for col in spec.cols:
            s = stats.get((row, col))
            if s is None or s["paper_slope_agrees"] is not False:
                continue
            gap = s["slope"] - s["expected_slope"]
            if slopes_agree(s["theory_slope"], s["slope_se"], s["expected_slope"]):
                why = "the theory line agrees with the paper here, so the measurement departs from both"
            else:
                why = ("the theory line over the same points departs from the paper's slope as well, so the "
                       "gap lies in the theory over this sweep, not in the measurement")
            lines.append(f"{row}, {col}: measured {s['slope']:.3f} ± {s['slope_se']:.3f}, paper "
                         f"{_fmt(s['expected_slope'], 0)} ({gap:+.3f}, {abs(gap) / s['slope_se']:.1f} SE), "
                         f"theory line {s['theory_slope']:.3f}; {why}")
    return lines


MARK = {True: "✓", False: "✗", None: "—"}


def _fmt(x, digits=2):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(spec, header_lines, stats, synthetic_line: str | None) -> str:
    out = [f"# {spec.id}: {spec.title}", ""]
    if synthetic_line:
        out += [f"**{synthetic_line}**", ""]
    out += [f"- {line}" for line in header_lines] + [""]
    out += ["Each curve: the estimator's variance measured by Monte Carlo against its theory line. "
            "Slope = least-squares log-log slope ± its asymptotic standard error; 'theory' is the slope "
            "of the theory line over the same points; 'paper' is the slope the paper's propositions "
            "predict (— where they predict no single power law). Agreement (✓): measured slope within "
            "3 SE of the theory line's slope (vs theory) and of the paper's (vs paper). Max dev: largest "
            "|measured − theory| / theory over the curve.", "",
            "| curve | sweep | slope ± SE | theory | paper | vs theory | vs paper | max dev | points |",
            "|---|---|---|---|---|---|---|---|---|"]
    for row in spec.rows:
        for col in spec.cols:
            if spec.cell(row, col) is None:
                continue
            s = stats.get((row, col))
            if s is None:
                out.append(f"| {row} | {col} | not run | | | | | | |")
                continue
            out.append(f"| {row} | {col} | {s['slope']:.3f} ± {s['slope_se']:.3f} | {s['theory_slope']:.3f} | "
                       f"{_fmt(s['expected_slope'], 0)} | {MARK[s['slope_agrees']]} | {MARK[s['paper_slope_agrees']]} | "
                       f"{s['max_rel_dev']:.1f}% | {len(s['curves'][0]['x'])} |")
    out += ["", f"**Summary:** {summary_line(spec, stats)}.", ""]
    differ = paper_differences(spec, stats)
    if differ:
        out += ["**Where the measured slope differs from the paper's:**", ""] + [f"- {line}" for line in differ] + [""]
    missing = {p.missing for c in spec.cells for p in c.published.values() if p.missing}
    if missing:
        out += ["Published values: " + "; ".join(sorted(missing)) + ".", ""]
    if spec.notes:
        out += [f"Notes: {spec.notes}", ""]
    return "\n".join(out)


def csv_text(spec, stats) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for (row, col), s in stats.items():
        w.writerow([row, col, s["n"], f"{s['slope']:.6g}", f"{s['slope_se']:.6g}", f"{s['theory_slope']:.6g}",
                    "" if s["expected_slope"] is None else s["expected_slope"], s["slope_agrees"],
                    "" if s["paper_slope_agrees"] is None else s["paper_slope_agrees"], f"{s['max_rel_dev']:.6g}"])
    return buf.getvalue()


def png(spec, title_suffix: str, stats) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(spec.cols)
    fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, col in zip(axes[0], cols):
        for i, row in enumerate(spec.rows):
            s = stats.get((row, col))
            if s is None:
                continue
            c = s["curves"][0]
            ax.loglog(c["x"], c["empirical"], "o", color=colours(i % 10), ms=4,
                      label=f"{row} (slope {s['slope']:.2f})")
            ax.loglog(c["x"], c["theory"], "-", color=colours(i % 10), lw=1)
        ax.set_xlabel(col)
        ax.set_ylabel("variance of the estimate")
        ax.set_title(col)
        ax.legend(fontsize=7)
    fig.suptitle(f"{spec.id} ({title_suffix}): markers measured, lines theory", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def outputs(spec: TableSpec, scale: str, records: list[dict], header_lines: list[str],
            synthetic_line: str | None) -> dict[str, str | bytes]:
    stats = figure_stats(spec, records)
    return {".md": markdown(spec, header_lines, stats, synthetic_line),
            ".csv": csv_text(spec, stats),
            ".png": png(spec, f"scale {scale}", stats)}
