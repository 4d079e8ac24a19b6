"""The training form of stacked layers on the CPU (tissuenet/kernels/grouped_train.py): the small-group convolution
kernel computes the grouped convolution's function and both gradients, a stacked layer trains through it, and
everything it does not cover runs PyTorch's convolution."""

import os

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune
from torch import nn

from tissuenet.kernels import grouped_train
from tissuenet.stacked import StackedLayer

REQUIRED = os.environ.get("TISSUEBENCH_REQUIRE_KERNELS") == "1"  # CI: a kernel that does not build is a failure


@pytest.fixture(scope="module")
def kernel():
    if grouped_train.extension() is None:
        if REQUIRED:
            pytest.fail("the training kernel could not be built")
        pytest.skip("no training kernel on this machine")


def _nhwc(*shape):
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


@pytest.mark.timeout(900)  # the first call may compile the kernel
@pytest.mark.parametrize("c_in,c_out", [(2, 4), (4, 2), (2, 2), (4, 4), (1, 8), (2, 8), (1, 1)])
@pytest.mark.parametrize("size", [(9, 9), (5, 7), (1, 3), (28, 28), (14, 11)])
def test_kernel_equals_the_grouped_convolution_and_its_gradients(kernel, c_in, c_out, size):
    """Forward, input gradient and weight gradient against F.conv2d, odd sizes and rows narrower than a block
    included (the last block of a row overlaps the one before it)."""
    groups = 16 // c_in if c_in * c_out < 16 else 8
    torch.manual_seed(c_in * 10 + c_out + size[1])
    op = nn.Conv2d(groups * c_in, groups * c_out, 3, 1, 1, groups=groups, bias=False)
    x = _nhwc(3, groups * c_in, *size).requires_grad_()
    assert grouped_train.applies(op, x)
    y = grouped_train.conv(op, x)
    dy = torch.randn_like(y)
    y.backward(dy)
    got = (y.detach(), x.grad, op.weight.grad)
    x.grad, op.weight.grad = None, None
    want_y = F.conv2d(x, op.weight, None, 1, 1, 1, groups)
    want_y.backward(dy)
    for a, b in zip(got, (want_y.detach(), x.grad, op.weight.grad)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_no_input_gradient_when_the_input_needs_none(kernel):
    op = nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False)
    y = grouped_train.conv(op, _nhwc(2, 16, 6, 6))  # x without requires_grad: only the weight's gradient
    y.sum().backward()
    assert op.weight.grad is not None and op.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "why,op,x",
    [
        ("stride 2", nn.Conv2d(16, 32, 3, 2, 1, groups=8, bias=False), _nhwc(2, 16, 8, 8)),
        ("NCHW input", nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False), torch.randn(2, 16, 8, 8)),
        ("a bias", nn.Conv2d(16, 32, 3, 1, 1, groups=8), _nhwc(2, 16, 8, 8)),
        ("dense", nn.Conv2d(16, 16, 3, 1, 1, bias=False), _nhwc(2, 16, 8, 8)),
        ("3 channels per group", nn.Conv2d(24, 24, 3, 1, 1, groups=8, bias=False), _nhwc(2, 24, 8, 8)),
        ("12 channels", nn.Conv2d(12, 24, 3, 1, 1, groups=6, bias=False), _nhwc(2, 12, 8, 8)),
        ("5x5", nn.Conv2d(16, 32, 5, 1, 2, groups=8, bias=False), _nhwc(2, 16, 8, 8)),
        ("float64", nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False).double(), _nhwc(2, 16, 8, 8).double()),
    ],
)
def test_what_the_kernel_does_not_cover_runs_pytorchs_convolution(why, op, x):
    assert not grouped_train.applies(op, x), why
    torch.testing.assert_close(grouped_train.conv(op, x), op(x))


def test_a_pruning_mask_keeps_pytorchs_convolution(kernel):
    """torch.nn.utils.prune computes the weight in a forward pre-hook: the kernel would read a stale weight."""
    op = nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False)
    x = _nhwc(2, 16, 8, 8)
    assert grouped_train.applies(op, x)
    torch.nn.utils.prune.l1_unstructured(op, "weight", amount=0.5)
    assert not grouped_train.applies(op, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not grouped_train.applies(nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False), x)


@pytest.mark.timeout(300)
def test_a_stacked_layer_trains_through_the_kernel_with_the_references_gradients(kernel, monkeypatch):
    """A training step of a stacked layer (BN in training mode) on channels_last input: both stride-1
    convolutions of each unit group run on the kernel, and the output and every parameter's gradient equal the
    per-unit reference's (the paper's split / conv / concat)."""
    torch.manual_seed(0)
    layer = StackedLayer(["2-4-2"] * 8, final_relu=True).train()
    ref = layer.to_per_unit()
    calls = []
    apply = grouped_train._SmallGroupConv.apply
    monkeypatch.setattr(grouped_train._SmallGroupConv, "apply", lambda *a: calls.append(a) or apply(*a))
    x = _nhwc(4, 16, 10, 10)
    y = layer(x)
    assert len(calls) == 2
    dy = torch.randn_like(y)
    y.backward(dy)
    y_ref = ref(x)
    y_ref.backward(dy)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    grads = {name: p.grad for name, p in layer.named_parameters()}
    for i, unit in enumerate(ref.units_):
        g, pos = layer._place[i]
        spec = layer.group_specs[g]
        h, o = slice(pos * spec.c_h, (pos + 1) * spec.c_h), slice(pos * spec.c_out, (pos + 1) * spec.c_out)
        for name, rows in (("op1.weight", h), ("op2.weight", o), ("bn1.weight", h), ("bn2.weight", o)):
            want = dict(unit.named_parameters())[name].grad
            got = grads[f"groups.{g}.{name}"][rows].reshape(want.shape)
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_macs_are_counted_where_the_kernel_runs(kernel):
    """The counting convention reads aten's convolutions (FlopCounterMode): a layer fed channels_last, which
    would run the kernel, counts the same MACs as in NCHW, the hand formula (m d^2 c_h (c_in' + c_out') per
    pixel, docs/method.md §5)."""
    from tissuenet.counting import count_macs

    layer = StackedLayer(["2-4-2"] * 8)
    want = 8 * 9 * 4 * (2 + 2) * 6 * 6
    assert count_macs(layer, 16, 6) == want
    assert count_macs(_ChannelsLast(layer), 16, 6) == want


class _ChannelsLast(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.contiguous(memory_format=torch.channels_last))


def test_switched_off_pytorch_runs_everywhere(kernel, monkeypatch):
    """``ENABLED = False`` (how stacked_speed times PyTorch's form against the kernel) keeps aten's convolution."""
    op, x = nn.Conv2d(16, 32, 3, 1, 1, groups=8, bias=False), _nhwc(2, 16, 8, 8)
    monkeypatch.setattr(grouped_train, "ENABLED", False)
    assert not grouped_train.applies(op, x)
    monkeypatch.setattr(grouped_train, "ENABLED", True)
    assert grouped_train.applies(op, x)
