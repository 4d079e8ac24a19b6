"""The runtimes a model is timed on, the same for every method (``[measure] runtimes``, ``latency --runtime``).

| runtime | device | what runs |
|---|---|---|
| ``eager`` | CPU, CUDA | PyTorch eval mode as trained: BN unfolded, stacked layers as grouped convs |
| ``deploy`` | CPU, CUDA | BN folded, channels-last, stacked layers on the fastest kernel (fused CPU, Triton) |
| ``onnxruntime`` | CPU | the model exported to ONNX (opset :data:`OPSET`), stacked layers in their fastest exact form |
| ``onnxruntime_plain`` | CPU | the same, exported plainly (stacked layers as grouped ``Conv`` nodes) |
| ``openvino`` | CPU | the ONNX file compiled by OpenVINO at the timed shape (latency hint), fastest exact forms |
| ``openvino_plain`` | CPU | the plain export on OpenVINO |
| ``compile`` | CUDA | ``torch.compile`` of the deployment form |
| ``tensorrt`` | CUDA | ``torch_tensorrt`` of the eval model, where installed |

ONNX Runtime and OpenVINO each time every stacked-layer site (a ResNet block or a bare layer) in every exact
form they can run (``tissuenet/kernels/onnx.py``: grouped convolutions, or the fused kernel as the runtime's
custom operation) on the input the site sees, per batch, and run the model exported with the faster form at
each site; the record keeps the choices and their timings (``runtimes.<runtime>.forms``) and the plain export's
timing beside it (``<runtime>_plain``: what a user gets from ``torch.onnx.export``). A model without stacked
layers has one form, so its plain column is the same measurement. Each ONNX file's outputs are compared with
PyTorch's (the check is recorded, and a runtime whose outputs differ is marked). Every runtime is timed paired
with the dense model on the same runtime (A/B/A/B, ``timing.time_paired``). A runtime that is not
installed, or not for this device, is recorded as unavailable with the reason, never a failure.
Masked (unstructured) models run dense on every runtime here: no sparse kernel is used, and the
record says so. (OpenVINO's one CPU sparse path, ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE``, packs the
weights of int8 MatMul / fully connected layers on AMX CPUs: not the f32 convolutions measured here;
2:4 semi-structured sparsity is a CUDA path and needs a 2:4 mask, not a magnitude mask.)
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

OPSET = 17
EXPORT_TOLERANCE = 1e-3  # relative to the largest output magnitude


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """The eval model as ONNX (dynamic batch), exported once per measurement."""
    buffer = io.BytesIO()
    model = model.eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        torch.onnx.export(
            model,
            example.contiguous(),
            buffer,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _ort(onnx: bytes, threads: int, library=None, shape=None):
    """A session's run function; ``library``: the fused kernel's custom-op library, for files that use it.
    ``shape`` is not used: ONNX Runtime ran the dynamic-batch file as fast as a static one (measured)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if library is not None:
        import ctypes

        options.register_custom_ops_library(str(library))
        ctypes.CDLL(str(library)).tissuenet_set_threads(threads)  # its OpenMP threads: the session's count
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # ONNX Runtime's workers spin after each run by default: timed A/B against the dense model's session, the
    # idle session's spinning threads took the cores from the timed one (paired-ratio IQR up to 0.5)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    return lambda array: session.run(None, {"x": array})[0]


def release_alt_stack() -> None:
    """Forget an alternate signal stack a runtime left on this thread. OpenVINO installs one on the thread
    that compiles or runs a model and can free it without unregistering it; the next signal handled with
    ``SA_ONSTACK`` (Python's handlers all are) then has no stack to run on, and a Ctrl-C killed the process
    with SIGSEGV (exit 139, nothing printed) instead of exiting 130. Python's own signal handling needs none."""
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    libc = ctypes.CDLL(None, use_errno=True)
    current = StackT()
    if libc.sigaltstack(None, ctypes.byref(current)) == 0 and not current.ss_flags & SS_DISABLE:
        libc.sigaltstack(ctypes.byref(StackT(None, SS_DISABLE, 0)), None)


SS_DISABLE = 2  # <signal.h>


def _openvino(onnx: bytes, threads: int, library=None, shape=None):
    """An infer request's run function; ``library``: the fused kernel's extension, for files that use it;
    ``shape``: the input shape to compile for (OpenVINO's latency deployment: a dynamic batch made its CPU plugin
    infer shapes and reorder layouts on every request, 30 % of a TissueNet's time at batch 64)."""
    import openvino as ov

    core = ov.Core()
    if library is not None:
        import ctypes

        core.add_extension(str(library))
        ctypes.CDLL(str(library)).tissuenet_set_threads(threads)
    graph = core.read_model(onnx)
    if shape is not None:
        graph.reshape(list(shape))
    compiled = core.compile_model(
        graph,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"},
    )
    request = compiled.create_infer_request()
    # The request's own input tensor, filled in place: `request.infer({0: array})` (the wrapper's dict path, which
    # copies into new tensors and builds a dict of outputs) cost 80 us a call more here, a third of a TissueNet
    # request at batch 1, for Python work a deployment does not do (measured on a model of two small nodes: 105 us
    # against 23 us, 2 threads)
    inputs = request.get_input_tensor(0)

    def run(array):
        if shape is None:  # a dynamic input: a tensor of the call's shape
            request.set_input_tensor(ov.Tensor(array))
        else:
            inputs.data[...] = array
        request.infer()
        return request.get_output_tensor(0).data.copy()

    return run


