"""The paper's trade-off metrics (docs/method.md §6; journal eq. 9, and the arXiv-era ratio form).

``a``: top-1 accuracy, ``f``: FLOPs (or MACs), ``p``: parameters; ``_b`` the baseline, ``_n`` the
compressed model. Only ratios of like quantities enter, so accuracies may be given in percent or
as fractions, and costs as FLOPs or MACs, as long as baseline and model use the same unit.
The baseline itself scores 1; higher is better.
"""

from __future__ import annotations

import math

# The weightings (w1 resource, w2 accuracy) the paper reports: balanced, accuracy, resource.
WEIGHTINGS = ((1, 1), (1, 4), (4, 1))


def _tradeoff(base_acc: float, acc: float, base_cost: float, cost: float, w1: float, w2: float) -> float:
    if base_acc <= 0 or base_cost <= 0:
        raise ValueError("baseline accuracy and cost must be positive")
    return math.exp(w1 * (base_cost - cost) / base_cost) / math.exp(w2 * (base_acc - acc) / base_acc)


def tca(base_acc: float, acc: float, base_flops: float, flops: float, w1: float = 1, w2: float = 1) -> float:
    """Trade-off between Computation and Accuracy: exp(w1*(f_b-f_n)/f_b) / exp(w2*(a_b-a_n)/a_b)."""
    return _tradeoff(base_acc, acc, base_flops, flops, w1, w2)


def tsa(base_acc: float, acc: float, base_params: float, params: float, w1: float = 1, w2: float = 1) -> float:
    """Trade-off between Storage and Accuracy: TCA with parameters in place of FLOPs."""
    return _tradeoff(base_acc, acc, base_params, params, w1, w2)


def tca_ratio(base_acc: float, acc: float, base_flops: float, flops: float) -> float:
    """Ratio form of the MNIST table (journal Table III): (f_b / f_n) * (a_n / a_b)."""
    return (base_flops / flops) * (acc / base_acc)


def tsa_ratio(base_acc: float, acc: float, base_params: float, params: float) -> float:
    """Ratio form with parameters: (p_b / p_n) * (a_n / a_b)."""
    return (base_params / params) * (acc / base_acc)
