"""Apply a registered method outside a sweep (asv benchmarks, notebooks): no training, no store.

``prepare_standalone("prune_l1", "resnet20", "macs_reduction", 0.5)`` returns the method's
``Prepared`` (its model, untrained beyond what the method itself does), starting from a freshly
initialised dense model with distinct BN scales (as a trained checkpoint has).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.contract import JobContext, Prepared, Target, get_method
from benchmarks.data.datasets import make_loaders
from benchmarks.suites.settings import BudgetConfig
from tissuenet.registry import create_model_for_input


def prepare_standalone(
    method: str,
    model: str,
    kind: str = "none",
    value: float | None = None,
    options=None,
    *,
    num_classes=10,
    in_channels=1,
    input_size=28,
    seed=0,
) -> Prepared:
    def dense():
        torch.manual_seed(seed)
        net = create_model_for_input(model, num_classes, in_channels, input_size)
        gen = torch.Generator().manual_seed(seed)
        for m in net.modules():  # fresh BN scales all equal 1, which ties every channel
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.data = torch.rand(m.weight.shape, generator=gen) * 0.8 + 0.2
        return net

    _, loader, _ = make_loaders("synthetic", batch_size=32, seed=seed)
    ctx = JobContext(
        dataset="synthetic",
        model_name=model,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        seed=seed,
        options=dict(options or {}),
        target=Target(kind, value),
        budgets=BudgetConfig(dense_epochs=1, finetune_epochs=1),
        device=torch.device("cpu"),
        dense_model=dense,
        train_loader=loader,
        train=lambda *a, **k: None,
    )
    torch.manual_seed(seed)
    prepared = get_method(method).prepare(ctx)
    prepared.without_training()
    return prepared