def _callable(run_numpy, example: torch.Tensor) -> Callable:
    """A timing target with the example converted once (both models pay the same call overhead)."""
    array = np.ascontiguousarray(example.detach().cpu().numpy())
    return lambda _x: run_numpy(array)


def export_check(model: nn.Module, run_numpy, example: torch.Tensor) -> dict:
    """The runtime's output against PyTorch's on the example: max abs difference, relative to the output."""
    with torch.no_grad():
        expected = model.eval()(example).float().cpu().numpy()
    got = np.asarray(run_numpy(np.ascontiguousarray(example.detach().cpu().numpy())))
    diff = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    return {"max_abs_diff": diff, "relative": diff / scale, "ok": diff / scale <= EXPORT_TOLERANCE}


_FORM_CHOICES: dict[tuple, tuple[str, dict[str, float]]] = {}  # (runtime, shape, threads) -> (form, {form: ms})
SESSIONS = {"onnxruntime": _ort, "openvino": _openvino}  # the runtimes whose files have forms to choose from


def fastest_onnx_form(
    model: nn.Module, example: torch.Tensor, threads: int, runtime: str = "onnxruntime"
) -> tuple[nn.Module, dict, bool]:
    """The model for ``runtime`` with each stacked-layer site in the exact form that runs it fastest there.

    Each site shape is exported alone in every form it has and timed on the input it sees (cached per shape and
    thread count, like the deployment kernels). Returns (model to export, {site shape: {"chosen", "candidates"
    (median ms), "sites"}}, whether it needs the custom-operation library). A model without sites comes back as is.
    """
    from tissuenet.deploy import fold_bn
    from tissuenet.kernels import median_call_ms
    from tissuenet.kernels import onnx as forms

    folded, report = fold_bn(model)
    found = forms.sites(folded, blocks=not report.traced)
    if not found:
        return model, {}, False
    library, session = runtime_library(runtime), SESSIONS[runtime]
    seen: dict[str, torch.Tensor] = {}
    hooks = [s.register_forward_pre_hook(lambda _m, a, n=n: seen.setdefault(n, a[0])) for n, (s, _, _) in found.items()]
    with torch.no_grad():
        folded(example)
    for h in hooks:
        h.remove()
    chosen: dict[str, str] = {}
    out: dict[str, dict] = {}
    for name, (site, layer, block) in found.items():
        x = seen[name].contiguous()
        specs = ",".join(sorted({str(u) for u in layer.units}))
        label = f"{'block ' if block else ''}{specs} x{len(layer.units)}, stride {layer.stride}, input {tuple(x.shape)}"
        key = (runtime, label, threads)
        if key not in _FORM_CHOICES:
            times = {}
            for form in forms.FORMS:
                if form == "fused_op" and (library is None or not forms.fused_op_supports(layer)):
                    continue
                module, x_in = forms.site_form(site, layer, block, form), x
                if form == "fused_op":  # timed as it runs in the model, between other fused sites
                    module, x_in = forms.BetweenFusedSites(module), x.permute(0, 2, 3, 1).contiguous()
                run = session(onnx_bytes(module, x_in), threads, library if form == "fused_op" else None, x_in.shape)
                array = np.ascontiguousarray(x_in.numpy())
                times[form] = median_call_ms(lambda _x, run=run, array=array: run(array), x)
            _FORM_CHOICES[key] = (min(times, key=times.get), times)
        chosen[name], times = _FORM_CHOICES[key]
        timed = {k: round(v, 4) for k, v in times.items()}
        entry = out.setdefault(label, {"chosen": chosen[name], "candidates": timed})
        entry["sites"] = entry.get("sites", 0) + 1
    if "fused_op" not in chosen.values():
        return model, out, False
    exported = forms.with_forms(folded, chosen)
    if runtime in CHAINS:
        exported = _chained_if_faster(exported, example, threads, runtime, library, out)
    return exported, out, True


CHAINS = ("openvino",)  # the runtimes whose library also has the chain node (tissuenet/kernels/stacked_openvino.cpp)


