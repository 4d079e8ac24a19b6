"""The papers' importance scores against hand-computed values on tiny layers (``baselines/importance.py``,
FPGM's distance in ``fpgm.py``, Taylor's gate score in ``taylor.py``), and the differences from
Torch-Pruning 1.6.1 that made us write them."""

from __future__ import annotations

import math

import pytest
import torch
import torch_pruning as tp
from torch import nn

from baselines.fpgm import median_distances
from baselines.importance import BNScale
from baselines.unstructured import lamp_scores


def _net(widths=(3, 4)) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, widths[0], 1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
        nn.Conv2d(widths[0], widths[1], 1, bias=False),
        nn.BatchNorm2d(widths[1]),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[1], 2),
    )


def _group(model, layer, n):
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 2, 4, 4))
    return graph.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=list(range(n)))


def test_fpgm_is_the_summed_distance_between_filter_weights():
    """Filters (1,0), (0,1), (-1,0): distance sums 2+sqrt2, 2sqrt2, 2+sqrt2; (0,1) is nearest the median."""
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]).view(3, 2, 1, 1)
    r2 = math.sqrt(2)
    assert median_distances(weight, [0, 1, 2]).tolist() == pytest.approx([2 + r2, 2 * r2, 2 + r2])
    # Torch-Pruning compares |w|^2 vectors: a filter and its negative at distance 0
    assert median_distances(weight, [0]).item() == pytest.approx(2 + r2)


def test_slimming_scores_are_raw_gammas():
    model = _net()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.01, -0.02, 0.03]))
    scores = BNScale()(_group(model, model[0], 3))
    assert scores.tolist() == pytest.approx([0.01, 0.02, 0.03])  # |gamma|, not gamma / mean(|gamma|)
    tp_scores = tp.importance.BNScaleImportance()(_group(model, model[0], 3))
    assert tp_scores.tolist() == pytest.approx([0.5, 1.0, 1.5])  # Torch-Pruning normalises by the group mean


def test_global_ranking_reaches_the_layer_whose_gammas_are_all_small():
    """Layer A: 8 channels of |gamma| 0.01; layer B: 15 of 0.1 .. 1.5. Ranked globally by raw |gamma|, A's
    channels are the 8 least important; by Torch-Pruning's mean-normalised scores every A channel scores 1,
    above 7 of B's (so its global threshold at 7 channels keeps all of A and cuts B)."""
    model = _net((8, 15))
    with torch.no_grad():
        model[1].weight.fill_(0.01)
        model[4].weight.copy_(torch.arange(1, 16) / 10)
    a, b = _group(model, model[0], 8), _group(model, model[3], 15)
    ours = torch.cat([BNScale()(a), BNScale()(b)])
    assert set(ours.argsort()[:7].tolist()) <= set(range(8))  # the 7 lowest are all in layer A
    theirs = torch.cat([tp.importance.BNScaleImportance()(a), tp.importance.BNScaleImportance()(b)])
    assert not set(theirs.argsort()[:7].tolist()) & set(range(8))  # none of layer A among its 7 lowest


def test_lamp_scores_by_hand():
    """[1, 2, 3]: squares 1, 4, 9; sums from each upward 14, 13, 9 -> 1/14, 4/13, 1."""
    assert lamp_scores(torch.tensor([1.0, -2.0, 3.0])).tolist() == pytest.approx([1 / 14, 4 / 13, 1.0])
    assert lamp_scores(torch.tensor([[0.1, 10.0]])).flatten().tolist() == pytest.approx([0.01 / 100.01, 1.0])


def test_sparse_lamp_prunes_by_lamp_scores_globally():
    """Two layers: [1, 2, 3] and [0.1, 10]. Two weights out by LAMP: 0.1 (1e-4) and 1 (1/14), not 1 and 2."""
    from baselines.contract import JobContext, Target, get_method
    from benchmarks.suites.settings import BudgetConfig

    model = nn.Sequential(nn.Linear(3, 1, bias=False), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        model[1].weight.copy_(torch.tensor([[0.1], [10.0]]))
    ctx = JobContext(
        dataset="synthetic", model_name="mlp", num_classes=2, in_channels=1, input_size=3, seed=0, options={},
        target=Target("sparsity", 0.4), budgets=BudgetConfig.from_dict({"dense_epochs": 1, "finetune_epochs": 1}),
        device=torch.device("cpu"), dense_model=lambda: model,
    )  # fmt: skip
    prepared = get_method("sparse_lamp").prepare(ctx)
    final = prepared.finalize(prepared.model)
    assert final[0].weight.tolist() == [[0.0, 2.0, 3.0]] and final[1].weight.tolist() == [[0.0], [10.0]]
