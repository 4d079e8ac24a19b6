"""Building the C++ kernels: the instruction set to build for, a PyTorch extension on first use (cached by torch,
per user and torch version), each ONNX runtime's custom-operation library (cached under ~/.cache/tissuebench).

Without a compiler, without AVX-512 or AVX2 + FMA, or with ``TISSUEBENCH_KERNELS=grouped``, a build returns None
and the caller keeps PyTorch's own path (with one line of notice).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

FLAGS = {  # -mfma for AVX-512 too: without it GCC contracts no 256-bit multiply-add (the training kernel's)
    "avx512": ["-mavx512f", "-mavx512dq", "-mfma", "-DTB_AVX512"],
    "avx2": ["-mavx2", "-mfma"],
}
CORE = Path(__file__).with_name("stacked_core.h")  # the fused kernel, bound by stacked_cpu.cpp and each runtime's op


FUSED = "the fused CPU kernel for stacked layers"


def cpu_isa() -> str | None:
    """avx512, avx2, or None: what this CPU can run (from the kernel's flags in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    if {"avx512f", "avx512dq"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return None


def _wanted_isa(isa: str | None, what: str) -> str | None:
    """The instruction set to build for, or None: kernels switched off, or a CPU with neither (said once)."""
    if os.environ.get("TISSUEBENCH_KERNELS", "auto") == "grouped":
        return None
    isa = isa or cpu_isa()
    if isa not in FLAGS:
        _notice(what, "this CPU has neither AVX-512 nor AVX2+FMA")
        return None
    return isa


def torch_extension(stem: str, source: Path, header: Path | None, isa: str | None, what: str):
    """``source`` (with ``header``) compiled as a PyTorch extension for ``isa`` (default: the best this CPU has),
    or None when unavailable; ``what`` names it in the notices."""
    isa = _wanted_isa(isa, what)
    if isa is None:
        return None
    try:
        from torch.utils.cpp_extension import load

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        digest = source_digest(source, *([header] if header else []))  # a changed header is a new build
        name = f"tissuebench_{stem}_{isa}_{digest}"
        first = not _built(name)
        if first:  # a minute or more on a busy machine, once per machine and torch version: say so before it
            _say(f"tissuenet: building {what} ({isa}; first use on this machine) ...")
        t0 = time.perf_counter()
        module = load(
            name=name,
            sources=[str(source)],
            verbose=False,
            extra_cflags=["-O3", "-fopenmp", *FLAGS[isa]],
            extra_ldflags=["-fopenmp"],
        )
        if first:
            _say(f"tissuenet: {what} is built ({time.perf_counter() - t0:.0f} s)")
        return module
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: PyTorch's path remains
        _notice(what, f"could not build it ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]})")
        return None


RUNTIME_SOURCES = {  # the fused kernel as each ONNX runtime's custom operation (tissuenet/kernels/onnx.py)
    "onnxruntime": Path(__file__).with_name("stacked_ort.cpp"),  # a custom-op library
    "openvino": Path(__file__).with_name("stacked_openvino.cpp"),  # an extension (its wheel ships the headers)
}


@functools.cache
def runtime_library(runtime: str, isa: str | None = None) -> Path | None:
    """The fused kernel built as ``runtime``'s custom operation (``RUNTIME_SOURCES``), on first use, with the
    system's C++ compiler and no PyTorch inside (a deployment loads it into any process of that runtime);
    None, with one line of notice, where it cannot be built."""
    import subprocess

    isa = _wanted_isa(isa, FUSED)
    if isa is None:
        return None
    source = RUNTIME_SOURCES[runtime]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tissuebench"
    path = cache / f"libtissuenet_{runtime}_{isa}_{source_digest(source, CORE)}.so"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    command = [os.environ.get("CXX", "g++"), "-O3", "-std=c++17", "-fopenmp", "-shared", "-fPIC"]
    command += ["-fvisibility=hidden", *FLAGS[isa], str(source), "-o", str(partial)]
    _say(f"tissuenet: building the fused kernel as a {runtime} operation ({isa}; first use on this machine) ...")
    try:
        subprocess.run(command + _links(runtime), check=True, capture_output=True, text=True)
    except (OSError, ImportError, StopIteration, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        _notice(FUSED, f"could not build its {runtime} operation ({detail.strip().splitlines()[-1][:200]})")
        return None
    partial.replace(path)  # atomic: a concurrent build of the same source writes the same bytes
    return path


def _links(runtime: str) -> list[str]:
    """Compiler arguments for the runtime's headers and libraries (OpenVINO's come with its Python wheel)."""
    if runtime != "openvino":
        return []
    import importlib.util

    spec = importlib.util.find_spec("openvino")  # located, not imported: the method package imports only torch
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("openvino is not installed")
    root = Path(spec.submodule_search_locations[0])
    names = ("openvino", "openvino_onnx_frontend", "tbb")  # TBB: the kernel runs on OpenVINO's threads
    libs = [str(next((root / "libs").glob(f"lib{name}.so*"))) for name in names]
    return [f"-I{root / 'include'}", *libs, f"-Wl,-rpath,{root / 'libs'}"]


def source_digest(*paths: Path) -> str:
    """Eight hex digits of the sources' contents (torch's build cache keys on the .cpp alone, not its header)."""
    import hashlib

    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:8]


def _built(name: str) -> bool:
    """Whether torch's extension cache already holds the compiled kernel (then loading it takes a moment)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return (Path(_get_build_directory(name, verbose=False)) / f"{name}.so").is_file()
    except Exception:  # noqa: BLE001 - a private helper: when it moves, the notice is all that is lost
        return True


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


@functools.cache
def _notice(what: str, why: str) -> None:
    import sys

    print(f"tissuenet: {what} is unavailable ({why}); using PyTorch's grouped convolutions", file=sys.stderr)
