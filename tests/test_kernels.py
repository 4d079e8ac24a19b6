"""Fast stacked-layer kernels equal the grouped reference; the deployed form equals the trained model;
unsupported layers and machines fall back to the grouped path."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tissuenet import create_model
from tissuenet.deploy import deploy, fold_bn
from tissuenet.kernels import build, cpu
from tissuenet.stacked import StackedLayer

# CI sets this: a kernel that cannot be built there is a failure, not a skip
REQUIRED = os.environ.get("TISSUEBENCH_REQUIRE_KERNELS") == "1"
ISAS = [isa for isa in ("avx512", "avx2") if isa == build.cpu_isa() or (isa == "avx2" and build.cpu_isa() == "avx512")]


def _layer(units: str, channels: int, stride: int = 1, final_relu: bool = False, hybrid: bool = False):
    specs = [units] * (channels // 2)
    if hybrid:
        specs[0] = "2-8-2"
    layer = StackedLayer(specs, stride=stride, final_relu=final_relu).eval()
    for grp in layer.groups:  # non-trivial folded BNs
        for bn in (grp.bn1, grp.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.3, 0.3)
    layer.fold_bn()
    return layer


def _extension(isa):
    ext = cpu.extension(isa)
    if ext is None:
        if REQUIRED:
            pytest.fail(f"the {isa} kernel could not be built")
        pytest.skip(f"no {isa} kernel on this machine")
    return ext


@pytest.mark.timeout(900)  # the first call compiles the kernel: about 45 s quiet, minutes on a busy machine
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("units", ["2-2-2", "2-4-2", "2-8-2", "2-4-4", "2-6-2", "2-16-2"])
@pytest.mark.parametrize("channels,size", [(16, 9), (32, 7), (10, 6), (34, 5)])
@pytest.mark.parametrize("stride", [1, 2])
def test_cpu_kernel_equals_grouped(isa, units, channels, size, stride):
    _extension(isa)
    torch.manual_seed(channels + stride)
    layer = _layer(units, channels, stride, final_relu=channels == 10)
    x = torch.randn(3, channels, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = layer(x)
        residual = torch.randn_like(expected) if channels % 4 == 0 else None
        if residual is not None:
            expected = torch.relu(expected + residual)
        got = cpu.FusedStacked(layer, isa)(x, residual)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [34, 48, 64])  # 2, 3 and 4 AVX-512 lane blocks (5, 6 and 8 with AVX2)
def test_cpu_kernel_at_batch_one_splits_lane_blocks_between_threads(channels):
    """At batch 1 the threads share the lane blocks (independent units), the last share possibly smaller."""
    _extension(None)
    layer = _layer("2-4-2", channels)
    x = torch.randn(1, channels, 7, 7).contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    try:
        for n in (2, 3):
            torch.set_num_threads(n)
            with torch.no_grad():
                torch.testing.assert_close(cpu.FusedStacked(layer)(x), layer(x), atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("stride,units", [(2, 8), (1, 8), (2, 7)])
def test_cpu_kernel_computes_a_projection_shortcut(stride, units):
    """A block whose shortcut is a 1x1 conv (+ BN, folded) runs as one kernel call: the projection inside
    (7 units: 28 output channels, a partial vector of lanes in a block of two)."""
    from tissuenet.models.resnet_blocks import BasicBlock

    _extension(None)
    torch.manual_seed(stride)
    block = BasicBlock(2 * units, 4 * units, stride, StackedLayer(["2-4-4"] * units, stride=stride)).eval()
    for m in block.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    folded, _ = fold_bn(block)
    kernel = cpu.FusedStacked(folded.body, shortcut=folded.shortcut)
    assert kernel.projects and not cpu.FusedStacked(folded.body).projects
    x = torch.randn(3, 2 * units, 9, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(kernel(x), block(x), atol=1e-5, rtol=1e-5)


def test_cpu_kernel_batch_one_and_chain():
    _extension(None)
    layers = [_layer("2-4-2", 16) for _ in range(3)]
    x = torch.randn(1, 16, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = x
        for layer in layers:
            expected = torch.relu(layer(expected) + expected)
        got = cpu.FusedChain(layers)(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_unsupported_layers_are_declined():
    assert not cpu.supported(_layer("2-4-2", 8, hybrid=True))  # hybrid units
    assert not cpu.supported(StackedLayer(["2-4-2"] * 4).eval())  # BN not folded
    assert not cpu.supported(_layer("2-10-2", 8))  # c_h / 2 = 5: no instantiation
    fc = StackedLayer(["2-4-2"] * 4, kind="fc").eval()
    fc.fold_bn()
    assert not cpu.supported(fc)


def test_fc_einsum_equals_grouped():
    from tissuenet.kernels.fc import EinsumUnits

    layer = StackedLayer(["2-4-2"] * 6, kind="fc", final_relu=True).eval()
    layer.fold_bn()
    x = torch.randn(5, 12)
    with torch.no_grad():
        torch.testing.assert_close(EinsumUnits(layer)(x), layer(x), atol=1e-6, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_triton_kernel_equals_grouped_in_the_interpreter():
    """The CUDA kernel's arithmetic, run on the CPU by Triton's interpreter (the GPU run is scripts/gpu_checks.sh)."""
    pytest.importorskip("triton")
    code = """
