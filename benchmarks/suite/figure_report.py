"""Reports of figure specs: each cell is a measured curve beside its theory line.

The markdown/CSV give, per cell, the fitted log-log slope ± its standard error next to the theory
line's slope and the slope the paper's propositions predict (``expected_slope`` in the config),
and the largest relative deviation of the measured curve from the theory line. The PNG draws one
log-log panel per column: markers for measurements, lines for theory. Seeds are averaged.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .spec import TableSpec

CSV_COLUMNS = ("row", "col", "n", "slope", "slope_se", "theory_slope", "expected_slope",
               "slope_agrees", "max_rel_dev_pct")


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
                # The measured slope agrees with its theory line within 3 standard errors (or 0.05
                # when the fit is near-perfect and the SE vanishes).
                "slope_agrees": abs(slope - theory) <= max(3 * se, 0.05),
                "max_rel_dev": float(np.max([x["max_rel_dev"] for x in m])),
                "curves": [x["curves"] for x in m],
            }
    return out


def summary_line(spec: TableSpec, stats: dict) -> str:
    cells = sum(1 for _ in spec.cells)
    if not stats:
        return f"0/{cells} curves run"
    agree = sum(s["slope_agrees"] for s in stats.values())
    worst = max(s["max_rel_dev"] for s in stats.values())
    return (f"{len(stats)}/{cells} curves run; {agree}/{len(stats)} measured slopes agree with their "
            f"theory line (within 3 SE); max relative deviation from theory {worst:.1f}%")


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
            "3 SE of the theory line's. Max dev: largest |measured − theory| / theory over the curve.", "",
            "| curve | sweep | slope ± SE | theory | paper | agrees | max dev | points |",
            "|---|---|---|---|---|---|---|---|"]
    for row in spec.rows:
        for col in spec.cols:
            if spec.cell(row, col) is None:
                continue
            s = stats.get((row, col))
            if s is None:
                out.append(f"| {row} | {col} | not run | | | | | |")
                continue
            out.append(f"| {row} | {col} | {s['slope']:.3f} ± {s['slope_se']:.3f} | {s['theory_slope']:.3f} | "
                       f"{_fmt(s['expected_slope'], 0)} | {'✓' if s['slope_agrees'] else '✗'} | "
                       f"{s['max_rel_dev']:.1f}% | {len(s['curves'][0]['x'])} |")
    out += ["", f"**Summary:** {summary_line(spec, stats)}.", ""]
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
                    f"{s['max_rel_dev']:.6g}"])
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
