"""MobileNetV2 for CIFAR (stride 1 in the stem and the second stage), width 1.0.

TissueNet for light-weight nets (docs/method.md §1, §4): the units copy the replaced ops' kernel sizes
and groups. A replaced inverted-residual block becomes ``m`` independent units, each
``1x1 (c_in' -> c_h) -> depthwise 3x3 (c_h) -> 1x1 (c_h -> c_out')``: the two pointwise convs
turn into grouped convs (groups = m) and the depthwise conv, already per-channel, is unchanged.
Only blocks with an identity shortcut (same width, stride 1) are replaced, so a stage's first
block never is; ``keep_first`` keeps the first *replaceable* block (the stage's second) dense.
``convs = {"head": "2-c_h-8"}`` makes the 320 -> 1280 head conv a stacked layer of 1x1 units.
The default unit 2-12-2 keeps the expansion factor 6. Hybrid design sets are not supported here.
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import conv_bn, register_pair

# (expansion t, output channels c, repeats n, first stride s); CIFAR: s=1 in the second stage.
CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, hidden: int, groups: int = 1) -> None:
        super().__init__()
        layers = [] if hidden == c_in else [conv_bn(c_in, hidden, 1, groups=groups, act=nn.ReLU6)]
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            conv_bn(hidden, c_out, 1, groups=groups, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, stem, stages, c_out: int, num_classes: int, head: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = stem
        self.features = nn.Sequential(*stages)
        self.head = head or conv_bn(c_out, 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.head(self.features(self.stem(x)))).flatten(1))


def _build(num_classes, in_channels, builder):
    c_in, stages = 32, []
    for s, (t, c, n, first_stride) in enumerate(CONFIG, start=1):
        blocks = []
        for b in range(n):
            stride = first_stride if b == 0 else 1
            identity = stride == 1 and c_in == c
            if builder is not None and identity and builder.replaces(s, b - 1 if b else 0):
                units = builder.units_for(f"features.{s - 1}.{b}", c_in, c)
                if len(set(units)) > 1:
                    raise ValueError("MobileNetV2 TissueNet blocks take one unit spec, not a hybrid design set")
                blocks.append(InvertedResidual(c_in, c, 1, hidden=len(units) * units[0].c_h, groups=len(units)))
            else:
                blocks.append(InvertedResidual(c_in, c, stride, hidden=c_in * t))
            c_in = c
        stages.append(nn.Sequential(*blocks))
    head_units = builder.conv_units("head") if builder is not None else None
    head = None
    if head_units is not None:  # the 320 -> 1280 pointwise head conv as 1x1 units (kernel copied)
        head = builder.stacked("head", c_in, 1280, head_units, kernel_size=1, final_relu=True)
    return MobileNetV2(conv_bn(in_channels, 32, 3, act=nn.ReLU6), stages, c_in, num_classes, head)


register_pair("mobilenetv2", _build, family="mobilenetv2", num_stages=len(CONFIG), units="2-12-2", tags=("cifar",))
