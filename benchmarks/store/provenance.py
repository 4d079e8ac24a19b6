"""Where and how a number was produced: git state, package versions, device, times, command."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
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
    """Where a job ran: device, its name, and (for the regression gate's context) threads and CPU ISA."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return {
            "device": "cuda",
            "device_name": torch.cuda.get_device_name(idx),
            "cuda": torch.version.cuda,
            "driver": _nvidia_driver(),
            "cpu_isa": cpu_isa(),
        }
    return {
        "device": device.type,
        "device_name": _cpu_name(),
        "cuda": None,
        "driver": None,
        "threads": torch.get_num_threads(),
        "cpu_isa": cpu_isa(),
    }


@functools.cache
def cpu_isa() -> str:
    """The widest vector ISA the CPU has ('avx512', 'avx2', ...): float sums, and so results, follow it."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("sse4.2", "sse4_2")):
        if flag in flags:
            return isa
    return platform.machine()


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


# the code that determines what a job computes (dense checkpoints included); asv and docs do not
CODE_PACKAGES = ("tissuenet", "baselines", "benchmarks", "results")
CODE_SUFFIXES = (".py", ".cpp", ".toml", ".csv")


def code_fingerprint(repo: Path = REPO) -> str:
    """SHA-256 of every source file that determines a result, as on disk (uncommitted edits included),
    and of the torch and torchvision versions. Equal fingerprints: the same code computed it."""
    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((repo / package).rglob("*")):
            if path.suffix in CODE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    for pkg in ("torch", "torchvision"):
        try:
            h.update(f"{pkg}={importlib.metadata.version(pkg)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    return h.hexdigest()


def code_state(repo: Path = REPO) -> dict:
    """The commit the code runs at: sha, whether the tree is dirty (and a digest of the diff), the fingerprint."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "HEAD").strip()
    diff = git("diff", "HEAD") + git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": sha or "unknown",
        "dirty": bool(diff.strip()),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff.strip() else None,
        "fingerprint": code_fingerprint(repo),
    }
