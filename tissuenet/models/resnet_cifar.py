"""CIFAR ResNets of He et al. (2016): depth 6n+2, widths 16-32-64, 3x3 stem.

Shortcut: option B (1x1 conv + BN where the shape changes), as in Torch-Pruning's CIFAR
benchmarks, because structured pruners cannot trace option A's zero-padding lambda. This costs
a few thousand parameters more than the textbook option-A counts (ResNet-56: 0.86M vs 0.85M).
"""

from __future__ import annotations

from tissuenet.models._common import conv_bn, register_pair
from tissuenet.models.resnet_blocks import BasicBlock, ResNet, make_stages

DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}


def _cifar_resnet(depth: int):
    n = DEPTHS[depth]

    def build(num_classes, in_channels, builder):
        stages, c_out = make_stages(BasicBlock, 16, (16, 32, 64), (n, n, n), (1, 2, 2), builder)
        return ResNet(conv_bn(in_channels, 16, 3), stages, c_out, num_classes)

    return build


for _depth in DEPTHS:
    register_pair(f"resnet{_depth}", _cifar_resnet(_depth), family="resnet_cifar", num_stages=3, tags=("cifar",))
