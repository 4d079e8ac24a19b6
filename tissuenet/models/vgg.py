"""VGG-16 / VGG-19 with BN for CIFAR, classifier = global average pool + one linear layer.

The paper replaces VGG's FC stack by average pooling and one linear layer (SPEC section 3).
TissueNet: inside a replaced stage, the convs alternate normal / stacked, starting with a normal
conv (the one that sets the stage's width), so consecutive stacked layers are always separated
by a normal layer. Max-pools use ``ceil_mode`` so 28x28 inputs survive five halvings.
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import conv_bn, register_pair

CONFIGS = {
    "vgg16_bn": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19_bn": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, c_out: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _vgg(stages):
    def build(num_classes, in_channels, builder):
        layers, c_in = [], in_channels
        for s, widths in enumerate(stages, start=1):
            for i, width in enumerate(widths):
                if builder is not None and i % 2 == 1 and c_in == width and builder.replaces(s, i):
                    layers.append(builder.stacked(f"features.{s}.{i}", c_in, width, final_relu=True))
                else:
                    layers.append(conv_bn(c_in, width, 3))
                c_in = width
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        return VGG(nn.Sequential(*layers), c_in, num_classes)

    return build


for _name, _stages in CONFIGS.items():
    register_pair(_name, _vgg(_stages), family="vgg", num_stages=len(_stages), tags=("cifar",))
