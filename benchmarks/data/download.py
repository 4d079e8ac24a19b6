"""``--download``: fetch a dataset torchvision knows how to fetch into ``--data-root``, in the layout
the loaders read, with its checksums verified and a progress bar.

The addresses and MD5 sums are torchvision's own (``CIFAR10.url`` / ``tgz_md5``,
``MNIST.mirrors`` / ``resources``): one place for each fact. A failed or mismatching download
leaves no file behind and says what to do instead. Tiny-ImageNet and ImageNet are not
downloadable this way; their "missing" messages give the commands (``registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10", "cifar100")


class DownloadError(RuntimeError):
    """The download failed or its checksum did not match (nothing half-written is kept)."""


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    return {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[
        name
    ]


def _fetch(url: str, folder: Path, filename: str, md5: str, log: Callable[[str], None]) -> Path:
    """One file, verified; a bad or partial file is removed."""
    from torchvision.datasets.utils import check_integrity, download_url

    path = folder / filename
    if check_integrity(str(path), md5):
        return path
    log(f"[data] downloading {url} -> {path}")
    try:
        download_url(url, str(folder), filename, md5)
    except RuntimeError as exc:  # torchvision: "File not found or corrupted." after a checksum mismatch
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch (expected MD5 {md5}); the file was removed") from exc
    except OSError as exc:  # no network, refused, 404 (urllib's errors are OSErrors)
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {exc}") from exc
    return path


def download(name: str, root: Path, log: Callable[[str], None] = print) -> Path:
    """Download ``name`` under ``root``; returns the folder the loader reads. Raises DownloadError."""
    if name not in DOWNLOADABLE:
        raise DownloadError(f"dataset {name!r} cannot be downloaded automatically")
    cls = _torchvision_class(name)
    root = Path(root)
    if name in ("cifar10", "cifar100"):
        archive = _fetch(cls.url, root, cls.filename, cls.tgz_md5, log)
        from torchvision.datasets.utils import extract_archive

        log(f"[data] extracting {archive.name}")
        extract_archive(str(archive), str(root))
        return root / cls.base_folder
    folder = root / ("FashionMNIST" if name == "fashion-mnist" else "MNIST") / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, md5 in cls.resources:
        errors = []
        for mirror in cls.mirrors:
            try:
                _fetch(f"{mirror}{filename}", folder, filename, md5, log)
                break
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            raise DownloadError("; ".join(errors))
    return folder
