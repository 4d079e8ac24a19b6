"""Fast inference kernels for stacked layers, chosen per layer shape by measurement (like ``cudnn.benchmark``).

Candidates for a site (a ResNet block whose body is a stacked layer, or a bare stacked layer), on a
deployed (BN-folded, eval) model:

* ``grouped``: PyTorch's grouped convolutions (always available; the reference);
* ``cpu_fused``: the fused AVX-512 / AVX2 C++ kernel (``cpu.py``), with the block's residual add
  and ReLU fused into its store;
* ``triton``: the fused Triton kernel on CUDA (``triton_unit.py``);
* ``fc_einsum``: fully connected units as one batched contraction (CPU and CUDA).

:func:`accelerate` times every available candidate on the input the site actually sees, installs the
fastest, and caches the choice per shape for the process. A candidate that cannot run a shape
(hybrid units, an unsupported unit, no compiler, no GPU) is simply not offered; the grouped path
remains. The ONNX runtimes choose between a layer's ONNX forms the same way (``onnx.py``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from tissuenet.stacked import StackedLayer

_CHOICES: dict[tuple, tuple[str, dict[str, float]]] = {}
TIMED_CALLS = 7  # per candidate, after two warm-up calls: enough to rank kernels that differ by >10 %


def _block_of(model: nn.Module) -> dict[int, nn.Module]:
    """{id(stacked layer): the residual block whose body it is} (the sites that can fuse the residual)."""
    from tissuenet.models.resnet_blocks import BasicBlock

    return {id(m.body): m for m in model.modules() if isinstance(m, BasicBlock) and isinstance(m.body, StackedLayer)}


def _candidates(layer: StackedLayer, device: torch.device, shortcut: nn.Module | None = None) -> dict[str, Callable]:
    """name -> factory() -> callable(x, residual) for every kernel that can run this layer here (one whose
    ``projects`` is true computes the block's ``shortcut`` itself: callable(x))."""
    out: dict[str, Callable] = {"grouped": lambda: None}
    if layer.kind == "fc":
        from tissuenet.kernels.fc import EinsumUnits

        if EinsumUnits.supports(layer):
            out["fc_einsum"] = lambda: EinsumUnits(layer)
        return out
    if device.type == "cpu":
        from tissuenet.kernels import cpu

        if cpu.supported(layer) and cpu.extension() is not None:
            out["cpu_fused"] = lambda: cpu.FusedStacked(layer, shortcut=shortcut)
    elif device.type == "cuda":
        from tissuenet.kernels import triton_unit

        if triton_unit.supported(layer) and triton_unit.available():
            out["triton"] = lambda: triton_unit.TritonStacked(layer)
    return out


class _Residual:
    """A block's deployed forward: its kernel with the shortcut's output as the residual (plus ReLU)."""

    def __init__(self, kernel, shortcut: nn.Module, name: str) -> None:
        self.call, self.shortcut, self.kernel = kernel, shortcut, name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _with_shortcut(self.call, self.shortcut, x)


def _with_shortcut(kernel, shortcut: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A block's kernel on x: the shortcut computed inside where the kernel projects, else passed as residual."""
    return kernel(x) if getattr(kernel, "projects", False) else kernel(x, shortcut(x))


def median_call_ms(fn, x) -> float:
    """Median milliseconds of ``fn(x)`` over :data:`TIMED_CALLS` calls after two warm-up calls."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(2):
        fn(x)
    sync()
    times = []
    for _ in range(TIMED_CALLS):
        t0 = time.perf_counter()
        fn(x)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _site_forward(site: nn.Module, layer: StackedLayer, fast, block: bool):
    """The site's forward with ``fast`` installed (None: the grouped path)."""

    def forward(x):
        if block:
            site.fast = None if fast is None else (lambda t, f=fast: _with_shortcut(f, site.shortcut, t))
        else:
            layer.fast = fast
        return site(x)

    return forward


@torch.inference_mode()
def accelerate(model: nn.Module, example: torch.Tensor, choice: str = "auto") -> dict[str, dict]:
    """Install the fastest kernel on every stacked layer of a deployed model; returns the choices made.

    ``choice``: ``"auto"`` (time the candidates, cache per shape), or a candidate name to force
    where it can run. Returns {layer shape: {"chosen": name, "candidates": {name: ms}}}.
    """
    blocks = _block_of(model)
    inputs: dict[int, torch.Tensor] = {}
    hooks = []
    for m in model.modules():
        if isinstance(m, StackedLayer):
            site = blocks.get(id(m), m)
            hooks.append(site.register_forward_pre_hook(lambda mod, args, key=id(m): inputs.setdefault(key, args[0])))
    model(example)
    for h in hooks:
        h.remove()
    report = {}
    for m in model.modules():
        if not isinstance(m, StackedLayer) or id(m) not in inputs:
            continue
        x = inputs[id(m)]
        block = id(m) in blocks
        site = blocks.get(id(m), m)
        spec = ",".join(sorted({str(u) for u in m.units}))
        key = (x.device.type, tuple(x.shape), spec, m.stride, block, m.kind)
        shape = f"{'block ' if block else ''}{m.kind} {spec} x{len(m.units)}, stride {m.stride}, input {tuple(x.shape)}"
        candidates = _candidates(m, x.device, site.shortcut if block else None)
        if choice != "auto":
            chosen = choice if choice in candidates else "grouped"
            times = _CHOICES.get(key, (chosen, {}))[1]
        elif key in _CHOICES:
            chosen, times = _CHOICES[key]
        else:
            times = {}
            for name, make in candidates.items():
                try:
                    times[name] = median_call_ms(_site_forward(site, m, make(), block), x)
                except Exception:  # noqa: BLE001 - a candidate that fails here is not offered
                    continue
            chosen = min(times, key=times.get)
            _CHOICES[key] = (chosen, times)
        fast = candidates[chosen]()
        if block:
            site.fast = None if fast is None else _Residual(fast, site.shortcut, chosen)
            m.fast = None
        else:
            m.fast = fast
        report[shape] = {"chosen": chosen, "candidates": {k: round(v, 4) for k, v in times.items()}}
    _chain_runs(model)
    return report


def _chain_runs(model: nn.Module) -> None:
    """Replace runs of identity residual blocks that all chose ``cpu_fused`` by one :class:`FusedChain` each."""
    from tissuenet.kernels.cpu import FusedChain
    from tissuenet.models.resnet_blocks import BasicBlock

    def chainable(m) -> bool:
        return (
            isinstance(m, BasicBlock)
            and m.fast is not None
            and isinstance(m.shortcut, nn.Identity)
            and getattr(m.fast, "kernel", None) == "cpu_fused"
            and m.body.stride == 1
            and m.body.group_specs[0].c_out == 2
        )

    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names, run, kept = list(seq._modules), [], {}
        for name in names + [None]:
            child = seq._modules.get(name) if name is not None else None
            if child is not None and chainable(child) and (not run or _same_unit(seq._modules[run[0]], child)):
                run.append(name)
                continue
            if len(run) > 1:
                kept[run[0]] = FusedChain([seq._modules[n].body for n in run])
                kept.update({n: nn.Identity() for n in run[1:]})
            run = [name] if child is not None and chainable(child) else []
        for name, module in kept.items():
            seq._modules[name] = module


def _same_unit(a, b) -> bool:
    return a.body.group_specs[0].c_h == b.body.group_specs[0].c_h
