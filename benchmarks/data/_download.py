"""Getting datasets into a data root: ``run_all.py --download`` and the hints planning prints.

Downloadable, through torchvision's own dataset classes: MNIST and Fashion-MNIST (``MNIST``,
``FashionMNIST``), CIFAR-10 and CIFAR-100 (``CIFAR10``, ``CIFAR100``) and Imagenette
(``Imagenette``, the full-size release ``imagenette2``: the release a data root serves first, so
the run ids a plan shows before the download are those the runs keep). ImageNet, ImageNet32 and
Tiny ImageNet need a manual step (a registration, or no torchvision class); ``manual_step`` gives
the exact commands.

A download lands in a hidden staging folder inside the data root and moves into torchvision's
layout only after its check passed, so a failed or corrupt download leaves nothing behind. The
check is by content, because archives differ between copies (a gzip header holds a file name and a
time, so a mirror's or a distribution's re-compressed ``.gz`` has another md5 than torchvision's):
MNIST and Fashion-MNIST by the md5 of each decompressed idx file (torchvision's archive check is
turned off for them; the ``.gz`` files are not kept), CIFAR by the md5 of each batch file (the
checksums torchvision carries), Imagenette by its class folders (no checksums are published for the
extracted images; torchvision checks the archive's md5).

Mirrors: ``FGBENCH_<NAME>_MIRROR`` (``MIRROR_ENV``) replaces torchvision's server by a base URL that
serves the original file names (``train-images-idx3-ubyte.gz``, ``cifar-10-python.tar.gz``,
``imagenette2.tgz``), e.g. a cluster's local copy. Only this module imports torchvision, and only
inside ``download``.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile

from benchmarks.suite.errors import DataError

from . import _files

MIRROR_ENV = {"mnist": "FGBENCH_MNIST_MIRROR", "fashion_mnist": "FGBENCH_FASHION_MNIST_MIRROR",
              "cifar10": "FGBENCH_CIFAR10_MIRROR", "cifar100": "FGBENCH_CIFAR100_MIRROR",
              "imagenette": "FGBENCH_IMAGENETTE_MIRROR"}
DOWNLOADABLE = tuple(MIRROR_ENV)
MANUAL = ("imagenet", "imagenet32", "tiny_imagenet")
PACKAGED = ("digits",)  # scikit-learn ships it: nothing to fetch
_SIZE = {"mnist": "11 MB", "fashion_mnist": "30 MB", "cifar10": "163 MB", "cifar100": "161 MB",
         "imagenette": "1.5 GB"}
_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10",
                      "cifar100": "CIFAR100", "imagenette": "Imagenette"}
IMAGENETTE_RELEASE = _files.IMAGENETTE_FOLDERS[0]  # what --download fetches and planning assumes


def pending_source(name: str) -> str:
    """The ``data_source`` a run of ``name`` gets once its files are under the data root (what a plan
    without them shows, so its run ids are the ones the runs will have)."""
    return IMAGENETTE_RELEASE if name == "imagenette" else "torchvision"


def manual_step(name: str, root: str | None) -> str:
    """One line: how to put a dataset that ``--download`` cannot fetch under the data root."""
    r = root or "DIR"
    if name == "imagenet":
        folder = os.path.join(r, "imagenet")
        return (f"register at https://image-net.org, download ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar "
                f"and ILSVRC2012_devkit_t12.tar.gz (about 145 GB) into {folder}, then run "
                f"python -c \"from torchvision.datasets import ImageNet; [ImageNet({folder!r}, split=s) for s in "
                f"('train', 'val')]\" (torchvision sorts them into {folder}/train/<wnid>/ and {folder}/val/<wnid>/)")
    if name == "imagenet32":
        folder = os.path.join(r, "imagenet32")
        return (f"register at https://image-net.org, download Imagenet32_train_npz.zip and Imagenet32_val_npz.zip "
                f"(Downsampled ImageNet 32x32, npz release), then run unzip -j Imagenet32_train_npz.zip -d {folder} "
                f"&& unzip -j Imagenet32_val_npz.zip -d {folder} (train_data_batch_1.npz .. train_data_batch_10.npz "
                f"and val_data.npz directly in {folder})")
    if name == "tiny_imagenet":
        return (f"torchvision has no Tiny ImageNet class; run curl -LO http://cs231n.stanford.edu/tiny-imagenet-200.zip "
                f"&& unzip -q tiny-imagenet-200.zip -d {r} (gives {os.path.join(r, 'tiny-imagenet-200')}/)")
    raise ValueError(f"{name!r} has no manual step")


def _content_problem(name: str, stage: str, root: str, source: str, absent_ok: bool = False) -> str | None:
    """Why the files under ``stage`` are not the dataset (naming the file where they will go), or None.
    ``absent_ok``: only files that arrived count (after a failed download, to name a corrupt one)."""
    folder = _folder(name)
    if name in ("mnist", "fashion_mnist"):
        for fname, want in _files.MNIST_CONTENT_MD5[folder].items():
            path = os.path.join(stage, folder, "raw", fname)
            final = os.path.join(root, folder, "raw", fname)
            if not os.path.isfile(path):
                if absent_ok:
                    continue
                return f"{fname}.gz from {source} did not arrive (for {final})"
            got = _files._md5(path)
            if got != want:
                return (f"{fname}.gz from {source} decompresses to md5 {got}, expected {want} (the original's, "
                        f"for {final})")
        return None
    if name in ("cifar10", "cifar100"):
        for fname, want in _files._CIFAR_MD5[folder].items():
            path = os.path.join(stage, folder, fname)
            final = os.path.join(root, folder, fname)
            if not os.path.isfile(path):
                if absent_ok:
                    continue
                return f"{final} is not in the archive from {source}"
            got = _files._md5(path)
            if got != want:
                return f"{final} from {source} has md5 {got}, expected {want} (the original's)"
        return None
    if absent_ok:
        return None  # a half-extracted folder says nothing the error does not
    try:
        _files._verify_class_folders(name, os.path.join(stage, folder), _files.CLASS_FOLDERS[name])
    except DataError as e:
        return str(e).replace(stage, root)
    return None


def _folder(name: str) -> str:
    return IMAGENETTE_RELEASE if name == "imagenette" else _files.FOLDERS[name]


def _torchvision_class(name: str, mirror: str | None):
    """(torchvision dataset class, its keyword arguments, where it downloads from). The subclasses
    keep the parent's name: torchvision names MNIST's folder after the class (root/MNIST/raw)."""
    import torchvision.datasets as tvd

    base = getattr(tvd, _TORCHVISION_CLASS[name])
    if name in ("mnist", "fashion_mnist"):
        # Archive md5s off: a mirror's re-compressed .gz differs; the content is checked instead.
        attrs = {"resources": [(fname, None) for fname, _ in base.resources]}
        if mirror:
            attrs["mirrors"] = [mirror]
        cls = type(base.__name__, (base,), attrs)
        return cls, {"train": True}, " or ".join(cls.mirrors)
    if name in ("cifar10", "cifar100"):
        # With a mirror the archive md5 is off too; the batch files' md5s are checked either way.
        attrs = {"url": mirror + base.filename, "tgz_md5": None} if mirror else {}
        cls = type(base.__name__, (base,), attrs)
        return cls, {"train": True}, cls.url
    url, md5 = base._ARCHIVES["full"]
    if mirror:  # no published checksums of the images: the archive's md5 stays the check
        url = mirror + url.rsplit("/", 1)[1]
    cls = type(base.__name__, (base,), {"_ARCHIVES": {**base._ARCHIVES, "full": (url, md5)}})
    return cls, {"split": "train", "size": "full"}, url


@contextlib.contextmanager
def _quiet():
    """torchvision's own prints and progress bars: shown on a terminal, swallowed otherwise (logs
    and pipes get our one line a dataset)."""
    if sys.stderr.isatty():
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _fetch(name: str, root: str, log) -> None:
    env = MIRROR_ENV[name]
    mirror = os.environ.get(env, "").strip() or None
    if mirror and not mirror.endswith("/"):
        mirror += "/"
    cls, kwargs, source = _torchvision_class(name, mirror)
    folder = _folder(name)
    fix = (f"fix the mirror or unset {env}" if mirror else
           f"check the network and retry, or set {env} to a mirror (a base URL serving the original file names)")
    log(f"{name}: downloading {folder} (about {_SIZE[name]}) with torchvision.datasets.{cls.__name__} "
        f"from {source}")
    stage = tempfile.mkdtemp(prefix=".fgbench-download-", dir=root)
    try:
        try:
            with _quiet():
                cls(stage, download=True, **kwargs)
        except Exception as e:  # noqa: BLE001 - network, archive and torchvision's own checks
            problem = _content_problem(name, stage, root, source, absent_ok=True)
            if problem is None and name == "imagenette" and "corrupted" in str(e):  # torchvision's archive check
                problem = f"the archive's md5 is not {cls._ARCHIVES['full'][1]}, the one torchvision expects"
            raise DataError(f"downloading {name} from {source} failed: {problem or _one_line(e)}; nothing was kept "
                            f"in {root}; {fix}") from None
        problem = _content_problem(name, stage, root, source)
        if problem:
            raise DataError(f"downloaded {name} is corrupt: {problem}; nothing was kept in {root}; {fix}")
        if name in ("mnist", "fashion_mnist"):  # keep the checked idx files, not a copy's own archives
            raw = os.path.join(stage, folder, "raw")
            for fname in os.listdir(raw):
                if fname.endswith(".gz"):
                    os.unlink(os.path.join(raw, fname))
        os.replace(os.path.join(stage, folder), os.path.join(root, folder))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _files.verify(name, root, folder)  # what planning checks: the suite accepts it
    how = "content md5 of every file" if name not in _files.CLASS_FOLDERS else "archive md5 and class folders"
    log(f"{name}: {os.path.join(root, folder)} ready ({how} checked)")


def _check_present(name: str, root: str, folder: str) -> None:
    """A dataset already under the root: the suite's own check, and for extracted MNIST-style idx
    files also their content md5 (stricter than the header check planning does)."""
    _files.verify(name, root, folder)
    if name in ("mnist", "fashion_mnist"):
        for fname, want in _files.MNIST_CONTENT_MD5[folder].items():
            path = os.path.join(root, folder, "raw", fname)
            if os.path.isfile(path) and (got := _files._md5(path)) != want:
                raise DataError(f"{path} has md5 {got}, expected {want} (the original's); delete "
                                f"{os.path.join(root, folder)} and rerun --download")


def download(names, root: str, log=print) -> list[str]:
    """Put the datasets ``names`` under ``root`` in torchvision's layout; return those that need a
    manual step (``manual_step``) and are not there yet. Datasets already present are checked,
    not fetched again. Raises DataError (one line) on a failed or corrupt download."""
    manual = []
    for name in names:
        if name in PACKAGED:
            continue
        folder = _files.found_folder(name, root)
        if folder:
            try:
                _check_present(name, root, folder)
            except DataError as e:
                if "--download" in str(e):
                    raise
                raise DataError(f"{e}; --download never overwrites what is there: delete "
                                f"{os.path.join(root, folder)} and rerun it") from None
            log(f"{name}: already in {os.path.join(root, folder)} (checked)")
        elif name in MANUAL:
            manual.append(name)
        elif name in DOWNLOADABLE:
            _fetch(name, root, log)
        else:
            raise DataError(f"no way to fetch dataset {name!r} is known")
    return manual