def _chained_if_faster(model: nn.Module, example: torch.Tensor, threads: int, runtime: str, library, out: dict):
    """``model`` with each run of consecutive identity-shortcut fused blocks (a ResNet stage's) as one chain node,
    if that runs faster: the whole model is timed both ways and an entry of ``out`` (no sites of its own) says which
    (at batch 1 on OpenVINO one node per stage saved a fork and join per block: 3-7 % faster, measured)."""
    import copy

    from benchmarks.measure.timing import time_paired_calls
    from tissuenet.kernels import onnx as forms

    chained = forms.with_chains(copy.deepcopy(model))
    chains = [m for m in chained.modules() if isinstance(m, forms.FusedChain)]
    if not chains:
        return model
    array = np.ascontiguousarray(example.numpy())
    chain_run, node_run = (
        SESSIONS[runtime](onnx_bytes(m, example), threads, library, example.shape) for m in (chained, model)
    )
    # paired (A/B/A/B): the two differ by a few per cent, less than a busy machine moves between two runs
    paired = time_paired_calls(lambda: chain_run(array), lambda: node_run(array), min_run_time=0.2, min_samples=20)
    times = {"a node per block": paired.dense.median_ms, "chained": paired.model.median_ms}
    choice = "chained" if paired.speedup > 1 else "a node per block"
    label = f"{sum(len(c.sites) for c in chains)} consecutive fused blocks as {len(chains)} chain node(s)"
    out[label] = {"chosen": choice, "candidates": {k: round(v, 4) for k, v in times.items()}, "sites": 0}
    return chained if choice == "chained" else model


def export_onnx(model: nn.Module, example: torch.Tensor, path, runtime: str = "onnxruntime", threads: int = 0):
    """Write the ONNX file to deploy ``model`` on ``runtime`` (each stacked layer in the form that runs fastest
    there, chosen by timing on ``example``'s shape), checked against PyTorch. Returns the custom-operation library
    the file needs (load it as the README's "Deploying" says), or None for a plain file any runtime reads."""
    from pathlib import Path

    threads = threads or torch.get_num_threads()
    module, _, fused = fastest_onnx_form(model.eval(), example, threads, runtime)
    onnx = onnx_bytes(module, example)
    library = runtime_library(runtime) if fused else None
    check = export_check(model, SESSIONS[runtime](onnx, threads, library, example.shape), example)
    if not check["ok"]:
        raise RuntimeError(f"the exported file's outputs differ from PyTorch's by {check['relative']:.1e}")
    Path(path).write_bytes(onnx)
    return library


class RuntimeForms:
    """Per model, the callables each runtime times (ONNX exported once, sessions built once per model)."""

    def __init__(self, model: nn.Module, threads: int, deploy_form, eager_form) -> None:
        self.model, self.threads = model, threads
        self.deploy_form, self.eager_form = deploy_form, eager_form
        self._onnx: bytes | None = None
        self._sessions: dict[str, Callable] = {}
        self.checks: dict[str, dict] = {}
        self.labels: dict[str, str] = {}
        self.kernels: dict = {}
        self.onnx_forms: dict[str, dict] = {}  # runtime -> batch -> the stacked-layer forms its file runs

    def target(self, runtime: str, example: torch.Tensor) -> Callable:
        if runtime == "eager":
            fn, self.labels["eager"], _ = self.eager_form(self.model, example)
            return fn
        if runtime == "deploy":
            fn, self.labels["deploy"], kernels = self.deploy_form(self.model, example)
            self.kernels |= kernels
            return fn
        if runtime == "compile":
            fn, _, _ = self.deploy_form(self.model, example)
            return torch.compile(fn)
        if runtime == "tensorrt":
            import torch_tensorrt

            return torch_tensorrt.compile(self.model.eval(), inputs=[example])
        key = f"{runtime}@{example.shape[0]}"  # forms, and OpenVINO's compiled shapes, depend on the batch
        if key not in self._sessions:
            if runtime in SESSIONS:
                module, forms, fused = fastest_onnx_form(self.model, example, self.threads, runtime)
                self.onnx_forms.setdefault(runtime, {})[str(example.shape[0])] = forms
                library = runtime_library(runtime) if fused else None
                run = SESSIONS[runtime](onnx_bytes(module, example), self.threads, library, example.shape)
            else:
                if self._onnx is None:
                    self._onnx = onnx_bytes(self.model, example)
                run = SESSIONS[runtime.removesuffix("_plain")](self._onnx, self.threads, None, example.shape)
            self.checks[runtime] = export_check(self.model, run, example)
            self._sessions[key] = run
        return _callable(self._sessions[key], example)

    def uses_fused_op(self, runtime: str) -> bool:
        batches = self.onnx_forms.get(runtime, {}).values()
        return any(f["chosen"] == "fused_op" for forms in batches for f in forms.values())


def runtime_library(runtime: str):
    from tissuenet.kernels.build import runtime_library

    return runtime_library(runtime)
