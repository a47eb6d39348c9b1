"""Torch-free checks of dataset files in torchvision's on-disk layout.

Planning a run (``resolve``) must say whether real data is usable without loading it or importing
torch, so the checksums torchvision's dataset classes carry are copied here as constants (from
``torchvision/datasets/mnist.py`` ``MNIST.resources`` / ``FashionMNIST.resources`` and
``torchvision/datasets/cifar.py`` ``train_list`` / ``test_list`` / ``meta``, torchvision 0.29).
Every check is memoised on (path, size, mtime), so planning hundreds of runs costs one md5 a file.

No checksums are published for the extracted ImageNet / Imagenette folders or for ImageNet32's npz
batches, so those are checked by structure: the class folders (their count, the same classes in
train and val, none empty) and, for ImageNet32, every batch's array headers and image counts
(read from the npz member headers, without decompressing the pixels).
"""
from __future__ import annotations

import hashlib
import math
import os
import zipfile

import numpy as np

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
# md5 of the decompressed idx files (the published checksums of the originals; ../shared/data's
# README lists the same). Archives differ between copies (a gzip header holds a file name and a
# time), so a download is checked by content: ``benchmarks.data.download`` verifies these.
MNIST_CONTENT_MD5 = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
# Extracted idx files: (magic, dims). The exact size follows: 4-byte magic + 4 bytes a dim + data.
_IDX = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60000,)),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10000,)),
}
# Folder (under the root) whose presence means "the user put this dataset here". Imagenette has
# three official releases (full size, shorter side 320, shorter side 160); the first one present
# serves, in this order (the authors' code reads data/imagenette2).
IMAGENETTE_FOLDERS = ("imagenette2", "imagenette2-320", "imagenette2-160")
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py",
           "cifar100": "cifar-100-python", "tiny_imagenet": "tiny-imagenet-200",
           "imagenet": "imagenet", "imagenet32": "imagenet32"}
# Class-folder datasets (train/<class>/<image>, val/<class>/<image>) and their class counts.
CLASS_FOLDERS = {"imagenet": 1000, "imagenette": 10}
# ImageNet32 (Chrabaszcz et al. 2017, npz release): ten train batches and one val file, each with
# 'data' [N, 3072] uint8 (channel-major 3x32x32) and 'labels' [N] (1-based). Image counts are those of
# ILSVRC-2012 (train 1,281,167; val 50,000); tests shrink them.
IMAGENET32_TRAIN = tuple(f"train_data_batch_{i}.npz" for i in range(1, 11))
IMAGENET32_VAL = "val_data.npz"
IMAGENET32_COUNTS = {"train": 1281167, "val": 50000}
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")

_memo: dict[tuple, str | None] = {}
_rows: dict[str, int] = {}  # image count of each checked ImageNet32 file, filled by its memoised check


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


def found_folder(name: str, root: str | None) -> str | None:
    """The dataset's folder name under the root (the first Imagenette release present), or None."""
    if not root:
        return None
    candidates = IMAGENETTE_FOLDERS if name == "imagenette" else (FOLDERS[name],)
    return next((c for c in candidates if os.path.isdir(os.path.join(root, c))), None)


def present(name: str, root: str | None) -> bool:
    """Whether the dataset's folder exists under the root (then it must also be complete)."""
    return found_folder(name, root) is not None


def expected_path(name: str, root: str) -> str:
    if name == "imagenette":
        return " or ".join(os.path.join(root, f) for f in IMAGENETTE_FOLDERS)
    sub = os.path.join(FOLDERS[name], "raw") if name in ("mnist", "fashion_mnist") else FOLDERS[name]
    return os.path.join(root, sub)


def verify(name: str, root: str, folder_name: str | None = None) -> None:
    """Raise DataError naming the first missing or corrupt file of a dataset present under root.
    ``folder_name`` picks one Imagenette release; by default the first one present."""
    folder_name = folder_name or found_folder(name, root) or FOLDERS.get(name, IMAGENETTE_FOLDERS[0])
    folder = os.path.join(root, folder_name)
    fix = f"delete it and re-download {folder_name} into {root} in torchvision's layout, or replace the file"
    missing = f"; re-download {folder_name} into {root} in torchvision's layout"
    if name in CLASS_FOLDERS:
        if not os.path.isdir(folder):
            raise DataError(f"dataset '{name}' not found: missing folder {folder}; put the extracted "
                            f"{folder_name} folder (train/<class>/, val/<class>/) into {root}")
        _verify_class_folders(name, folder, CLASS_FOLDERS[name])
    elif name == "imagenet32":
        _verify_imagenet32(folder, root)
    elif name in ("mnist", "fashion_mnist"):
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


