"""ImageNet-style ResNets (7x7/2 stem, max-pool, widths 64-128-256-512), as the paper uses them.

``resnet20_paper`` is the paper's "ResNet-20" (docs/method.md §4): torchvision's ResNet with
BasicBlocks [3, 3, 3, 1], run on 32x32 inputs; its published cost (94.18M FLOPs, 8.52M params)
holds only with a 1000-way classifier. ResNet-18/34 use BasicBlocks, ResNet-50 Bottlenecks
(the stacked layer replaces the 3x3 conv).
"""

from __future__ import annotations

from torch import nn

from tissuenet.models._common import conv_bn, register_pair
from tissuenet.models.resnet_blocks import BasicBlock, Bottleneck, ResNet, make_stages

CONFIGS = {
    "resnet20_paper": (BasicBlock, (3, 3, 3, 1)),
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def _imagenet_resnet(block, depths):
    def build(num_classes, in_channels, builder):
        stem = nn.Sequential(conv_bn(in_channels, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, c_out = make_stages(block, 64, (64, 128, 256, 512), depths, (1, 2, 2, 2), builder)
        return ResNet(stem, stages, c_out, num_classes)

    return build


for _name, (_block, _depths) in CONFIGS.items():
    _size = 32 if _name == "resnet20_paper" else 224
    register_pair(_name, _imagenet_resnet(_block, _depths), family="resnet_imagenet", num_stages=4, input_size=_size)
