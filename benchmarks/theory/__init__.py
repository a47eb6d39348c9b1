"""Theory simulations: estimator variances of Ren et al. (Table 1, Fig. 8) and Bacho & Chu (Figs.
5-6), run as the cells of figure specs (``specs.py``; listed in their papers' TABLES). An engine
like the paper packages (``train``, ``validate_config``, ``estimate_seconds``) without tables of its
own. Importing this package imports no framework; ``train`` imports torch.
"""

from __future__ import annotations

import platform

from benchmarks.suite.errors import SpecError

FIGURE_KEYS = {
    "ren_fig8": ("estimator", "sweep", "values", "N", "p", "q", "samples", "stat_examples", "expected_slope"),
    "bacho_fig5": ("method", "sweep", "values", "n1", "alpha", "out_init", "examples", "samples", "expected_slope"),
    "bacho_fig6": ("method", "sweep", "values", "n1", "alpha", "out_init", "examples", "samples", "expected_slope"),
}
CHOICES = {
    "ren_fig8": {"estimator": ("backprop", "weight", "weight_ind", "activity", "activity_ind"), "sweep": ("N", "p", "q")},
    "bacho_fig5": {"method": ("FDFA",), "sweep": ("alpha",), "out_init": ("kaiming", "fixed")},
    "bacho_fig6": {"method": ("FG-W", "FG-A"), "sweep": ("n0", "n1"), "out_init": ("kaiming", "fixed")},
}


def validate_config(config: dict) -> None:
    fig = config.get("figure")
    if fig not in FIGURE_KEYS:
        raise SpecError(f"theory config: unknown figure {fig!r}; use one of {', '.join(FIGURE_KEYS)}")
    for key in FIGURE_KEYS[fig]:
        if key not in config:
            raise SpecError(f"theory config ({fig}): missing key {key!r}")
    for key, allowed in CHOICES[fig].items():
        if config[key] not in allowed:
            raise SpecError(f"theory config ({fig}): {key}={config[key]!r} is not one of {', '.join(allowed)}")
    values = config["values"]
    if not isinstance(values, list) or len(values) < 3 or any(not v > 0 for v in values):
        raise SpecError(f"theory config ({fig}): 'values' must list at least 3 positive sweep points "
                        "(a slope with a standard error needs 3)")
    if int(config["samples"]) < 2:
        raise SpecError(f"theory config ({fig}): 'samples' must be at least 2")


def estimate_seconds(config: dict) -> float:
    """Rough CPU seconds (2 cores), calibrated on this repo's smoke and small runs."""
    if config["figure"] == "ren_fig8":
        dims = {"N": config["N"], "p": config["p"], "q": config["q"]}
        work = 0.0
        for v in config["values"]:
            d = dict(dims, **{config["sweep"]: v})
            work += config["samples"] * d["N"] * d["p"] * d["q"] + config["stat_examples"] * d["p"] * d["q"]
        return 2.0 + work * 2e-8
    width = {"n1": sum(config["values"]) * 784, "n0": sum(config["values"]) * 784 * config["n1"],
             "alpha": len(config["values"]) * 784 * config["n1"]}[config["sweep"]]
    return 2.0 + config["examples"] * config["samples"] * (width * 5e-9 + 1e-3 * len(config["values"]))


def train(config: dict, *, data_root=None, progress=None, checkpoint=None) -> dict:
    """One curve. ``checkpoint`` is accepted and unused: a curve takes minutes, and reruns redo it."""
    import torch

    versions = {"torch": torch.__version__, "python": platform.python_version()}
    device = {"type": "cpu", "threads": torch.get_num_threads()}
    if config["figure"] == "ren_fig8":
        from .ren_fig8 import run

        metrics = run(config, progress=progress)
        data = {"dataset": "simulated", "source": "simulation", "kind": "simulated",
                "description": "Gaussian inputs and a random teacher net, drawn in the simulation "
                               "(Appendix 10 uses simulated data too; not a stand-in)"}
    else:
        from benchmarks.data import load  # noqa: F401 - fail early if the data package is broken
        from .bacho_figs import run

        metrics, split = run(config, data_root=data_root, progress=progress)
        data = {"dataset": "mnist", "source": config["data_source"], "kind": split.kind,
                "description": split.description}
    return {"metrics": metrics, "data": data, "device": device, "versions": versions}
