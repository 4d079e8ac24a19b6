"""Every file the project writes or reads back: atomic writes, safe loads, model files, quarantine.

* Writes go to a temporary name in the same folder and are renamed into place, so a kill never
  leaves half a file; a full or read-only disk gives one :class:`StorageError` line and no
  temporary file left behind.
* Loads never unpickle code: torch files load with ``weights_only=True``; JSON is JSON. A file
  that cannot be read (truncated, wrong bytes, wrong shape, a planted pickle) raises
  :class:`DamagedFileError` naming it; callers move it to ``<results>/quarantine/`` and redo the
  work it held.
* Model files hold registry name + options + state dict (never a pickled module); loading builds
  the architecture, resizes pruned layers to the stored shapes and loads the weights strictly.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from tissuenet.registry import create_model_for_input

MODEL_FORMAT = "tissuebench.model/1"
QUARANTINE = "quarantine"


class StorageError(OSError):
    """The disk is full, read-only or otherwise refuses a write (one line, nothing damaged)."""


class DamagedFileError(ValueError):
    """A stored file cannot be used: it is named, and the caller sets it aside."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


class PathError(ValueError):
    """A path derived from input would leave the folder it belongs to."""


def inside(root: Path, *parts: str) -> Path:
    """``root / parts`` after checking that it stays inside ``root`` (no ``..``, no absolute parts)."""
    root = Path(root)
    path = root.joinpath(*parts)
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise PathError(f"{'/'.join(parts)!r} would leave {root}")
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise StorageError(exc.errno, f"cannot write {path}: {_why(exc)}") from exc
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def save_torch_atomic(obj, path: Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_torch(path: Path, map_location="cpu") -> dict:
    """A torch file of tensors and plain data (``weights_only=True``: no code can run)."""
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read means the file is unusable
        raise DamagedFileError(path, f"not a readable torch file ({type(exc).__name__}: {_first_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"holds a {type(obj).__name__}, not a dict")
    return obj


def read_json(path: Path) -> dict:
    """A JSON object from a file (anything else is a :class:`DamagedFileError`)."""
    try:
        obj = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise DamagedFileError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DamagedFileError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise DamagedFileError(path, f"cannot be read ({_why(exc)})") from None
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"holds JSON {type(obj).__name__}, not an object")
    return obj


def quarantine(root: Path, path: Path, reason: str) -> Path | None:
    """Move a damaged file to ``<root>/quarantine/`` (nothing is deleted); None if it cannot move."""
    root, path = Path(root), Path(path)
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    target = root / QUARANTINE / relative
    n = 1
    while target.exists():  # never overwrite an earlier quarantined copy
        target = target.with_name(f"{relative.name}.{n}")
        n += 1
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        (target.parent / f"{target.name}.why.txt").write_text(reason + "\n")
    except OSError:
        return None
    return target


# -- model files -----------------------------------------------------------------------------
def save_model(model: nn.Module, path: Path, arch: dict) -> Path:
    """``arch``: model (registry name), num_classes, in_channels, input_size, options."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_torch_atomic({"format": MODEL_FORMAT, "arch": arch, "state_dict": state}, Path(path))


def model_bytes(model: nn.Module, arch: dict) -> bytes:
    """The bytes of a model file (workers send these to the driver, which writes them)."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": MODEL_FORMAT, "arch": arch, "state_dict": state}, buffer)
    return buffer.getvalue()


def load_model(path: Path, device="cpu") -> tuple[nn.Module, dict]:
    saved = load_torch(path)
    if saved.get("format") != MODEL_FORMAT:
        raise DamagedFileError(path, f"not a tissuebench model file (format {saved.get('format')!r})")
    arch = saved["arch"]
    try:
        model = create_model_for_input(
            arch["model"], arch["num_classes"], arch["in_channels"], arch["input_size"], **arch.get("options", {})
        )
        resize_to(model, saved["state_dict"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise DamagedFileError(path, f"does not match its architecture ({_first_line(exc)})") from exc
    return model.to(device).eval(), arch


def resize_to(model: nn.Module, state: dict) -> None:
    """Give every layer the channel counts its stored weights have (undoing nothing else)."""
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if key not in state:
            continue
        shape = state[key].shape
        if isinstance(module, nn.modules.conv._ConvNd):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            module.out_channels = shape[0]
            module.groups = shape[0] if depthwise else module.groups
            module.in_channels = shape[1] * module.groups
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = shape
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.num_features = shape[0]
        elif isinstance(module, nn.LayerNorm):
            module.normalized_shape = tuple(shape)
        else:
            continue
        for pname, tensor in list(module.named_parameters(recurse=False)):
            stored = state[f"{name}.{pname}" if name else pname]
            setattr(module, pname, nn.Parameter(torch.empty_like(stored), requires_grad=tensor.requires_grad))
        for bname, _ in list(module.named_buffers(recurse=False)):
            stored = state.get(f"{name}.{bname}" if name else bname)
            if stored is not None:
                module.register_buffer(bname, torch.empty_like(stored))


def _why(exc: OSError) -> str:
    return {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EDQUOT: "disk quota exceeded",
    }.get(exc.errno, exc.strerror or str(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