def class_dirs(split_dir: str) -> list[str]:
    """Sorted class folder names of one split (torchvision's ImageFolder order, which gives the
    labels); hidden folders (".ipynb_checkpoints" and the like) are not classes."""
    with os.scandir(split_dir) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _verify_class_folders(name: str, folder: str, n_classes: int) -> None:
    """Structure check of an ImageFolder-style dataset: train/ and val/ each hold exactly n_classes
    class folders, the same ones, none empty. Image counts are not checked (listing ImageNet's
    1.28 M files takes minutes on network storage); ``folder_index`` lists them when loading."""
    split_dirs = [os.path.join(folder, s) for s in ("train", "val")]
    fix = f"extract the {os.path.basename(folder)} folder again (train/<class>/*.JPEG and val/<class>/*.JPEG)"
    for d in split_dirs:
        if not os.path.isdir(d):
            raise DataError(f"dataset '{name}' is incomplete: missing folder {d}; {fix}")

    def check():
        classes = []
        for d in split_dirs:
            got = class_dirs(d)
            if not got and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(d)):
                return (f"dataset '{name}': {d} holds images but no class folders; sort them into "
                        f"{d}/<wnid>/ (for ILSVRC-2012 val, with the devkit's ground-truth labels)")
            if len(got) != n_classes:
                return (f"dataset '{name}' is incomplete: {d} has {len(got)} class folders, expected "
                        f"{n_classes}; {fix}")
            classes.append(got)
        if classes[0] != classes[1]:
            odd = sorted(set(classes[0]).symmetric_difference(classes[1]))[0]
            return (f"dataset '{name}': class folder {odd} is in only one of {split_dirs[0]} and "
                    f"{split_dirs[1]}; {fix}")
        for d in split_dirs:
            for c in classes[0]:
                with os.scandir(os.path.join(d, c)) as it:
                    if next(it, None) is None:
                        return f"dataset '{name}' is incomplete: class folder {os.path.join(d, c)} is empty; {fix}"
        return None
    _memoised(tuple(k for d in split_dirs for k in _stat_key(d)), check)


def npy_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) of one array of an npz, read from its header only."""
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)


def _imagenet32_rows(path: str, fix: str) -> int:
    """Image count of one ImageNet32 npz file, after checking its 'data' and 'labels' headers."""
    def check():
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if not {"data.npy", "labels.npy"} <= names:
                    return (f"corrupt data file {path} (arrays {sorted(n[:-4] for n in names)}, "
                            f"expected 'data' and 'labels'); {fix}")
                data_shape, _, data_dtype = npy_header(zf, "data.npy")
                label_shape, _, label_dtype = npy_header(zf, "labels.npy")
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            return f"corrupt data file {path} ({e}); {fix}"
        if len(data_shape) != 2 or data_shape[1] != 3072 or data_dtype != np.uint8:
            return (f"corrupt data file {path} ('data' is {data_dtype} {data_shape}, expected "
                    f"uint8 [N, 3072]); {fix}")
        if label_shape != data_shape[:1] or label_dtype.kind not in "iu":
            return (f"corrupt data file {path} ('labels' is {label_dtype} {label_shape}, expected "
                    f"{data_shape[0]} integers); {fix}")
        _rows[path] = data_shape[0]
        return None
    _memoised(_stat_key(path), check)
    return _rows[path]



def _verify_imagenet32(folder: str, root: str) -> None:
    """All ten train batches and the val file present, well-formed, with ILSVRC-2012's counts."""
    fix = (f"download the npz release of ImageNet32 (Imagenet32_train_npz.zip, Imagenet32_val_npz.zip, "
           f"image-net.org 'downsampled' page) and put its files into {folder}")
    for split, files in (("train", IMAGENET32_TRAIN), ("val", (IMAGENET32_VAL,))):
        total = 0
        for fname in files:
            path = os.path.join(folder, fname)
            if not os.path.isfile(path):
                pickled = os.path.isfile(path[:-4])
                why = (f"found {path[:-4]} from the pickle release, which is not read (only the npz "
                       f"release is)" if pickled else "missing " + path)
                raise DataError(f"dataset 'imagenet32' under {root} is incomplete: {why}; {fix}")
            total += _imagenet32_rows(path, fix)
        if total != IMAGENET32_COUNTS[split]:
            raise DataError(f"dataset 'imagenet32' under {root} is incomplete: its {split} files hold "
                            f"{total} images, expected {IMAGENET32_COUNTS[split]}; {fix}")
