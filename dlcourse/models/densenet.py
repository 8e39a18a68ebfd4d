"""DenseNet: every layer reads the concatenation of all feature maps before it in its block.

Source: Huang, Liu, van der Maaten, Weinberger, "Densely connected convolutional networks",
CVPR 2017 (Section 3 for the layer, block and transition; Table 1 for DenseNet-121/169/201/264).

- Dense layer (the paper's "DenseNet-B" composite function): BN-ReLU-1x1 conv to bn_size * k
  maps (the bottleneck, 4k), then BN-ReLU-3x3 conv to k maps. It returns only its k new maps.
- Dense block of L layers: layer l reads k0 + (l - 1) k channels (the block input and every
  earlier layer's output, concatenated), so the block outputs k0 + L k channels and has
  L (L + 1) / 2 direct connections (layer l has l inputs: x_0 ... x_{l-1}).
- Transition between blocks: BN-ReLU-1x1 conv to floor(theta * C) channels (compression
  theta = 0.5 in DenseNet-BC) and 2x2 average pooling with stride 2.
- DenseNet-121 (k = 32, blocks 6, 12, 24, 16): 7x7/2 conv to 2k = 64 maps, 3x3/2 max pool,
  the four blocks with three transitions, a final BN-ReLU, global average pooling and a
  linear classifier: 7,978,856 parameters. Its 121 layers are the 2 x 58 convolutions of the
  dense layers, the 3 transition convolutions, the stem convolution and the classifier.

Module names follow torchvision's (features.conv0, denseblock1.denselayer1.conv1, ...,
transition1.conv, norm5, classifier), so state dicts are interchangeable with it.
Fully convolutional DenseNets (Jegou et al. 2017) reuse these blocks for segmentation
(chapter 12).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DenseLayer", "DenseBlock", "Transition", "DenseNet", "cfgs",
    "densenet121", "densenet169", "densenet201", "densenet_small", "block_channels", "block_connections",
]


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * k maps) - BN-ReLU-3x3 conv (k maps): (B, C_in, H, W) -> (B, k, H, W)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        self.in_channels, self.growth_rate = in_channels, growth_rate
        inner = bn_size * growth_rate                                   # 4k: the bottleneck width
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is the concatenation built by the block, a fresh tensor: in-place ReLU is safe
        out = self.conv1(self.relu1(self.norm1(x)))                     # (B, 4k, H, W)
        return self.conv2(self.relu2(self.norm2(out)))                  # (B, k, H, W)


class DenseBlock(nn.ModuleDict):
    """L dense layers; layer l reads torch.cat([x_0, ..., x_{l-1}]); returns all of them concatenated.

    (B, k0, H, W) -> (B, k0 + L k, H, W). `out_channels` says how many.
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
        self.in_channels, self.growth_rate, self.num_layers = in_channels, growth_rate, num_layers
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, dim=1)))          # concatenate, never add
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (C_in -> C_out) then 2x2 average pooling: halves H and W."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            pool=nn.AvgPool2d(2, stride=2),
        ))


class DenseNet(nn.Module):
    """DenseNet-BC: stem, dense blocks separated by compressing transitions, BN-ReLU, pooling, fc.

    growth_rate k; block_config: layers per block; num_init_features: stem output (2k for
    DenseNet-BC); compression theta in (0, 1]; stem "imagenet" (7x7/2 conv + 3x3/2 max pool)
    or "small" (one 3x3 conv, for 28x28 and 32x32 inputs).
    """

    def __init__(self, growth_rate: int = 32, block_config=(6, 12, 24, 16), num_init_features: int = 64,
                 bn_size: int = 4, compression: float = 0.5, num_classes: int = 1000, in_channels: int = 3,
                 stem: str = "imagenet"):
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.growth_rate, self.block_config, self.compression = growth_rate, tuple(block_config), compression
        if stem == "imagenet":
            layers = OrderedDict(
                conv0=nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False),
                norm0=nn.BatchNorm2d(num_init_features),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "small":
            layers = OrderedDict(conv0=nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False))
        else:
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        channels = num_init_features
        for i, n in enumerate(block_config):
            block = DenseBlock(n, channels, growth_rate, bn_size)
            layers[f"denseblock{i + 1}"] = block
            channels = block.out_channels                                   # k0 + L k
            if i != len(block_config) - 1:
                out = int(channels * compression)                           # floor(theta * C)
                layers[f"transition{i + 1}"] = Transition(channels, out)
                channels = out
        layers["norm5"] = nn.BatchNorm2d(channels)                          # the last block's output, normalised
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @property
    def blocks(self) -> list[DenseBlock]:
        return [m for m in self.features if isinstance(m, DenseBlock)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x))                                        # (B, C, h, w)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# Table 1 of Huang et al. (2017): name -> (growth rate k, layers per dense block).
cfgs: dict[str, tuple[int, tuple[int, ...]]] = {
    "densenet121": (32, (6, 12, 24, 16)),
    "densenet169": (32, (6, 12, 32, 32)),
    "densenet201": (32, (6, 12, 48, 32)),
}


def _densenet(name: str, **kwargs) -> DenseNet:
    k, blocks = cfgs[name]
    kwargs.setdefault("num_init_features", 2 * k)        # DenseNet-BC's stem: 2k maps
    return DenseNet(growth_rate=k, block_config=blocks, **kwargs)


def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (k = 32, blocks 6, 12, 24, 16): 7,978,856 parameters."""
    return _densenet("densenet121", **kwargs)


def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (k = 32, blocks 6, 12, 32, 32)."""
    return _densenet("densenet169", **kwargs)


def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (k = 32, blocks 6, 12, 48, 32)."""
    return _densenet("densenet201", **kwargs)


def densenet_small(growth_rate: int = 12, block_config=(4, 4, 4), num_classes: int = 10, in_channels: int = 1,
                   compression: float = 0.5) -> DenseNet:
    """A DenseNet-BC for 28x28 (MNIST) or 32x32 (CIFAR) inputs: 3x3 stem to 2k maps, no max pool."""
    return DenseNet(growth_rate=growth_rate, block_config=block_config, num_init_features=2 * growth_rate,
                    compression=compression, num_classes=num_classes, in_channels=in_channels, stem="small")


def block_channels(block: DenseBlock) -> list[int]:
    """Input channels of every layer of a block, then the block's output: k0, k0 + k, ..., k0 + L k.

    Read from the layers' own convolutions, not from a formula.
    """
    layers = list(block.values())
    last = layers[-1]
    return [layer.conv1.in_channels for layer in layers] + [last.conv1.in_channels + last.conv2.out_channels]


def block_connections(block: DenseBlock) -> int:
    """Direct connections inside a block: layer l reads l tensors (x_0 ... x_{l-1}).

    Counted from the layers' input widths: (C_in - k0) / k earlier layers plus the block input.
    """
    k0, k = block.in_channels, block.growth_rate
    return sum((layer.conv1.in_channels - k0) // k + 1 for layer in block.values())
