"""The fused CPU kernel of a stacked layer (``stacked_cpu.cpp``): build, weight packing, call.

The C++ source is compiled on first use with ``torch.utils.cpp_extension`` for the best
instruction set this CPU has (AVX-512, else AVX2 + FMA) and cached by torch (per user, per
torch version). Without a compiler, without either instruction set, or with
``TISSUEBENCH_KERNELS=grouped``, :func:`extension` returns None and the caller keeps the grouped
path (with one line of notice).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("stacked_cpu.cpp")
CORE = Path(__file__).with_name("stacked_core.h")  # the kernel; SOURCE binds it to PyTorch
FLAGS = {"avx512": ["-mavx512f", "-mavx512dq", "-DTB_AVX512"], "avx2": ["-mavx2", "-mfma"]}
LANES = {"avx512": 16, "avx2": 8}
log = logging.getLogger("tissuenet.kernels")


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


def _wanted_isa(isa: str | None) -> str | None:
    """The instruction set to build for, or None: kernels switched off, or a CPU with neither (said once)."""
    if os.environ.get("TISSUEBENCH_KERNELS", "auto") == "grouped":
        return None
    isa = isa or cpu_isa()
    if isa not in FLAGS:
        _notice("this CPU has neither AVX-512 nor AVX2+FMA")
        return None
    return isa


@functools.cache
def extension(isa: str | None = None):
    """The compiled kernel module for ``isa`` (default: the best this CPU has), or None when unavailable."""
    isa = _wanted_isa(isa)
    if isa is None:
        return None
    try:
        from torch.utils.cpp_extension import load

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        name = f"tissuebench_stacked_{isa}_{source_digest(SOURCE, CORE)}"  # a changed header is a new build
        first = not _built(name)
        if first:  # a minute or more on a busy machine, once per machine and torch version: say so before it
            _say(f"tissuenet: building the fused CPU kernel for stacked layers ({isa}; first use on this machine) ...")
        t0 = time.perf_counter()
        module = load(
            name=name,
            sources=[str(SOURCE)],
            verbose=False,
            extra_cflags=["-O3", "-fopenmp", *FLAGS[isa]],
            extra_ldflags=["-fopenmp"],
        )
        if first:
            _say(f"tissuenet: the fused CPU kernel is built ({time.perf_counter() - t0:.0f} s)")
        return module
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: the grouped path remains
        _notice(f"could not build it ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]})")
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

    isa = _wanted_isa(isa)
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
        _notice(f"could not build its {runtime} operation ({detail.strip().splitlines()[-1][:200]})")
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
def _notice(why: str) -> None:
    import sys

    print(
        f"tissuenet: the fused CPU kernel for stacked layers is unavailable ({why}); using grouped convolutions",
        file=sys.stderr,
    )


def supported(layer) -> bool:
    """Does the fused kernel compute this (BN-folded, eval) stacked layer?"""
    from tissuenet.stacked import StackedLayer

    if not isinstance(layer, StackedLayer) or layer.kind != "conv" or layer.hybrid or layer.kernel_size != 3:
        return False
    spec = layer.group_specs[0]
    grp = layer.groups[0]
    folded = isinstance(grp.bn1, torch.nn.Identity) and isinstance(grp.bn2, torch.nn.Identity)
    return (
        folded
        and spec.c_in == 2
        and spec.c_h % 2 == 0
        and spec.c_h // 2 in (1, 2, 3, 4, 6, 8)
        and spec.c_out in (2, 4)
        and layer.stride in (1, 2)
        and layer.padding == 1
    )


def pack(layer, lanes: int, width: int, added_bias: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Per-lane weights of a folded stacked layer (the layout ``stacked_cpu.cpp`` documents); ``added_bias``: a
    bias added to its output (a projection shortcut's, computed in the kernel)."""
    spec, grp = layer.group_specs[0], layer.groups[0]
    m, k, r = len(layer.units), spec.c_h // 2, spec.c_out // 2
    with torch.no_grad():
        w1 = grp.op1.weight.detach().float().reshape(m, k, 2, 2, 9)  # [unit][part][i][input i'][tap]
        b1 = grp.op1.bias.detach().float().reshape(m, k, 2)
        w2 = grp.op2.weight.detach().float().reshape(m, r, 2, k, 2, 9)  # [unit][out part][o][part][j][tap]
        b2 = grp.op2.bias.detach().float() + (0 if added_bias is None else added_bias.detach().float())
        b2 = b2.reshape(m, r, 2)
        idx = torch.arange(2)
        a1, s1 = w1[:, :, idx, idx], w1[:, :, idx, 1 - idx]  # (m, k, 2, 9): own-lane and swapped-lane weights
        a2, s2 = w2[:, :, idx, :, idx], w2[:, :, idx, :, 1 - idx]  # (2, m, r, k, 9): o first after advanced indexing
        packed1 = torch.stack([a1, s1], dim=3).permute(1, 4, 3, 0, 2).reshape(k, 9, 2, 2 * m)
        packed2 = torch.stack([a2, s2], dim=0).permute(3, 4, 5, 0, 2, 1).reshape(r, k, 9, 2, 2 * m)
        bias1 = b1.permute(1, 0, 2).reshape(k, 2 * m)
        bias2 = b2.permute(1, 0, 2).reshape(r, 2 * m)
    return tuple(_blocked(t, lanes, width) for t in (packed1, bias1, packed2, bias2))


