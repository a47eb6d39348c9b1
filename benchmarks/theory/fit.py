"""Curve summaries shared by the figure simulations (numpy only)."""

from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares slope of log10(y) on log10(x) and its asymptotic standard error
    (residual variance / sum of squared centred log x), as the captions of Bacho & Chu's Figs. 5-6
    report it."""
    lx, ly = np.log10(np.asarray(x, float)), np.log10(np.asarray(y, float))
    if lx.size < 3:
        raise ValueError("a slope with a standard error needs at least 3 points")
    xc = lx - lx.mean()
    slope = float((xc * (ly - ly.mean())).sum() / (xc ** 2).sum())
    resid = ly - ly.mean() - slope * xc
    se = float(np.sqrt((resid ** 2).sum() / (lx.size - 2) / (xc ** 2).sum()))
    return slope, se


def max_rel_dev(empirical, theory) -> float:
    """Largest |empirical - theory| / theory over the curve, in percent."""
    e, t = np.asarray(empirical, float), np.asarray(theory, float)
    return float(np.max(np.abs(e - t) / t) * 100.0)


def summary(x, empirical, theory) -> dict:
    slope, se = loglog_slope(x, empirical)
    theory_slope, _ = loglog_slope(x, theory)
    return {"slope": slope, "slope_se": se, "theory_slope": theory_slope,
            "max_rel_dev": max_rel_dev(empirical, theory),
            "curves": {"x": [float(v) for v in x], "empirical": [float(v) for v in empirical],
                       "theory": [float(v) for v in theory]}}
