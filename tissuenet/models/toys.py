"""The paper's MNIST models: the MLP 784-500-300-10 and a LeNet-5-like CNN (docs/method.md §3).

Their TissueNet forms are built by Algorithm 1 literally: ``unit_counts`` gives ``m_1..m_J``,
units are drawn from the design set (seeded), a normal layer sits between two consecutive
stacked layers (units never exchange information, so without it a channel pair would never mix
with another), and the normal layers are sized to fit; then the classifier.

* MLP, default: one stacked layer of 392 fully connected 2-4-2 units over the 784 pixels, then
  the classifier (-97.4 % MACs, -96.6 % params; the paper's MNIST row: -97 % / -96 %).
* LeNet toy (the paper's Table I, about 1.41k weights): conv 5x5 (1 -> 6) - pool - one stacked
  layer of six 1-1-1 units replacing LeNet's second conv (first conv 5x5 valid, like the conv it
  replaces; second 5x5 same) - pool - the classifier over 6 x 4 x 4 features:
  150 + 6 x 25 x 1 x (1 + 1) + 96 x 10 = 1,410 weights (1,450 with biases and BN).
  The dense LeNet-5 keeps its classic fully connected stack (61,706 parameters).
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import register_pair
from tissuenet.stacked import StackedLayer


def _normal_fc(width: int, out: int) -> list[nn.Module]:
    return [nn.Linear(width, out, bias=False), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]


def _mlp(num_classes, in_channels, builder, input_size=28, hidden=(500, 300), unit_counts=None):
    width = in_channels * input_size * input_size
    layers = [nn.Flatten()]
    if builder is None:
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
    else:
        counts = unit_counts or (width // builder.design_set[0].c_in,)
        for j, units in enumerate(builder.units_counted(counts)):
            stacked = StackedLayer(units, kind="fc", final_relu=True)
            if j > 0 or stacked.in_channels != width:  # Algorithm 1: a normal layer, sized to fit
                layers += _normal_fc(width, stacked.in_channels)
            layers.append(stacked)
            width = stacked.out_channels
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


LENET_KERNEL = 5


def _lenet(num_classes, in_channels, builder, input_size=28, unit_counts=None):
    """conv5x5(6) - pool - conv5x5(16) - pool - fc120 - fc84 - fc; TissueNet: see the module docstring."""
    if builder is None:
        side = (input_size // 2 - 4) // 2
        return nn.Sequential(
            nn.Conv2d(in_channels, 6, LENET_KERNEL, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, LENET_KERNEL),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
    (units,) = builder.units_counted(unit_counts or (6 // builder.design_set[0].c_in,))
    stacked = StackedLayer(units, kernel_size=LENET_KERNEL, padding=0, final_relu=True)
    side = (input_size - LENET_KERNEL + 1) // 2 - LENET_KERNEL + 1  # conv1 valid, pool, unit conv 1 valid
    return nn.Sequential(
        nn.Conv2d(in_channels, stacked.in_channels, LENET_KERNEL),  # the normal layer, sized to fit
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        stacked,
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(stacked.out_channels * (side // 2) ** 2, num_classes),
    )


_SIZE = {"input_size": 28, "unit_counts": None}
register_pair(
    "mlp", _mlp, family="mlp", num_stages=1, input_size=28, in_channels=1, extra=_SIZE | {"hidden": (500, 300)}
)
register_pair("lenet5", _lenet, family="lenet", num_stages=1, input_size=28, in_channels=1, units="1-1-1", extra=_SIZE)
