"""VGG-16 / VGG-19 with BN for CIFAR, classifier = global average pool + one linear layer.

The paper replaces VGG's FC stack by average pooling and one linear layer (docs/method.md §4).
Its VGG text says runs of 3x3 convs become stacked layers alternating with normal convs, and a
normal layer must sit between two stacked layers (units never mix channels). Two readings:

* ``layout="runs"`` (the default): in a replaced stage, the first conv (the one that sets the
  stage's width) stays normal and the rest of the stage's convs become *one* stacked layer. This
  reading reproduces the published VGG-16 cuts (results/paper/presets.toml).
* ``layout="alternate"``: convs alternate normal / stacked, starting with a normal conv, each
  stacked layer replacing one conv.

The "blocks" of a stage are its convs after the first; ``keep_first`` keeps the first of them
dense too (in ``runs``, the stacked layer then replaces the convs after it).

Max-pools use ``ceil_mode`` so 28x28 inputs survive five halvings.
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import conv_bn, register_pair

CONFIGS = {
    "vgg16_bn": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19_bn": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}
LAYOUTS = ("runs", "alternate")


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, c_out: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _stage(s: int, widths, c_in: int, builder, layout: str) -> list[nn.Module]:
    """One stage's layers; ``builder`` decides whether it is replaced (docstring: layouts)."""
    width = widths[0]
    layers = [conv_bn(c_in, width, 3)]
    # convs after the first are the stage's blocks: block b is conv b + 1
    replaced = [builder is not None and builder.replaces(s, b) for b in range(len(widths) - 1)]
    if layout == "runs":
        first = next((b + 1 for b, r in enumerate(replaced) if r), len(widths))
        layers += [conv_bn(width, width, 3) for _ in range(1, first)]
        if first < len(widths):
            layers.append(builder.stacked(f"features.{s}.{first}", width, width, final_relu=True))
        return layers
    for i in range(1, len(widths)):
        stacked = replaced[i - 1] and (i - (replaced.index(True) + 1)) % 2 == 0
        layers.append(
            builder.stacked(f"features.{s}.{i}", width, width, final_relu=True) if stacked else conv_bn(width, width, 3)
        )
    return layers


def _vgg(stages):
    def build(num_classes, in_channels, builder, layout="runs"):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        layers, c_in = [], in_channels
        for s, widths in enumerate(stages, start=1):
            layers += _stage(s, widths, c_in, builder, layout)
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            c_in = widths[-1]
        return VGG(nn.Sequential(*layers), c_in, num_classes)

    return build


for _name, _stages in CONFIGS.items():
    register_pair(
        _name, _vgg(_stages), family="vgg", num_stages=len(_stages), tags=("cifar",), tissue_extra={"layout": "runs"}
    )
