"""Where and how a number was produced: git state, package versions, device, times, command."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "torchvision", "torch-pruning", "timm", "numpy", "pandas")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.cache
def static_provenance() -> dict:
    """The per-process part (computed once)."""
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git_sha": _git("rev-parse", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "versions": versions,
        "host": platform.node(),
        "command": " ".join(sys.argv),
    }


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return {
            "device": "cuda",
            "device_name": torch.cuda.get_device_name(idx),
            "cuda": torch.version.cuda,
            "driver": _nvidia_driver(),
        }
    return {
        "device": device.type,
        "device_name": _cpu_name(),
        "cuda": None,
        "driver": None,
        "threads": torch.get_num_threads(),
    }


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


@functools.cache
def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
