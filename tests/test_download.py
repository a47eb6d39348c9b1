"""``run_all.py --download``: datasets fetched through torchvision's own classes from a mirror on
127.0.0.1 (re-compressed copies of ../shared/data's idx files), checked by content md5, landing in
torchvision's layout that the suite then accepts; corrupt or unreachable sources are one line,
exit 2, nothing kept; datasets that need a manual step get exact instructions."""

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import helpers

ROOT = helpers.ROOT
SHARED = ROOT.parent / "shared" / "data"
SELECTION = ("--tables", "bacho2024/table1", "--cols", "MNIST", "Fashion MNIST")
FOLDERS = ("MNIST", "FashionMNIST")


def cli(*args, **kw):
    """Without the caller's mirror variables: a test names the mirror it serves."""
    return helpers.cli(*args, drop_env=lambda name: name.endswith("_MIRROR"), **kw)


def _published_md5s() -> dict[str, str]:
    """Content md5s as ../shared/data/README.md lists them (not the suite's own copy of them)."""
    text = (SHARED / "README.md").read_text()
    return {path: md5 for md5, path in re.findall(r"^\s+([0-9a-f]{32})\s+(\S+)$", text, re.M)}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Server:
    """http.server on 127.0.0.1 (a free port) serving a folder, in a thread; counts requests."""

    def __init__(self, folder: Path):
        outer = self
        self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet; remember the paths asked for
                outer.requests.append(self.path)

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client closing early is not news
                pass

        self.httpd = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Re-compressed (gzip level 1, other headers than the originals') copies of the real idx files."""
    if not all((SHARED / f / "raw").is_dir() for f in FOLDERS):
        pytest.skip(f"real MNIST / Fashion-MNIST not found in {SHARED} (the shared data folder beside the repository)")
    folder = tmp_path_factory.mktemp("mirror")
    for f in FOLDERS:
        (folder / f).mkdir()
        for idx in sorted((SHARED / f / "raw").iterdir()):
            (folder / f / f"{idx.name}.gz").write_bytes(gzip.compress(idx.read_bytes(), compresslevel=1, mtime=0))
    server = _Server(folder)
    yield server, folder
    server.close()


def _env(server, which=FOLDERS):
    names = {"MNIST": "FGBENCH_MNIST_MIRROR", "FashionMNIST": "FGBENCH_FASHION_MNIST_MIRROR"}
    return {names[f]: f"{server.url}/{f}/" for f in which}


def _run_ids(out: str) -> list[str]:
    return re.findall(r"\b[0-9a-f]{12}\b", out)


def test_download_from_a_mirror_lands_checked_files_the_suite_accepts(mirror, tmp_path):
    server, folder = mirror
    from benchmarks.data import _files

    # The mirror's archives are not torchvision's (whose archive md5 check would refuse them).
    assert _md5(folder / "MNIST" / "train-images-idx3-ubyte.gz") != _files._MNIST_MD5["MNIST"]["train-images-idx3-ubyte.gz"]
    root = tmp_path / "data"  # does not exist yet: --download creates it
    out = cli("--download", "--data-root", str(root), *SELECTION, env_extra=_env(server))
    assert out.returncode == 0, out.stderr
    assert "torchvision.datasets.MNIST" in out.stdout and "torchvision.datasets.FashionMNIST" in out.stdout
    published = _published_md5s()
    assert len(published) == 8
    for f in FOLDERS:
        got = {p.name: _md5(p) for p in (root / f / "raw").iterdir()}
        assert got == {k.split("/")[-1]: v for k, v in published.items() if k.startswith(f + "/")}  # no .gz kept
    assert sorted(p.name for p in root.iterdir()) == sorted(FOLDERS)  # no staging folder left behind
    assert any(r.endswith("t10k-labels-idx1-ubyte.gz") for r in server.requests)

    # The suite accepts the root: full-scale runs train on it, with the ids a plan without it showed.
    with_root = cli("--dry-run", "--scale", "full", "--data-root", str(root), *SELECTION,
                    "--results-dir", str(tmp_path / "r"))
    assert with_root.returncode == 0, with_root.stderr
    assert "missing" not in with_root.stdout and with_root.stdout.count(" torchvision ") == 14 * 10
    without = cli("--dry-run", "--scale", "full", *SELECTION, "--results-dir", str(tmp_path / "r"))
    assert without.returncode == 0 and without.stdout.count(" missing ") == 14 * 10
    assert _run_ids(with_root.stdout) == _run_ids(without.stdout) and len(set(_run_ids(without.stdout))) == 140

    # A second --download checks what is there and fetches nothing.
    before = len(server.requests)
    again = cli("--download", "--data-root", str(root), *SELECTION, env_extra=_env(server))
    assert again.returncode == 0 and again.stdout.count("already in") == 2 and len(server.requests) == before


def test_a_corrupt_mirror_file_is_named_in_one_line_and_nothing_is_kept(mirror, tmp_path):
    server, folder = mirror
    bad = folder / "bad"
    bad.mkdir(exist_ok=True)
    for idx in sorted((SHARED / "MNIST" / "raw").iterdir()):
        content = bytearray(idx.read_bytes())
        if idx.name == "t10k-labels-idx1-ubyte":
            content[100] ^= 1  # one label changed: a valid gzip, a valid idx header, the wrong data
        (bad / f"{idx.name}.gz").write_bytes(gzip.compress(bytes(content), compresslevel=1))
    root = tmp_path / "data"
    root.mkdir()
    out = cli("--download", "--data-root", str(root), *SELECTION[:4],
              env_extra={"FGBENCH_MNIST_MIRROR": f"{server.url}/bad/"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "t10k-labels-idx1-ubyte" in lines[0] and "md5" in lines[0] and "FGBENCH_MNIST_MIRROR" in lines[0]
    assert list(root.iterdir()) == []  # neither the bad file nor its good siblings, nor a staging folder


def test_an_unreachable_mirror_is_one_line_and_leaves_no_folder(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "new"
    out = cli("--download", "--data-root", str(root), *SELECTION[:4],
              env_extra={"FGBENCH_MNIST_MIRROR": f"http://127.0.0.1:{port}/"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "downloading mnist from" in lines[0] and "Traceback" not in out.stderr
    assert not root.exists()
    # The selection: a table's datasets at --scale when given (Fournier's Table 5 at small scale swaps
    # in MNIST for CIFAR-10), at every scale otherwise. MNIST comes first and fails here, before any network.
    dead = {"FGBENCH_MNIST_MIRROR": f"http://127.0.0.1:{port}/"}
    small = cli("--download", "--data-root", str(root), "--tables", "fournier2023/table5", "--scale", "small",
                env_extra=dead)
    assert small.returncode == 2 and "datasets of the selection: mnist;" in small.stdout
    every = cli("--download", "--data-root", str(root), "--tables", "fournier2023/table5", env_extra=dead)
    assert every.returncode == 2 and "datasets of the selection: mnist, cifar10;" in every.stdout
    assert not root.exists()


def test_a_dataset_already_there_is_checked_not_overwritten(tmp_path):
    import benchmarks.data as data
    from benchmarks.suite.errors import DataError

    (tmp_path / "MNIST" / "raw").mkdir(parents=True)  # e.g. left by an earlier failed attempt
    with pytest.raises(DataError, match=f"missing .*train-images-idx3-ubyte.*delete {tmp_path / 'MNIST'} and rerun"):
        data.download(["mnist"], str(tmp_path), log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]
    if (SHARED / "MNIST" / "raw").is_dir():  # real files whose content md5 differs: named
        raw = tmp_path / "MNIST" / "raw"
        for idx in (SHARED / "MNIST" / "raw").iterdir():
            (raw / idx.name).write_bytes(idx.read_bytes())
        label = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
        label[-1] = (label[-1] + 1) % 10
        (raw / "train-labels-idx1-ubyte").write_bytes(bytes(label))
        with pytest.raises(DataError, match="train-labels-idx1-ubyte has md5 .* delete .* and rerun --download"):
            data.download(["mnist"], str(tmp_path), log=lambda line: None)


def test_manual_datasets_get_exact_instructions(tmp_path):
    root = tmp_path / "data"
    out = cli("--download", "--data-root", str(root), "--tables", "bacho2024/table3", "ren2023/table4",
              "fournier2023/table2", "--cols", "Tiny ImageNet", "ImageNet L/32/64", "ImageNet32 Activity",
              "--scale", "full")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"unzip -q tiny-imagenet-200.zip -d {root}" in text
    assert "ILSVRC2012_img_train.tar" in text and f"ImageNet({str(root / 'imagenet')!r}, split=s)" in text
    assert f"unzip -j Imagenet32_train_npz.zip -d {root / 'imagenet32'}" in text
    assert "3 need the manual step" in text
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("args,needle", [
    (("--download",), "--download needs --data-root"),
    (("--download", "--data-root", "FILE"), "is a file, not a folder"),
    (("--download", "--data-root", "NEW", "--dry-run"), "drop --dry-run"),
    (("--download", "--data-root", "NEW", "--list"), "drop --list"),
    (("--download", "--data-root", "NEW", "--tables", "bacho2024/table1", "--cols", "SVHN"), "unknown col(s) 'SVHN'"),
    (("--download", "--data-root", ""), "--data-root got an empty value"),
])
def test_bad_download_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    (tmp_path / "file").write_text("x")
    swap = {"FILE": str(tmp_path / "file"), "NEW": str(tmp_path / "new")}
    out = cli(*(swap.get(a, a) for a in args))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---- other torchvision classes, in-process, against tiny archives served on 127.0.0.1 -------------

def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def served(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    server = _Server(folder)
    yield server, folder
    server.close()


IMAGENETTE_WNIDS = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916", "n03417042",
                    "n03425413", "n03445777", "n03888257")


def test_imagenette_download_checks_the_archive_and_keeps_the_planned_release(served, tmp_path, monkeypatch):
    """torchvision's Imagenette, its archive md5 kept (no checksums exist for the images): a good
    archive lands in imagenette2/, the source a plan without it assumed; a bad one is refused."""
    import torchvision.datasets as tvd

    import benchmarks.data as data
    from benchmarks.suite.errors import DataError

    server, folder = served
    archive = _tgz({f"imagenette2/{split}/{w}/{split}_{w}.JPEG": b"jpeg bytes" for split in ("train", "val")
                    for w in IMAGENETTE_WNIDS})
    (folder / "imagenette2.tgz").write_bytes(archive)
    md5 = hashlib.md5(archive).hexdigest()
    monkeypatch.setattr(tvd.Imagenette, "_ARCHIVES", {**tvd.Imagenette._ARCHIVES,
                                                      "full": ("https://example.invalid/imagenette2.tgz", md5)})
    monkeypatch.setenv("FGBENCH_IMAGENETTE_MIRROR", server.url)
    root = tmp_path / "data"
    root.mkdir()
    assert data.download(["imagenette"], str(root), log=lambda line: None) == []
    assert sorted(p.name for p in root.iterdir()) == ["imagenette2"]
    assert data.resolve("imagenette", "full", str(root)) == {"data_source": data.pending_source("imagenette")}

    other = tmp_path / "other"
    other.mkdir()
    (folder / "imagenette2.tgz").write_bytes(archive[:-10] + b"0123456789")  # not the archive checked
    with pytest.raises(DataError, match=f"downloading imagenette from .* failed: the archive's md5 is not {md5}") as e:
        data.download(["imagenette"], str(other), log=lambda line: None)
    assert "\n" not in str(e.value) and list(other.iterdir()) == []


def test_cifar_download_from_a_mirror_checks_every_batch_file(served, tmp_path, monkeypatch):
    """torchvision's CIFAR10 with a mirror: no archive md5 (a copy may be re-compressed), every batch
    file's md5 checked instead; one altered batch is named and nothing is kept."""
    import torchvision.datasets as tvd

    import benchmarks.data as data
    from benchmarks.data import _files
    from benchmarks.suite.errors import DataError

    server, folder = served
    rng = np.random.default_rng(0)
    files = {name: pickle.dumps({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]})
             for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")}
    files["batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    sums = {name: hashlib.md5(b).hexdigest() for name, b in files.items()}
    monkeypatch.setitem(_files._CIFAR_MD5, "cifar-10-batches-py", sums)
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(tvd.CIFAR10, attr, [[n, sums[n]] for n, _ in getattr(tvd.CIFAR10, attr)])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": sums["batches.meta"]})
    (folder / "cifar-10-python.tar.gz").write_bytes(_tgz({f"cifar-10-batches-py/{n}": b for n, b in files.items()}))
    monkeypatch.setenv("FGBENCH_CIFAR10_MIRROR", server.url + "/")
    root = tmp_path / "data"
    root.mkdir()
    assert data.download(["cifar10"], str(root), log=lambda line: None) == []
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # the archive is not kept
    assert data.resolve("cifar10", "full", str(root)) == {"data_source": "torchvision"}

    batch = pickle.loads(files["data_batch_3"])
    batch["data"][0, 0] ^= 1  # one pixel off
    altered = {**files, "data_batch_3": pickle.dumps(batch)}
    (folder / "cifar-10-python.tar.gz").write_bytes(_tgz({f"cifar-10-batches-py/{n}": b for n, b in altered.items()}))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DataError, match="data_batch_3") as e:
        data.download(["cifar10"], str(other), log=lambda line: None)
    assert "\n" not in str(e.value) and list(other.iterdir()) == []


def test_help_documents_download_and_mirrors():
    out = cli("--help")
    assert out.returncode == 0
    for text in ("--download", "FGBENCH_MNIST_MIRROR", "FGBENCH_FASHION_MNIST_MIRROR", "FGBENCH_IMAGENETTE_MIRROR",
                 "ImageNet32"):
        assert text in out.stdout, text