import torch
from tests.test_kernels import _layer
from tissuenet.kernels.triton_unit import TritonStacked
torch.manual_seed(0)
for units, c, size, stride, res in [("2-4-2", 8, 5, 1, True), ("2-4-4", 8, 6, 2, True), ("2-8-2", 6, 4, 1, False)]:
    layer = _layer(units, c, stride, final_relu=not res)
    x = torch.randn(2, c, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = layer(x)
        r = torch.randn_like(ref) if res else None
        if res:
            ref = torch.relu(ref + r)
        torch.testing.assert_close(TritonStacked(layer)(x, r), ref, atol=1e-5, rtol=1e-5)
print("triton ok")
"""
    env = os.environ | {"TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert "triton ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize(
    "name,options,channels,size",
    [
        ("tissue_resnet56", {"replace": "all"}, 1, 28),
        ("tissue_resnet20", {"units": "2-4-2,2-8-2"}, 3, 16),
        ("tissue_vgg16_bn", {"units": "2-2-2", "replace": "all"}, 3, 32),
        ("tissue_resnet50", {}, 3, 32),
        ("tissue_mlp", {}, 1, 28),
        ("tissue_mobilenetv2", {}, 3, 32),
        ("torchvision:resnet18", {}, 3, 32),
    ],
)
def test_deployed_model_equals_the_model(name, options, channels, size):
    """BN folded, kernels chosen and installed: the same function as the trained model in eval mode."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=channels, **options).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, channels, size, size)
    deployed, report = deploy(model, x)
    with torch.no_grad():
        torch.testing.assert_close(
            deployed(x.contiguous(memory_format=torch.channels_last)), model(x), atol=1e-4, rtol=1e-4
        )
    bns = [m for m in deployed.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert report.bn_folded > 0 and len(bns) == report.bn_left == 0
    if name == "tissue_resnet20":  # hybrid units: no fused kernel, the grouped path
        assert {k["chosen"] for k in report.kernels.values()} == {"grouped"}


def test_grouped_fallback_when_kernels_are_off(monkeypatch, capsys):
    monkeypatch.setenv("TISSUEBENCH_KERNELS", "grouped")
    cpu.extension.cache_clear()
    try:
        model = create_model("tissue_resnet20", in_channels=1, replace="all").eval()
        deployed, report = deploy(model, torch.randn(1, 1, 16, 16))
        assert {k["chosen"] for k in report.kernels.values()} == {"grouped"}
    finally:
        cpu.extension.cache_clear()


def test_fold_bn_keeps_the_module_tree():
    model = create_model("tissue_resnet20", in_channels=1, replace="all").eval()
    folded, report = fold_bn(model)
    assert not report.traced and type(folded).__name__ == "ResNet"  # structure kept: kernels can replace blocks
