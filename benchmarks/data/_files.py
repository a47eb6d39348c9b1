"""Torch-free checks of dataset files in torchvision's on-disk layout.

Planning a run (``resolve``) must say whether real data is usable without loading it or importing
torch, so the checksums torchvision's dataset classes carry are copied here as constants (from
``torchvision/datasets/mnist.py`` ``MNIST.resources`` / ``FashionMNIST.resources`` and
``torchvision/datasets/cifar.py`` ``train_list`` / ``test_list`` / ``meta``, torchvision 0.29).
Every check is memoised on (path, size, mtime), so planning hundreds of runs costs one md5 a file.
"""
from __future__ import annotations

import hashlib
import math
import os

from benchmarks.suite.errors import DataError

_MNIST_MD5 = {
    "MNIST": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
_CIFAR_MD5 = {
    "cifar-10-batches-py": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar-100-python": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}
# Extracted idx files: (magic, dims). The exact size follows: 4-byte magic + 4 bytes a dim + data.
_IDX = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60000,)),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10000,)),
}
# Folder (under the root) whose presence means "the user put this dataset here".
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py",
           "cifar100": "cifar-100-python", "tiny_imagenet": "tiny-imagenet-200"}

_memo: dict[tuple, str | None] = {}


def _stat_key(path: str) -> tuple:
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


def _memoised(key: tuple, check) -> None:
    """Run ``check()`` (returns an error text or None) once per key; raise DataError on error."""
    if key not in _memo:
        _memo[key] = check()
    if _memo[key]:
        raise DataError(_memo[key])


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_md5(path: str, expected: str, fix: str) -> None:
    def check():
        got = _md5(path)
        return None if got == expected else (
            f"corrupt data file {path} (md5 {got}, expected {expected}); {fix}")
    _memoised(_stat_key(path), check)


def _check_idx(path: str, magic: int, dims: tuple, fix: str) -> None:
    def check():
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4 + 4 * len(dims))
        got = [int.from_bytes(head[i:i + 4], "big") for i in range(0, len(head), 4)]
        want_size = 4 + 4 * len(dims) + math.prod(dims)
        if got != [magic, *dims] or size != want_size:
            return (f"corrupt data file {path} (idx header {got}, {size} bytes; expected "
                    f"{[magic, *dims]}, {want_size} bytes); {fix}")
        return None
    _memoised(_stat_key(path), check)


def present(name: str, root: str | None) -> bool:
    """Whether the dataset's folder exists under the root (then it must also be complete)."""
    return bool(root) and os.path.isdir(os.path.join(root, FOLDERS[name]))


def expected_path(name: str, root: str) -> str:
    sub = os.path.join(FOLDERS[name], "raw") if name in ("mnist", "fashion_mnist") else FOLDERS[name]
    return os.path.join(root, sub)


def verify(name: str, root: str) -> None:
    """Raise DataError naming the first missing or corrupt file of a dataset present under root."""
    folder = os.path.join(root, FOLDERS[name])
    fix = f"delete it and re-download {FOLDERS[name]} into {root} in torchvision's layout, or replace the file"
    missing = f"; re-download {FOLDERS[name]} into {root} in torchvision's layout"
    if name in ("mnist", "fashion_mnist"):
        raw = os.path.join(folder, "raw")
        for gz, md5 in _MNIST_MD5[FOLDERS[name]].items():
            gz_path, idx_path = os.path.join(raw, gz), os.path.join(raw, gz[:-3])
            if not (os.path.isfile(gz_path) or os.path.isfile(idx_path)):
                raise DataError(f"dataset '{name}' under {root} is incomplete: missing {idx_path} "
                                f"(or {gz}){missing}")
            if os.path.isfile(gz_path):
                _check_md5(gz_path, md5, fix)
            if os.path.isfile(idx_path):
                _check_idx(idx_path, *_IDX[gz[:-3]], fix)
    elif name in ("cifar10", "cifar100"):
        for fname, md5 in _CIFAR_MD5[FOLDERS[name]].items():
            path = os.path.join(folder, fname)
            if not os.path.isfile(path):
                raise DataError(f"dataset '{name}' under {root} is incomplete: missing {path}{missing}")
            _check_md5(path, md5, fix)
    else:
        _verify_tiny_imagenet(folder, missing)


def _verify_tiny_imagenet(folder: str, missing: str) -> None:
    """Structure check (no published checksums for the extracted folder): 200 wnids, their image
    folders and the val annotations."""
    wnids, ann = os.path.join(folder, "wnids.txt"), os.path.join(folder, "val", "val_annotations.txt")
    train = os.path.join(folder, "train")
    for path in (wnids, ann, train):
        if not os.path.exists(path):
            raise DataError(f"dataset 'tiny_imagenet' is incomplete: missing {path}{missing}")

    def check():
        with open(wnids) as f:
            ids = f.read().split()
        if len(ids) != 200:
            return f"corrupt data file {wnids} ({len(ids)} ids, expected 200){missing}"
        for w in ids:
            d = os.path.join(folder, "train", w, "images")
            if not os.path.isdir(d):
                return f"dataset 'tiny_imagenet' is incomplete: missing folder {d}{missing}"
        if not os.path.isdir(os.path.join(folder, "val", "images")):
            return f"dataset 'tiny_imagenet' is incomplete: missing folder {folder}/val/images{missing}"
        return None
    _memoised(_stat_key(wnids) + _stat_key(ann) + _stat_key(train), check)
