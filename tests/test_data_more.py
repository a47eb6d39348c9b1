"""Tests of benchmarks.data for ImageNet (class folders), ImageNet32 (npz batches) and Imagenette:
structure checks, subsets, labels, the streaming API and the synthetic stand-ins. Every tree is a
tiny fake in the exact on-disk layout (real class counts; ImageNet32's image counts shrunk)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchmarks.data as data
from benchmarks.data import _files, _images, _load
from benchmarks.suite.errors import DataError

REPO = Path(__file__).resolve().parents[1]
WNIDS = [f"n{1440764 + 7 * i:08d}" for i in range(1000)]  # ILSVRC-style ids, sorted


def _colour(label: int) -> tuple:
    """A flat colour that identifies a class (JPEG keeps flat colours within a few levels)."""
    return (label % 250, 60 * (label // 250), 128)


def _jpeg(path: Path, label: int, size=(24, 16)):
    Image.fromarray(np.full((size[1], size[0], 3), _colour(label), np.uint8)).save(path)


def _assert_colours(x: np.ndarray, y: np.ndarray):
    """Each decoded image still carries its own class's colour: images stay with their labels."""
    want = np.array([_colour(int(c)) for c in y])
    got = x[:, :, x.shape[2] // 2, x.shape[3] // 2].astype(int)
    assert np.abs(got - want).max() <= 4


def _class_tree(base: Path, classes, per_class: dict, size=(24, 16)):
    """base/<split>/<class>/<i>.JPEG with per_class[split] images a class, coloured by class rank."""
    for split, n in per_class.items():
        for label, c in enumerate(classes):
            d = base / split / c
            d.mkdir(parents=True)
            for i in range(n):
                _jpeg(d / f"{c}_{i}.JPEG", label, size)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("inet")
    _class_tree(root / "imagenet", WNIDS, {"train": 1, "val": 1})
    (root / "imagenet" / "train" / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    return str(root)


def test_import_stays_light():
    code = ("import benchmarks.data, sys; "
            "assert not {'torch', 'torchvision', 'PIL', 'jax'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.parametrize("name, side, k", [("imagenet", 64, 1000), ("imagenet32", 32, 1000), ("imagenette", 64, 10)])
def test_synthetic_stand_ins(name, side, k):
    assert data.resolve(name, "smoke", None) == {"data_source": "synthetic"}
    for scale in ("small", "full"):  # real data only, never a silent stand-in
        with pytest.raises(DataError, match="data-root"):
            data.resolve(name, scale, None)
    s = data.load(name, "synthetic", None, n_train=200, n_test=100)
    assert s.x_train.shape == (200, 3, side, side) and s.x_test.shape == (100, 3, side, side)
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64 and s.n_classes == k
    assert s.kind == "synthetic" and "SYNTHETIC" in s.description and f"{side}x{side}" in s.description
    assert s.y_train.max() < k and len(np.unique(s.y_train)) == min(200, k)
    assert np.array_equal(s.x_train, data.load(name, "synthetic", None, n_train=200, n_test=100).x_train)


def test_synthetic_image_size_and_learnable():
    s = data.load("imagenette", "synthetic", None, image_size=96, n_train=200, n_test=100)
    assert s.x_train.shape == (200, 3, 96, 96) and data.DATASETS["imagenette"]["shape"] == (3, 160, 160)
    xtr = s.x_train.reshape(200, -1).astype(np.float32)
    means = np.stack([xtr[s.y_train == c].mean(0) for c in range(10)])
    xte = s.x_test.reshape(100, -1).astype(np.float32)
    pred = ((xte[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == s.y_test).mean() > 0.5  # class templates survive the noise
    with pytest.raises(DataError, match="image_size=64 cannot apply to 'imagenet32'"):
        data.load("imagenet32", "synthetic", None, image_size=64)
    with pytest.raises(DataError, match="positive integer"):
        data.load("imagenet", "synthetic", None, image_size=0)


# ---------------------------------------------------------------- ImageNet (class folders)

def test_imagenet_subset_stratified_and_labelled(imagenet_root):
    assert data.resolve("imagenet", "full", imagenet_root) == {"data_source": "torchvision"}
    s = data.load("imagenet", "torchvision", imagenet_root, n_train=500, n_test=300, data_seed=2, image_size=16)
    assert s.x_train.shape == (500, 3, 16, 16) and s.x_test.shape == (300, 3, 16, 16)
    assert s.n_classes == 1000 and s.kind == "subset"
    assert len(np.unique(s.y_train)) == 500 and len(np.unique(s.y_test)) == 300  # one a class at most
    assert s.y_train.max() > 900 and s.y_test.max() > 900  # the classes left out are drawn, not the last ones
    assert "stratified subset (data_seed 2)" in s.description and "16x16" in s.description
    _assert_colours(s.x_train, s.y_train)
    _assert_colours(s.x_test, s.y_test)
    again = data.load("imagenet", "torchvision", imagenet_root, n_train=500, n_test=300, data_seed=2, image_size=16)
    other = data.load("imagenet", "torchvision", imagenet_root, n_train=500, n_test=300, data_seed=3, image_size=16)
    assert np.array_equal(s.y_train, again.y_train) and np.array_equal(s.x_test, again.x_test)
    assert not np.array_equal(s.y_train, other.y_train)


def test_imagenet_streaming(imagenet_root):
    paths, labels = data.folder_index("imagenet", imagenet_root, "train")
    assert len(paths) == 1000 and labels.dtype == np.int64 and labels.tolist() == list(range(1000))
    assert all(Path(p).parent.name == WNIDS[c] for p, c in zip(paths, labels))  # sorted wnids give labels
    x = data.decode_batch(paths[995:], 224)
    assert x.shape == (5, 3, 224, 224) and x.dtype == np.uint8
    _assert_colours(x, labels[995:])
    vpaths, vlabels = data.folder_index("imagenet", imagenet_root, "val", data_source="torchvision")
    assert [Path(p).parent.name for p in vpaths] == WNIDS and np.array_equal(vlabels, labels)
    with pytest.raises(DataError, match="'train' or 'val'"):
        data.folder_index("imagenet", imagenet_root, "test")
    with pytest.raises(DataError, match="use benchmarks.data.load"):
        data.folder_index("imagenet", imagenet_root, "train", data_source="synthetic")
    with pytest.raises(DataError, match="benchmarks.data.load"):
        data.folder_index("imagenet32", imagenet_root, "train")


def test_imagenet_full_decode_refused(imagenet_root, monkeypatch):
    monkeypatch.setattr(_images, "MAX_IN_MEMORY_BYTES", 1000 * 3 * 224 * 224 - 1)
    with pytest.raises(DataError, match="folder_index and decode_batch"):
        data.load("imagenet", "torchvision", imagenet_root)  # 1,000 images at 224 px: over the limit


def _class_dirs(base: Path, train, val):
    for split, names in (("train", train), ("val", val)):
        for c in names:
            (base / split / c).mkdir(parents=True)
            (base / split / c / "a.JPEG").write_bytes(b"")


@pytest.mark.parametrize("case, message", [
    ("999 classes", r"train has 999 class folders, expected 1000"),
    ("flat val", r"val holds images but no class folders; sort them into .*val/<wnid>/"),
    ("class mismatch", rf"class folder ({WNIDS[-1]}|n99999999) is in only one of"),
    ("empty class", r"class folder .*n01440764 is empty"),
    ("no val", r"missing folder .*imagenet/val"),
])
def test_imagenet_bad_trees(tmp_path, case, message):
    base = tmp_path / "imagenet"
    if case == "999 classes":
        _class_dirs(base, WNIDS[:999], WNIDS)
    elif case == "flat val":
        _class_dirs(base, WNIDS, [])
        (base / "val").mkdir()
        (base / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    elif case == "class mismatch":
        _class_dirs(base, WNIDS, WNIDS[:-1] + ["n99999999"])
    elif case == "empty class":
        _class_dirs(base, WNIDS, WNIDS)
        (base / "train" / WNIDS[0] / "a.JPEG").unlink()
    else:
        _class_dirs(base, WNIDS, [])
    for scale in ("smoke", "full"):  # present but broken: no fall-back to the stand-in, even at smoke
        with pytest.raises(DataError, match=message) as e:
            data.resolve("imagenet", scale, str(tmp_path))
        assert "'imagenet'" in str(e.value) and "\n" not in str(e.value)


def test_missing_imagenet_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="data-root") as e:
        data.resolve("imagenet", "small", str(tmp_path))
    assert os.path.join(str(tmp_path), "imagenet") in str(e.value)
    with pytest.raises(DataError, match="not found under data root"):
        data.folder_index("imagenet", str(tmp_path), "train")


def test_unreadable_image_is_named(tmp_path):
    _class_dirs(tmp_path / "imagenet", WNIDS, WNIDS)  # every file an empty "JPEG"
    assert data.resolve("imagenet", "small", str(tmp_path)) == {"data_source": "torchvision"}
    with pytest.raises(DataError, match=r"unreadable image .*imagenet.train.n[0-9]{8}.a\.JPEG .*replace the file"):
        data.load("imagenet", "torchvision", str(tmp_path), n_train=10, n_test=10, image_size=8)


# ---------------------------------------------------------------- Imagenette

@pytest.fixture(scope="module")
def imagenette_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nette")
    _class_tree(root / "imagenette2-320", WNIDS[:10], {"train": 6, "val": 3}, size=(48, 32))
    return root


def test_imagenette_release_and_default_size(imagenette_root):
    root = str(imagenette_root)
    assert data.resolve("imagenette", "small", root) == {"data_source": "imagenette2-320"}
    s = data.load("imagenette", "imagenette2-320", root)
    assert s.x_train.shape == (60, 3, 160, 160) and s.x_test.shape == (30, 3, 160, 160)  # default 160 px
    assert s.kind == "real" and "imagenette2-320" in s.description and "60 train / 30 test real images" in s.description
    assert np.bincount(s.y_train).tolist() == [6] * 10 and np.bincount(s.y_test).tolist() == [3] * 10
    _assert_colours(s.x_train, s.y_train)
    sub = data.load("imagenette", "imagenette2-320", root, n_train=20, n_test=10, image_size=32)
    assert np.bincount(sub.y_train).tolist() == [2] * 10 and sub.kind == "subset"
    paths, labels = data.folder_index("imagenette", root, "val", data_source="imagenette2-320")
    assert len(paths) == 30 and np.bincount(labels).tolist() == [3] * 10
    with pytest.raises(DataError, match="imagenette2, imagenette2-320, imagenette2-160"):
        data.load("imagenette", "torchvision", root)
    with pytest.raises(DataError, match=r"missing folder .*imagenette2-160"):
        data.load("imagenette", "imagenette2-160", root)


def test_imagenette_prefers_full_size_release(tmp_path):
    _class_tree(tmp_path / "imagenette2-160", WNIDS[:10], {"train": 1, "val": 1})
    assert data.resolve("imagenette", "full", str(tmp_path)) == {"data_source": "imagenette2-160"}
    _class_tree(tmp_path / "imagenette2", WNIDS[:9], {"train": 1, "val": 1})
    with pytest.raises(DataError, match=r"imagenette2.train has 9 class folders, expected 10"):
        data.resolve("imagenette", "full", str(tmp_path))  # the preferred release is broken: say so


def test_missing_imagenette_lists_releases(tmp_path):
    with pytest.raises(DataError, match="imagenette2 or .*imagenette2-320 or .*imagenette2-160"):
        data.resolve("imagenette", "full", str(tmp_path))


# ---------------------------------------------------------------- decode_batch

def _png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def test_decode_eval_crop_and_channels(tmp_path):
    a = np.zeros((20, 30, 3), np.uint8)
    a[:, 5:25] = (200, 100, 50)  # a centred square of colour between black side bars
    wide = _png(tmp_path / "wide.png", a)
    tall = _png(tmp_path / "tall.png", a.transpose(1, 0, 2).copy())
    grey = _png(tmp_path / "grey.png", np.full((12, 12), 77, np.uint8))
    x = data.decode_batch([wide, tall, grey], 10)
    assert x.shape == (3, 3, 10, 10)
    for img in x[:2]:  # centre crop keeps only the coloured square (its edge pixels blend, as torchvision's)
        assert img[:, 1:9, 1:9].reshape(3, -1).tolist() == [[200] * 64, [100] * 64, [50] * 64]
    assert (x[2] == 77).all()  # grey files become three equal channels
    half = data.decode_batch([wide], 10, crop_fraction=0.5)
    assert (half[0] == np.array([200, 100, 50])[:, None, None]).all()


def test_decode_matches_torchvision(tmp_path):
    """Eval = Resize(round(S/f)) + CenterCrop(S); train = RandomResizedCrop (same box) + flip."""
    tv = pytest.importorskip("torchvision.transforms.functional")
    yy, xx = np.mgrid[0:61, 0:97]
    a = np.stack([128 + 100 * np.sin(xx / 7), 128 + 100 * np.cos(yy / 5), (xx * yy) % 256], -1).astype(np.uint8)
    path = _png(tmp_path / "p.png", a)
    for im in (Image.fromarray(a), Image.fromarray(a.transpose(1, 0, 2).copy())):
        p = _png(tmp_path / f"{im.size}.png", np.asarray(im))
        for size, f in ((32, 1.0), (28, 0.875), (80, 1.0)):
            ref = tv.center_crop(tv.resize(im, round(size / f)), size)
            assert np.array_equal(data.decode_batch([p], size, crop_fraction=f)[0], np.asarray(ref).transpose(2, 0, 1))
    im = Image.fromarray(a)
    for seed in range(6):
        r = np.random.default_rng(seed)
        left, top, right, bottom = _images._random_box(97, 61, r, 0.08)
        ref = tv.resized_crop(im, top, left, bottom - top, right - left, [24, 24])
        ref = tv.hflip(ref) if r.random() < 0.5 else ref
        ours = data.decode_batch([path], 24, np.random.default_rng(seed), train=True)[0]
        assert np.array_equal(ours, np.asarray(ref).transpose(2, 0, 1))


def test_random_crop_box_distribution():
    rng = np.random.default_rng(0)
    boxes = np.array([_images._random_box(400, 300, rng, 0.3) for _ in range(2000)])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 400).all() and (boxes[:, 3] <= 300).all()
    area = w * h / (400 * 300)
    assert 0.29 < area.min() < 0.32 and 0.95 < area.max() <= 1  # area fraction drawn on [0.3, 1]
    assert 0.74 < (w / h).min() < 0.77 and 1.3 < (w / h).max() < 1.34  # ratio on [3/4, 4/3]
    assert len({tuple(b) for b in boxes}) > 1900 and boxes[:, 0].std() > 20  # positions vary too
    assert _images._random_box(400, 40, rng, 0.9) == (173, 0, 226, 40)  # no fit: centre crop at ratio 4/3


def test_decode_train_flips_and_is_reproducible(tmp_path):
    a = np.zeros((16, 16, 3), np.uint8)
    a[:, 8:] = 255  # bright right half
    path = _png(tmp_path / "half.png", a)
    # min_area 1 on a square: no crop fits the ratio draw, so every crop is the whole image
    x = data.decode_batch([path] * 40, 16, np.random.default_rng(1), train=True, min_area=1.0)
    flipped = x[:, 0, 8, 0] == 255
    assert 5 < flipped.sum() < 35
    assert (x[flipped] == a.transpose(2, 0, 1)[None, :, :, ::-1]).all() and (x[~flipped] == a.transpose(2, 0, 1)).all()
    assert np.array_equal(x, data.decode_batch([path] * 40, 16, np.random.default_rng(1), train=True, min_area=1.0))
    with pytest.raises(DataError, match="needs rng"):
        data.decode_batch([path], 16, train=True)


# ---------------------------------------------------------------- ImageNet32 (npz batches)

N_BATCH, N_VAL = 30, 20


def _label_of(index: np.ndarray) -> np.ndarray:
    """1-based labels of the fake images: 20 classes, including both ends of 1..1000."""
    return np.array([1, 1000, *range(2, 20)])[index % 20]


def _imagenet32_batch(path: Path, first: int, n: int, compressed=False, **override):
    """n images numbered from `first`: R plane holds the number (two bytes), G is 7 except the
    marker 99 at (row 2, col 5), B is 200; labels follow the number."""
    idx = np.arange(first, first + n)
    x = np.zeros((n, 3, 32, 32), np.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = idx % 256, idx // 256
    x[:, 1], x[:, 2] = 7, 200
    x[:, 1, 2, 5] = 99
    arrays = {"data": x.reshape(n, 3072), "labels": _label_of(idx), "mean": np.zeros(3072), **override}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


@pytest.fixture
def imagenet32_root(tmp_path, monkeypatch):
    folder = tmp_path / "imagenet32"
    folder.mkdir()
    for i in range(10):  # batch 3 compressed: both npz kinds are read
        _imagenet32_batch(folder / f"train_data_batch_{i + 1}.npz", i * N_BATCH, N_BATCH, compressed=i == 2)
    _imagenet32_batch(folder / "val_data.npz", 10000, N_VAL)
    monkeypatch.setattr(_files, "IMAGENET32_COUNTS", {"train": 10 * N_BATCH, "val": N_VAL})
    return tmp_path


def _number(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 0, 1].astype(int)


def test_imagenet32_full_load_channel_order_and_labels(imagenet32_root):
    root = str(imagenet32_root)
    assert data.resolve("imagenet32", "full", root) == {"data_source": "torchvision"}
    s = data.load("imagenet32", "torchvision", root)
    assert s.x_train.shape == (300, 3, 32, 32) and s.x_test.shape == (20, 3, 32, 32) and s.kind == "real"
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64 and s.n_classes == 1000
    assert _number(s.x_train).tolist() == list(range(300))  # batches in order, rows in order
    assert (s.x_train[:, 1, 2, 5] == 99).all() and (s.x_train[:, 1, 2, 6] == 7).all()  # channel-major rows
    assert (s.x_train[:, 1, 5, 2] == 7).all() and (s.x_train[:, 2] == 200).all()
    assert np.array_equal(s.y_train, _label_of(np.arange(300)) - 1)  # 1-based in the files
    assert s.y_train.min() == 0 and s.y_train.max() == 999
    assert np.array_equal(s.y_test, _label_of(_number(s.x_test)) - 1)


def test_imagenet32_subset(imagenet32_root):
    root = str(imagenet32_root)
    s = data.load("imagenet32", "torchvision", root, n_train=40, n_test=10, data_seed=5)
    assert s.kind == "subset" and "stratified subset (data_seed 5)" in s.description
    assert np.unique(s.y_train, return_counts=True)[1].tolist() == [2] * 20  # 20 classes, 2 each
    assert len(np.unique(s.y_test)) == 10
    assert np.array_equal(s.y_train, _label_of(_number(s.x_train)) - 1)  # rows stay with their labels
    assert np.array_equal(s.y_test, _label_of(_number(s.x_test)) - 1)
    t = data.load("imagenet32", "torchvision", root, n_train=40, n_test=10, data_seed=5)
    u = data.load("imagenet32", "torchvision", root, n_train=40, n_test=10, data_seed=6)
    assert np.array_equal(s.x_train, t.x_train) and not np.array_equal(s.x_train, u.x_train)


def test_npz_rows_reads_stored_and_compressed(tmp_path):
    rows = np.array([0, 3, 17, 29])
    for compressed in (False, True):
        path = tmp_path / f"b{compressed}.npz"
        _imagenet32_batch(path, 0, 30, compressed=compressed)
        with np.load(path) as f:
            want = f["data"][rows]
        got = _load.npz_rows(str(path), "data", rows)
        assert np.array_equal(got, want) and not isinstance(got, np.memmap)


@pytest.mark.parametrize("case, message", [
    ("missing batch", r"incomplete: missing .*train_data_batch_7\.npz"),
    ("pickle release", r"found .*train_data_batch_7 from the pickle release"),
    ("wrong count", r"its train files hold 299 images, expected 300"),
    ("not a zip", r"corrupt data file .*val_data\.npz"),
    ("no labels", r"corrupt data file .*train_data_batch_1\.npz \(arrays \['data', 'mean'\]"),
    ("wrong width", r"'data' is uint8 \(30, 1024\), expected uint8 \[N, 3072\]"),
])
def test_imagenet32_bad_files(imagenet32_root, case, message):
    folder = imagenet32_root / "imagenet32"
    batch7, batch1 = folder / "train_data_batch_7.npz", folder / "train_data_batch_1.npz"
    if case in ("missing batch", "pickle release"):
        batch7.unlink()
        if case == "pickle release":
            (folder / "train_data_batch_7").write_bytes(b"pickled")
    elif case == "wrong count":
        _imagenet32_batch(batch7, 180, N_BATCH - 1)
    elif case == "not a zip":
        (folder / "val_data.npz").write_bytes(b"not a zip file")
    elif case == "no labels":
        np.savez(batch1, data=np.zeros((30, 3072), np.uint8), mean=np.zeros(3072))
    else:
        _imagenet32_batch(batch1, 0, N_BATCH, data=np.zeros((30, 1024), np.uint8))
    with pytest.raises(DataError, match=message) as e:
        data.resolve("imagenet32", "smoke", str(imagenet32_root))
    assert "imagenet32" in str(e.value) and "npz release" in str(e.value)


def test_imagenet32_labels_must_be_one_based(imagenet32_root):
    _imagenet32_batch(imagenet32_root / "imagenet32" / "train_data_batch_4.npz", 90, N_BATCH,
                      labels=np.arange(N_BATCH))  # a 0 label: a 0-based file
    with pytest.raises(DataError, match=r"train_data_batch_4\.npz \(labels range 0\.\.1000, expected 1\.\.1000\)"):
        data.load("imagenet32", "torchvision", str(imagenet32_root))
