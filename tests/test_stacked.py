"""The stacked layer: fast paths equal the per-unit reference; costs equal the formulas of docs/method.md §5."""

import pytest
import torch

from tissuenet import StackedLayer, UnitSpec, count_macs, parse_units
from tissuenet.units import PAPER_UNITS

# float32, O(1) activations after BN: grouped vs per-unit convs differ only by summation order.
ATOL = 1e-5


def _compare(layer: StackedLayer, x: torch.Tensor):
    ref = layer.to_per_unit()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = layer(x1), ref(x2)
    torch.testing.assert_close(y1, y2, atol=ATOL, rtol=1e-5)
    weights = torch.randn_like(y1)  # a loss that weighs every output differently
    (y1 * weights).sum().backward()
    (y2 * weights).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=ATOL, rtol=1e-5)
    for i, unit in enumerate(ref.units_):  # parameter grads, unit by unit
        fast = {k: v for k, v in layer.unit_tensors(i).items() if "running" not in k}
        for name, param in unit.named_parameters():
            g = _grad_view(layer, i, name)
            torch.testing.assert_close(g.reshape(param.shape), param.grad, atol=ATOL, rtol=1e-4)
        assert set(fast) == {n for n, _ in unit.named_parameters()}


def _grad_view(layer, i, name):
    g, pos = layer._place[i]
    spec, grp = layer.group_specs[g], layer.groups[g]
    module_name, attr = name.split(".")
    width = spec.c_h if module_name in ("op1", "bn1") else spec.c_out
    return getattr(getattr(grp, module_name), attr).grad[pos * width : (pos + 1) * width]


CONV_CASES = [
    (["2-4-2"] * 8, 1),  # the paper's same-width unit: a single grouped pair
    (["2-4-4"] * 4, 2),  # widening block, downsampling
    (list(PAPER_UNITS.values()), 1),  # all six explored units, hybrid
    (["2-4-2", "2-8-2", "2-4-2", "2-2-2", "2-8-2"], 2),  # hybrid, interleaved, strided
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("units,stride", CONV_CASES, ids=["identical", "widening", "paper-A-F", "hybrid-strided"])
def test_conv_paths_match_per_unit_reference(units, stride, train):
    layer = StackedLayer(units, stride=stride).train(train)
    if not train:  # non-trivial running statistics
        for grp in layer.groups:
            for bn in (grp.bn1, grp.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, layer.in_channels, 9, 9)
    assert layer.hybrid == (len(set(units)) > 1)
    _compare(layer, x)


@pytest.mark.parametrize("units", [["2-4-2"] * 5, ["2-4-2", "3-2-1", "1-2-3", "2-4-2"]], ids=["identical", "hybrid"])
def test_fc_paths_match_per_unit_reference(units):
    layer = StackedLayer(units, kind="fc", final_relu=True)
    _compare(layer, torch.randn(6, layer.in_channels))


def test_fc_units_run_as_batched_matmuls_with_the_grouped_macs_and_a_masked_layer_keeps_its_convolution():
    """The fc form (a grouped Conv1d of kernel 1 runs one tiny product per unit): no conv call, the same MACs
    (m x c_h x (c_in + c_out)); a traced export and a weight computed by a pruning hook keep the convolution."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = StackedLayer(["2-4-2"] * 5, kind="fc")
    op1 = layer.groups[0].op1
    calls = []
    op1.register_forward_hook(lambda *args: calls.append(1))
    counter = FlopCounterMode(display=False)
    with counter:
        layer.eval()(torch.randn(1, 10))
    layer.train()
    assert calls == [] and counter.get_total_flops() // 2 == 5 * 4 * (2 + 2)
    torch.jit.trace(layer.eval(), torch.randn(2, 10), check_trace=False)  # an export keeps the convolution
    layer.train()
    assert calls == [1]
    calls.clear()
    from torch.nn.utils import prune

    prune.l1_unstructured(op1, "weight", amount=0.5)
    x = torch.randn(4, 10)
    y = layer(x)
    assert calls == [1]
    torch.testing.assert_close(y, layer.to_per_unit()(x), atol=ATOL, rtol=1e-5)  # the masked weights are used


def test_units_are_independent():
    """Changing one unit's input piece changes only that unit's output piece."""
    layer = StackedLayer(["2-4-2", "3-2-1", "2-4-2"]).eval()
    x = torch.randn(1, 7, 5, 5)
    x2 = x.clone()
    x2[:, 2:5] += 1.0  # unit 1's input channels
    changed = (layer(x) - layer(x2)).abs().amax(dim=(0, 2, 3)) > 0
    assert changed.tolist() == [False, False, True, False, False]


def _formula(spec: UnitSpec, m: int, d: int, hw_l: int, hw_r: int):
    params = m * d * d * spec.c_h * (spec.c_in + spec.c_out)  # docs/method.md §5: M_s
    macs = m * d * d * spec.c_h * (spec.c_in * hw_l + spec.c_out * hw_r)  # docs/method.md §5: C_s (MACs)
    return params, macs


@pytest.mark.parametrize("spec", ["2-4-2", "2-4-4", "1-2-3", "3-2-1", "2-16-2"])
@pytest.mark.parametrize("m,d,stride,size", [(8, 3, 1, 8), (16, 3, 2, 8), (5, 5, 1, 7), (4, 1, 2, 9)])
def test_costs_equal_spec_formulas(spec, m, d, stride, size):
    spec = UnitSpec.parse(spec)
    layer = StackedLayer([spec] * m, kernel_size=d, stride=stride)
    out = (size + 2 * (d // 2) - d) // stride + 1
    params, macs = _formula(spec, m, d, out * out, out * out)
    weights = sum(p.numel() for n, p in layer.named_parameters() if ".op" in n)
    bn = 2 * m * (spec.c_h + spec.c_out)  # gamma and beta of both BNs, excluded by the formula
    assert weights == params
    assert sum(p.numel() for p in layer.parameters()) == params + bn
    assert count_macs(layer, layer.in_channels, size) == macs
    # the dense pair it stands for costs m times more (docs/method.md §5: M_n = m * M_s on the same widths)
    dense = torch.nn.Sequential(
        torch.nn.Conv2d(m * spec.c_in, m * spec.c_h, d, stride, d // 2, bias=False),
        torch.nn.Conv2d(m * spec.c_h, m * spec.c_out, d, 1, d // 2, bias=False),
    )
    assert sum(p.numel() for p in dense.parameters()) == m * params
    assert count_macs(dense, layer.in_channels, size) == m * macs


def test_hybrid_costs_are_sums_of_unit_costs():
    units = parse_units("2-4-2,3-2-1,2-4-2,1-2-3,2-8-2")
    layer = StackedLayer(units)
    total_params = sum(_formula(u, 1, 3, 36, 36)[0] for u in units)
    total_macs = sum(_formula(u, 1, 3, 36, 36)[1] for u in units)
    assert sum(p.numel() for n, p in layer.named_parameters() if ".op" in n) == total_params
    assert count_macs(layer, layer.in_channels, 6) == total_macs


@pytest.mark.parametrize("bad", ["2-4", "a-b-c", "2-0-2", ""])
def test_bad_unit_specs_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_units(bad)


def test_paper_letters_parse():
    assert [str(UnitSpec.parse(k)) for k in "ABCDEF"] == ["1-2-1", "1-2-2", "1-2-3", "2-1-2", "2-1-1", "3-2-1"]