def _blocked(t: torch.Tensor, lanes: int, width: int) -> torch.Tensor:
    """[..., lanes] -> [lane block][...][width]: each vector block's weights contiguous (the kernel's layout)."""
    t = torch.nn.functional.pad(t, (0, lanes - t.shape[-1]))
    blocks = lanes // width
    t = t.reshape(*t.shape[:-1], blocks, width)
    return t.movedim(-2, 0).contiguous()


class FusedStacked:
    """Callable: ``(x, residual=None) -> y``, the layer's output (plus the residual, then ReLU, if given).

    ``shortcut``: a block's shortcut; where it is one 1x1 convolution at the layer's stride (:func:`pointwise_conv`)
    the kernel computes it (``projects``: call with x alone), no convolution of PyTorch's own between kernels."""

    def __init__(self, layer, isa: str | None = None, shortcut: torch.nn.Module | None = None) -> None:
        self.ext = extension(isa)
        if self.ext is None or not supported(layer):
            raise ValueError("no fused CPU kernel for this layer")
        spec = layer.group_specs[0]
        self.c_h, self.c_out, self.stride, self.final_relu = spec.c_h, spec.c_out, layer.stride, layer.final_relu
        width = LANES[self.ext.isa()]
        conv = pointwise_conv(shortcut, layer.stride)
        self.projection = None if conv is None else conv.weight.detach().float().flatten(1).t().contiguous()
        self.projects = conv is not None
        added = None if conv is None else conv.bias
        self.weights = pack(layer, math.ceil(layer.in_channels / width) * width, width, added)

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if residual is not None:
            residual = residual.contiguous(memory_format=torch.channels_last)
        relu = self.final_relu or residual is not None
        return self.ext.forward(x, *self.weights, self.c_h, self.c_out, self.stride, residual, relu, self.projection)


def pointwise_conv(module: torch.nn.Module | None, stride: int) -> torch.nn.Conv2d | None:
    """The module's only computation if it is one 1x1 convolution at ``stride``, without padding or groups (a
    folded projection shortcut), else None."""
    from torch import nn

    if module is None:
        return None
    layers = [m for m in (module if isinstance(module, nn.Sequential) else [module]) if not isinstance(m, nn.Identity)]
    conv = layers[0] if len(layers) == 1 else None
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return None
    return conv if conv.stride == (stride, stride) and conv.dilation == (1, 1) else None


class FusedChain(torch.nn.Module):
    """A run of identity-shortcut residual blocks on the fused kernel, one extension call for all of them."""

    def __init__(self, layers: list) -> None:
        super().__init__()
        first = FusedStacked(layers[0])
        self.ext, self.c_h = first.ext, first.c_h
        self.weights = [w for layer in layers for w in FusedStacked(layer).weights]
        self.blocks = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ext.chain(x.contiguous(memory_format=torch.channels_last), self.weights, self.c_h)

    def extra_repr(self) -> str:
        return f"blocks={self.blocks}, c_h={self.c_h}"
