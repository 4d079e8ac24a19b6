"""The paper's MNIST models: the MLP 784-500-300-10 and a LeNet-5-like CNN (SPEC section 6).

Their TissueNet forms are built by Algorithm 1 literally (SPEC section 3): ``unit_counts`` gives
``m_1..m_J``, units are drawn from the design set (seeded), and normal layers are sized to fit
between the stacked layers. Default MLP: one stacked layer of 392 fully connected 2-4-2 units
over the 784 pixels, then the classifier (-97 % MACs, as the paper's MNIST row).
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import register_pair
from tissuenet.stacked import StackedLayer


def _mlp(num_classes, in_channels, builder, input_size=28, hidden=(500, 300), unit_counts=None):
    width = in_channels * input_size * input_size
    layers = [nn.Flatten()]
    if builder is None:
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
    else:
        counts = unit_counts or (width // builder.design_set[0].c_in,)
        for units in builder.units_counted(counts):
            stacked = StackedLayer(units, kind="fc", final_relu=True)
            if stacked.in_channels != width:  # a normal layer sized to fit (Algorithm 1)
                layers += [
                    nn.Linear(width, stacked.in_channels, bias=False),
                    nn.BatchNorm1d(stacked.in_channels),
                    nn.ReLU(inplace=True),
                ]
            layers.append(stacked)
            width = stacked.out_channels
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _lenet(num_classes, in_channels, builder, input_size=28, unit_counts=None):
    """conv5x5(6) - pool - conv5x5(16) - pool - fc120 - fc84 - fc; TissueNet: units replace conv2."""
    if builder is None:
        conv2, c2, side = [nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True)], 16, (input_size // 2 - 4) // 2
    else:
        (units,) = builder.units_counted(unit_counts or (6 // builder.design_set[0].c_in,))
        stacked = StackedLayer(units, kernel_size=5, final_relu=True)
        if stacked.in_channels != 6:
            raise ValueError(f"LeNet's stacked layer must take 6 channels, drawn units take {stacked.in_channels}")
        conv2, c2, side = [stacked], stacked.out_channels, input_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        *conv2,
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, 120),
        nn.ReLU(inplace=True),
        nn.Linear(120, 84),
        nn.ReLU(inplace=True),
        nn.Linear(84, num_classes),
    )


_SIZE = {"input_size": 28, "unit_counts": None}
register_pair("mlp", _mlp, family="mlp", num_stages=1, input_size=28, extra=_SIZE | {"hidden": (500, 300)})
register_pair("lenet5", _lenet, family="lenet", num_stages=1, input_size=28, units="1-4-1", extra=_SIZE)
