"""Residual blocks and the stage loop shared by the CIFAR and ImageNet-style ResNets.

TissueNet (docs/method.md §4): in a basic block the two 3x3 convs become one stacked layer (units
2-4-2, or 2-4-4 where the block doubles its width); in a bottleneck the stacked layer replaces
the 3x3 conv. Shortcuts are kept: identity, or 1x1 conv + BN where the shape changes.
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import conv_bn


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return conv_bn(c_in, c_out, k=1, stride=stride, act=None)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, stacked: nn.Module | None = None) -> None:
        super().__init__()
        self.body = stacked or nn.Sequential(conv_bn(c_in, width, 3, stride), conv_bn(width, width, 3, act=None))
        self.shortcut = _shortcut(c_in, width, stride)
        self.relu = nn.ReLU(inplace=True)
        self.fast = None  # deployed: body + residual add + ReLU in one kernel (tissuenet.kernels)

    def forward(self, x):
        if self.fast is not None and not self.training:
            return self.fast(x)
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, stacked: nn.Module | None = None) -> None:
        super().__init__()
        c_out = width * self.expansion
        mid = stacked or conv_bn(width, width, 3, stride)
        self.body = nn.Sequential(conv_bn(c_in, width, 1), mid, conv_bn(width, c_out, 1, act=None))
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def make_stages(block, c_in, widths, depths, strides, builder):
    """Stages ``layer1..layerS``; blocks chosen by ``builder`` become stacked layers."""
    stages = []
    for s, (width, depth, first_stride) in enumerate(zip(widths, depths, strides), start=1):
        blocks = []
        for b in range(depth):
            stride = first_stride if b == 0 else 1
            stacked = None
            single = builder.conv_units(f"{s}.{b}") if builder is not None else None
            if builder is not None and builder.replaces(s, b):
                if block is BasicBlock:
                    stacked = builder.stacked(f"layer{s}.{b}", c_in, width, stride=stride)
                else:
                    stacked = builder.stacked(f"layer{s}.{b}", width, width, stride=stride, final_relu=True)
            elif single is not None and block is BasicBlock:  # only the block's first 3x3 conv becomes units
                first = builder.stacked(f"layer{s}.{b}.conv1", c_in, width, single, stride=stride, final_relu=True)
                stacked = nn.Sequential(first, conv_bn(width, width, 3, act=None))
            elif single is not None:  # a bottleneck's 3x3 conv
                stacked = builder.stacked(f"layer{s}.{b}.conv2", width, width, single, stride=stride, final_relu=True)
            blocks.append(block(c_in, width, stride, stacked))
            c_in = width * block.expansion
        stages.append(nn.Sequential(*blocks))
    return stages, c_in


class ResNet(nn.Module):
    """Stem, stages ``layer1..``, global average pool, one linear classifier."""

    def __init__(self, stem: nn.Module, stages, c_out: int, num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        for i, stage in enumerate(stages, start=1):
            self.add_module(f"layer{i}", stage)
        self.num_stages = len(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.pool(x).flatten(1))
