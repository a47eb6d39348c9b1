"""Class-folder image datasets (ImageNet, Imagenette): listing and decoding with PIL, no torch.

``index`` lists one split once: image paths sorted within sorted class folders, and labels that are
the class folder's rank (torchvision's ``ImageFolder`` convention; for ILSVRC-2012 the sorted wnids,
the same order TFDS uses). ``decode_batch`` turns paths into uint8 [N, 3, S, S]:

- eval (``train=False``): torchvision's ``Resize(round(S / crop_fraction))`` + ``CenterCrop(S)``
  (same sizes and rounding, same PIL calls). ``crop_fraction=1`` is what Fournier et al.'s code does
  for ImageNet/Imagenette/ImageNet32 (dataset/utils.py: Resize(image_size), CenterCrop(image_size));
  Ren et al.'s code keeps S/(S+32) of the shorter side (224/256 = 0.875, "crop_padding" 32 in
  dataset.py), cropping before resizing (a sub-pixel difference from this order).
- train (``train=True``): torchvision's ``RandomResizedCrop(S)`` (area fraction uniform in
  [``min_area``, 1], log-uniform aspect ratio in [3/4, 4/3], ten tries, then a centre crop; crop,
  then resize) followed by a horizontal flip with probability 1/2. ``min_area`` 0.08 is
  torchvision's default (Fournier et al.); Ren et al. use 0.3 for supervised ImageNet (paper,
  App. "ImageNet"), and their code clips an oversized crop to the image instead of retrying (a small
  difference in the crop distribution).

Resizing is PIL's antialiased bilinear filter, as torchvision's PIL path does; Ren et al.'s TF code
uses bicubic. Only the random crop and flip are done here; colour jitter and normalisation are the
engine's (they work on arrays). Decoding is one image at a time in the calling process: at full
scale call ``decode_batch`` from loader workers (a torch DataLoader, a multiprocessing pool).
"""
from __future__ import annotations

import math
import os

import numpy as np

from benchmarks.suite.errors import DataError

from . import _files
from ._load import pick

# Largest decode ``load`` does into memory; beyond it the run must stream (index + decode_batch).
MAX_IN_MEMORY_BYTES = 16 << 30


def index(split_dir: str, name: str) -> tuple[list[str], np.ndarray]:
    """(paths, int64 labels) of one split folder <split_dir>/<class>/<image>."""
    paths, labels = [], []
    for label, cls in enumerate(_files.class_dirs(split_dir)):
        d = os.path.join(split_dir, cls)
        with os.scandir(d) as it:
            names = sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(_files.IMAGE_EXTENSIONS))
        if not names:
            raise DataError(f"dataset '{name}' is incomplete: class folder {d} holds no images; "
                            f"extract the dataset folder again")
        paths += [os.path.join(d, n) for n in names]
        labels += [label] * len(names)
    return paths, np.asarray(labels, dtype=np.int64)


def _open_rgb(path: str):
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.convert("RGB")  # grey and CMYK files exist in ILSVRC-2012
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"unreadable image {path} ({e}); replace the file or extract its dataset again") from e


def _resize_centre_crop(im, size: int, crop_fraction: float):
    """torchvision's Resize(round(size / crop_fraction)) then CenterCrop(size), on a PIL image."""
    from PIL import Image
    short = round(size / crop_fraction)
    w, h = im.size
    # Resize: shorter side to `short`, longer side int(short * long / short_in), as torchvision does
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def _random_box(w: int, h: int, rng: np.random.Generator, min_area: float) -> tuple:
    """torchvision's RandomResizedCrop.get_params, scale (min_area, 1), ratio (3/4, 4/3)."""
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = w * h * rng.uniform(min_area, 1.0)
        aspect = math.exp(rng.uniform(lo, hi))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return x, y, x + cw, y + ch
    ratio = w / h  # ten misses (very elongated images): centre crop at the nearest allowed ratio
    if ratio < 3 / 4:
        cw, ch = w, round(w / (3 / 4))
    elif ratio > 4 / 3:
        cw, ch = round(h * 4 / 3), h
    else:
        cw, ch = w, h
    x, y = (w - cw) // 2, (h - ch) // 2
    return x, y, x + cw, y + ch


def decode_batch(paths, image_size: int, rng: np.random.Generator | None = None, train: bool = False, *,
                 crop_fraction: float = 1.0, min_area: float = 0.08) -> np.ndarray:
    """Decode image files into uint8 [N, 3, image_size, image_size] (RGB); see the module docstring
    for the eval and train crops. ``train=True`` needs ``rng`` (a numpy Generator), which makes the
    crops and flips reproducible."""
    from PIL import Image
    if not (isinstance(image_size, (int, np.integer)) and image_size > 0):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    if train and rng is None:
        raise DataError("decode_batch(train=True) needs rng=np.random.default_rng(seed) for its random crops")
    if not 0 < crop_fraction <= 1 or not 0 < min_area <= 1:
        raise DataError(f"crop_fraction and min_area must lie in (0, 1], got {crop_fraction}, {min_area}")
    out = np.empty((len(paths), 3, image_size, image_size), np.uint8)
    for i, path in enumerate(paths):
        im = _open_rgb(path)
        if train:
            im = im.crop(_random_box(*im.size, rng, min_area)).resize((image_size, image_size), Image.BILINEAR)
            a = np.asarray(im)
            if rng.random() < 0.5:
                a = a[:, ::-1]
        else:
            a = np.asarray(_resize_centre_crop(im, image_size, crop_fraction))
        out[i] = a.transpose(2, 0, 1)
    return out


def load_split(split_dir: str, name: str, n: int | None, seed, image_size: int):
    """A stratified subset (all when n is None) of one split, decoded eval-style (no augmentation)
    at image_size; only the chosen files are decoded. Returns x, y and the split's full size."""
    paths, labels = index(split_dir, name)
    keep = pick(labels, n, seed, random_ties=True)
    need = len(keep) * 3 * image_size ** 2
    if need > MAX_IN_MEMORY_BYTES:
        raise DataError(f"decoding {len(keep)} '{name}' images from {split_dir} at {image_size} px needs "
                        f"{need / 2**30:.0f} GiB of memory; pass a smaller n_train/n_test, or stream batches "
                        f"with benchmarks.data.folder_index and decode_batch")
    return decode_batch([paths[i] for i in keep], image_size), labels[keep], len(labels)
