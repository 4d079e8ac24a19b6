"""``--download``: torchvision's addresses pointed at a loopback HTTP server that serves generated
archives in the real formats (no test touches the network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import tarfile
import threading
from pathlib import Path

import pytest
import torchvision.datasets as tvd

from benchmarks.data.datasets import DataError, load_splits, locate
from tests.layouts import write_cifar, write_idx_set


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves) on 127.0.0.1; requests are logged to a list."""
    folder = tmp_path / "www"
    folder.mkdir()
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            seen.append(self.path)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # torchvision's redirect probe hangs up early
            pass

    httpd = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, seen
    httpd.shutdown()


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    from benchmarks.data import datasets as registry

    monkeypatch.setattr(registry, "_RESIDENT", {})
    monkeypatch.delenv("TISSUEBENCH_DATA", raising=False)


def _cifar_archive(www: Path, tmp: Path) -> Path:
    folder = write_cifar(tmp / "build", 10, n_train=50, n_test=10)
    archive = www / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def test_cifar10_download_extracts_torchvision_layout(server, tmp_path, monkeypatch):
    base, www, seen = server
    archive = _cifar_archive(www, tmp_path)
    monkeypatch.setattr(tvd.CIFAR10, "url", f"{base}/cifar-10-python.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(archive))
    data = tmp_path / "data"
    tx, ty, vx, vy = load_splits("cifar10", data_root=data, download=True)
    assert tx.shape == (50, 3, 32, 32) and vx.shape == (10, 3, 32, 32)
    assert locate("cifar10", data)[0] == data / "cifar-10-batches-py"
    assert set(seen) == {"/cifar-10-python.tar.gz"}
    from benchmarks.data import datasets as registry

    registry._RESIDENT.clear()
    requests = len(seen)
    load_splits("cifar10", data_root=data, download=True)  # present now: nothing is fetched again
    assert len(seen) == requests


def test_checksum_mismatch_keeps_nothing(server, tmp_path, monkeypatch):
    base, www, _ = server
    _cifar_archive(www, tmp_path)
    monkeypatch.setattr(tvd.CIFAR10, "url", f"{base}/cifar-10-python.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)
    data = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch.*removed"):
        load_splits("cifar10", data_root=data, download=True)
    assert list(data.iterdir()) == []


def test_mnist_download_tries_the_next_mirror(server, tmp_path, monkeypatch):
    base, www, seen = server
    files = write_idx_set(www / "good", n_train=30, n_test=10, compress=True)
    resources = [(p.name, md5(p)) for p in sorted(files.glob("*.gz"))]
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{base}/missing/", f"{base}/good/"])
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    data = tmp_path / "data"
    tx, ty, vx, vy = load_splits("mnist", data_root=data, download=True)
    assert tx.shape == (30, 1, 28, 28) and len(vy) == 10
    assert (data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert any(p.startswith("/missing/") for p in seen) and any(p.startswith("/good/") for p in seen)


def test_download_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tvd.CIFAR100, "url", "http://127.0.0.1:9/cifar-100-python.tar.gz")  # port 9: refused
    with pytest.raises(DataError, match=r"cifar100.*download failed: http://127\.0\.0\.1:9/.*Pass --download"):
        load_splits("cifar100", data_root=tmp_path / "data", download=True)


def test_run_download_from_the_command_line(server, tmp_path, monkeypatch, capsys):
    """`tissuebench run SUITE --download --data-root DIR` fetches, then trains on what it fetched."""
    from tests.helpers import write_suite
    from tissuebench.cli import main

    base, www, _ = server
    files = write_idx_set(www, n_train=64, n_test=16, compress=True)
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{base}/"])
    monkeypatch.setattr(tvd.MNIST, "resources", [(p.name, md5(p)) for p in sorted(files.glob("*.gz"))])
    suite = write_suite(tmp_path / "s.toml", dataset="mnist", methods='[[method]]\nname = "dense"\n')
    data = tmp_path / "data"
    args = ["run", str(suite), "--results", str(tmp_path / "r"), "--data-root", str(data), "--device", "cpu"]
    assert main(args + ["--download"]) == 0
    assert (data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_folder_datasets_say_how_to_get_them(tmp_path):
    from benchmarks.data.datasets import find

    with pytest.raises(DataError, match=r"tiny-imagenet-200\.zip.*unzip"):
        find("tiny-imagenet", tmp_path, download=True)
    with pytest.raises(DataError, match=r"image-net\.org.*ILSVRC2012_devkit_t12"):
        find("imagenet", tmp_path, download=True)
