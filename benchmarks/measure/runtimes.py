"""The runtimes a model is timed on, the same for every method (``[measure] runtimes``, ``latency --runtime``).

| runtime | device | what runs |
|---|---|---|
| ``eager`` | CPU, CUDA | PyTorch eval mode as trained: BN unfolded, stacked layers as grouped convs |
| ``deploy`` | CPU, CUDA | BN folded, channels-last, stacked layers on the fastest kernel (fused CPU, Triton) |
| ``onnxruntime`` | CPU | the model exported to ONNX (opset :data:`OPSET`), stacked layers in their fastest exact form |
| ``onnxruntime_plain`` | CPU | the same, exported plainly (stacked layers as grouped ``Conv`` nodes) |
| ``openvino`` | CPU | the same ONNX file compiled by OpenVINO for the CPU (latency hint) |
| ``compile`` | CUDA | ``torch.compile`` of the deployment form |
| ``tensorrt`` | CUDA | ``torch_tensorrt`` of the eval model, where installed |

ONNX Runtime times each stacked-layer site (a ResNet block or a bare layer) in every exact form it can run
(``tissuenet/kernels/onnx.py``: grouped convolutions, or the fused kernel as a custom operator) on the input the
site sees, per batch, and exports the model with the faster form at each site; the record keeps the choices
and their timings (``runtimes.onnxruntime.forms``) and the plain export's timing beside it
(``onnxruntime_plain``: what a user gets from ``torch.onnx.export``). A model without stacked layers has one
form, so its plain column is the same measurement. Each ONNX file's outputs are compared with PyTorch's (the
check is recorded, and a runtime whose outputs differ is marked). Every runtime is timed paired
with the dense model on the same runtime (A/B/A/B, ``timing.time_paired``). A runtime that is not
installed, or not for this device, is recorded as unavailable with the reason, never a failure.
Masked (unstructured) models run dense on every runtime here: no sparse kernel is used, and the
record says so. (OpenVINO's one CPU sparse path, ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE``, packs the
weights of int8 MatMul / fully connected layers on AMX CPUs: not the f32 convolutions measured here;
2:4 semi-structured sparsity is a CUDA path and needs a 2:4 mask, not a magnitude mask.)
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

OPSET = 17
EXPORT_TOLERANCE = 1e-3  # relative to the largest output magnitude
CPU_DEFAULT = ("eager", "deploy", "onnxruntime", "openvino")
CUDA_DEFAULT = ("eager", "deploy", "compile", "tensorrt")


@dataclass(frozen=True)
class Runtime:
    name: str
    devices: tuple[str, ...]
    package: str | None  # the import that must exist (None: PyTorch)
    doc: str

    def unavailable(self, device: torch.device) -> str | None:
        """Why it cannot run here (None: it can)."""
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}, not {device.type}"
        if self.package and importlib.util.find_spec(self.package) is None:
            return f"{self.name} is not installed (pip install -e '.[deploy]')"
        return None


RUNTIMES = {
    r.name: r
    for r in (
        Runtime("eager", ("cpu", "cuda"), None, "PyTorch eval mode as trained"),
        Runtime("deploy", ("cpu", "cuda"), None, "BN folded, channels-last, fastest stacked-layer kernel"),
        Runtime("onnxruntime", ("cpu",), "onnxruntime", "ONNX Runtime, CPU, fastest exact form per stacked layer"),
        Runtime("onnxruntime_plain", ("cpu",), "onnxruntime", "ONNX Runtime, CPU, the plain export"),
        Runtime("openvino", ("cpu",), "openvino", "OpenVINO, CPU, latency hint"),
        Runtime("compile", ("cuda",), None, "torch.compile of the deployment form"),
        Runtime("tensorrt", ("cuda",), "torch_tensorrt", "Torch-TensorRT"),
    )
}


def check_names(names) -> None:
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime(s) {unknown}; known: {', '.join(RUNTIMES)}")


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


def _ort(onnx: bytes, threads: int, library=None):
    """A session's run function; ``library``: the fused kernel's custom-op library, for files that use it."""
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


def _openvino(onnx: bytes, threads: int):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(onnx),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"},
    )
    request = compiled.create_infer_request()

    def run(array):
        return request.infer({0: array})[compiled.output(0)]

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


_FORM_CHOICES: dict[tuple, tuple[str, dict[str, float]]] = {}  # (site shape, threads) -> (form, {form: ms})


def fastest_onnx_form(model: nn.Module, example: torch.Tensor, threads: int) -> tuple[nn.Module, dict, bool]:
    """The model for ONNX Runtime with each stacked-layer site in the exact form that runs it fastest there.

    Each site shape is exported alone in every form it has and timed on the input it sees (cached per shape and
    thread count, like the deployment kernels). Returns (model to export, {site shape: {"chosen", "candidates"
    (median ms), "sites"}}, whether it needs the custom-op library). A model without sites comes back as is.
    """
    from tissuenet.deploy import fold_bn
    from tissuenet.kernels import cpu, median_call_ms
    from tissuenet.kernels import onnx as forms

    folded, report = fold_bn(model)
    found = forms.sites(folded, blocks=not report.traced)
    if not found:
        return model, {}, False
    library = cpu.ort_library()
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
        if (label, threads) not in _FORM_CHOICES:
            times = {}
            array = np.ascontiguousarray(x.numpy())
            for form in forms.FORMS:
                if form == "fused_op" and (library is None or not forms.fused_op_supports(layer)):
                    continue
                onnx = onnx_bytes(forms.site_form(site, layer, block, form), x)
                run = _ort(onnx, threads, library if form == "fused_op" else None)
                times[form] = median_call_ms(lambda _x, run=run, array=array: run(array), x)
            _FORM_CHOICES[(label, threads)] = (min(times, key=times.get), times)
        chosen[name], times = _FORM_CHOICES[(label, threads)]
        timed = {k: round(v, 4) for k, v in times.items()}
        entry = out.setdefault(label, {"chosen": chosen[name], "candidates": timed})
        entry["sites"] = entry.get("sites", 0) + 1
    fused = "fused_op" in chosen.values()
    return (forms.with_forms(folded, chosen) if fused else model), out, fused


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
        self.onnx_forms: dict[str, dict] = {}  # batch -> the stacked-layer forms ONNX Runtime runs

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
        key = f"{runtime}@{example.shape[0]}" if runtime == "onnxruntime" else runtime  # forms depend on the batch
        if key not in self._sessions:
            if runtime == "onnxruntime":
                module, forms, fused = fastest_onnx_form(self.model, example, self.threads)
                self.onnx_forms[str(example.shape[0])] = forms
                run = _ort(onnx_bytes(module, example), self.threads, cpu_library() if fused else None)
            else:
                if self._onnx is None:
                    self._onnx = onnx_bytes(self.model, example)
                run = (_ort if runtime == "onnxruntime_plain" else _openvino)(self._onnx, self.threads)
            self.checks[runtime] = export_check(self.model, run, example)
            self._sessions[key] = run
        return _callable(self._sessions[key], example)

    def uses_fused_op(self) -> bool:
        return any(f["chosen"] == "fused_op" for forms in self.onnx_forms.values() for f in forms.values())


def cpu_library():
    from tissuenet.kernels.cpu import ort_library

    return ort_library()


def defaults(device: torch.device) -> tuple[str, ...]:
    return CUDA_DEFAULT if device.type == "cuda" else CPU_DEFAULT


def resolve(names, device: torch.device) -> list[str]:
    """``auto`` -> the device's runtimes; the rest as named (validated by the settings)."""
    out = []
    for name in names:
        out += list(defaults(device)) if name == "auto" else [name]
    return list(dict.fromkeys(out))
