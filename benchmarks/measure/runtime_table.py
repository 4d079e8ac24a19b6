"""The table of runtimes a model can be timed on: names, devices, the package each needs (a leaf: the suite's
settings check names against it without importing the measuring code, ``runtimes.py``)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

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
        Runtime("openvino", ("cpu",), "openvino", "OpenVINO, CPU, latency hint, fastest exact form per stacked layer"),
        Runtime("openvino_plain", ("cpu",), "openvino", "OpenVINO, CPU, latency hint, the plain export"),
        Runtime("compile", ("cuda",), None, "torch.compile of the deployment form"),
        Runtime("tensorrt", ("cuda",), "torch_tensorrt", "Torch-TensorRT"),
    )
}


def check_names(names) -> None:
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime(s) {unknown}; known: {', '.join(RUNTIMES)}")


def defaults(device: torch.device) -> tuple[str, ...]:
    return CUDA_DEFAULT if device.type == "cuda" else CPU_DEFAULT


def resolve(names, device: torch.device) -> list[str]:
    """``auto`` -> the device's runtimes; the rest as named (validated by the settings)."""
    out = []
    for name in names:
        out += list(defaults(device)) if name == "auto" else [name]
    return list(dict.fromkeys(out))
