"""Built-in backbones; importing this package fills the registry."""

from tissuenet.models import mobilenetv2, resnet_cifar, resnet_imagenet, toys, vgg  # noqa: F401
