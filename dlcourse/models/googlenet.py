"""Network in Network (2013) and GoogLeNet (2014): 1x1 convolutions, global average
pooling, and inception modules.

Sources: Lin, Chen, Yan, "Network in network", ICLR 2014 (arXiv:1312.4400): mlpconv
layers (a convolution followed by 1x1 convolutions) and global average pooling instead of
fully connected layers. Szegedy et al., "Going deeper with convolutions", CVPR 2015
(arXiv:1409.4842): Fig. 2 (naive and dimension-reduced inception modules), Table 1 (the
GoogLeNet layer table) and section 5 (auxiliary classifiers).

Layout (as in torchvision's models/): `GOOGLENET_CFG` holds Table 1's inception rows as
data; `Inception`, `NaiveInception`, `AuxHead` and `NiNBlock` are the blocks; the builders
are one line each.

    googlenet()                 the paper's layout (biases, LRN, 5x5 branch, no BN)
    googlenet_torchvision()     torchvision's layout: 6,624,904 parameters, and
                                13,004,888 with aux_logits=True
    nin()                       NiN with AlexNet-sized mlpconv blocks and global pooling
    nin_small(), inception_small()   MNIST-sized versions built from the same blocks

What reproduces torchvision's counts (tests/test_googlenet.py checks both numbers):
every convolution is conv (no bias) -> BatchNorm -> ReLU, which adds 2 parameters per
channel instead of 1 bias; the branch that the paper makes 5x5 uses a 3x3 kernel (a slip
that torchvision keeps for compatibility with its pretrained weights); the pool after
inception (4e) is 2x2 instead of 3x3 and there is no LRN (neither has parameters). The
auxiliary heads (conv 1x1 128 with BN, FC 2048 -> 1024, FC 1024 -> classes) add 3,188,968
parameters after (4a) and 3,191,016 after (4d).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from dlcourse.models.alexnet import LocalResponseNorm, he_init

__all__ = [
    "ConvUnit", "NiNBlock", "NiN", "nin", "nin_small", "NaiveInception", "Inception",
    "InceptionSpec", "GOOGLENET_CFG", "AuxHead", "GoogLeNet", "GoogLeNetOutputs", "googlenet",
    "googlenet_torchvision", "inception_small", "SMALL_CFG", "AUX_WEIGHT", "googlenet_loss",
]

AUX_WEIGHT = 0.3   # section 5: each auxiliary loss is added with weight 0.3 during training


class ConvUnit(nn.Sequential):
    """conv -> [BatchNorm] -> ReLU, the unit every GoogLeNet convolution is made of.

    With `batch_norm=True` (torchvision) the convolution has no bias: BatchNorm's shift
    does that job. Without it (the 2014 paper, before batch normalisation existed) the
    convolution has a bias.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 batch_norm: bool = False):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=not batch_norm))
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(c_out, eps=0.001)    # torchvision's eps
        layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


# ---------------------------------------------------------------------------------------
# Network in Network
# ---------------------------------------------------------------------------------------

class NiNBlock(nn.Sequential):
    """An mlpconv layer: a k x k convolution, then two 1x1 convolutions, each with a ReLU.

    The 1x1 convolutions are a small fully connected network applied at every pixel,
    across channels. (B, c_in, H, W) -> (B, c_out, H', W') with H' from the first conv.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, stride, padding), relu=nn.ReLU(inplace=True),
            mlp1=nn.Conv2d(c_out, c_out, 1), relu1=nn.ReLU(inplace=True),
            mlp2=nn.Conv2d(c_out, c_out, 1), relu2=nn.ReLU(inplace=True),
        ))


class NiN(nn.Module):
    """NiN: mlpconv blocks with max-pooling between them; the last block has one map per
    class and global average pooling turns each map into that class's score. No FC layer.

    blocks: (c_out, kernel, stride, padding) per mlpconv block; the last block's c_out is
    replaced by num_classes. Dropout precedes the last block (as in the paper).
    """

    def __init__(self, blocks: list[tuple[int, int, int, int]], num_classes: int = 1000,
                 in_channels: int = 3, pool: tuple[int, int] = (3, 2), dropout: float = 0.5):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, (c_out, k, s, p) in enumerate(blocks, start=1):
            last = i == len(blocks)
            if last:
                layers["dropout"] = nn.Dropout(dropout)
                c_out = num_classes
            layers[f"mlpconv{i}"] = NiNBlock(c_in, c_out, k, s, p)
            if not last:
                layers[f"pool{i}"] = nn.MaxPool2d(*pool)
            c_in = c_out
        layers["gap"] = nn.AdaptiveAvgPool2d(1)          # (B, classes, H, W) -> (B, classes, 1, 1)
        layers["flatten"] = nn.Flatten()                 # (B, classes): the class scores
        self.net = nn.Sequential(layers)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def nin(num_classes: int = 1000, **kwargs) -> NiN:
    """NiN for 224x224 images with AlexNet's filter sizes and widths (as in deck 002's
    source); the paper details its CIFAR-10 model and describes the ImageNet one only as
    four mlpconv layers."""
    blocks = [(96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (num_classes, 3, 1, 1)]
    return NiN(blocks, num_classes, **kwargs)


def nin_small(num_classes: int = 10, **kwargs) -> NiN:
    """A 28x28 MNIST NiN: 28 -> pool 13 -> pool 6 -> class maps 6x6 -> global average."""
    blocks = [(32, 5, 1, 2), (64, 3, 1, 1), (num_classes, 3, 1, 1)]
    return NiN(blocks, num_classes, in_channels=1, **kwargs)


# ---------------------------------------------------------------------------------------
# Inception modules
# ---------------------------------------------------------------------------------------

class NaiveInception(nn.Module):
    """Fig. 2(a): 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool side by side on one
    input, concatenated along channels. Every branch keeps H and W (stride 1, "same"
    padding), so the output has c1 + c3 + c5 + c_in channels: the pool branch passes all
    input channels through, which is why stacking naive modules grows the depth.
    """

    def __init__(self, c_in: int, c1: int, c3: int, c5: int):
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(c_in, c1, 1), nn.ReLU(inplace=True))
        self.branch3 = nn.Sequential(nn.Conv2d(c_in, c3, 3, padding=1), nn.ReLU(inplace=True))
        self.branch5 = nn.Sequential(nn.Conv2d(c_in, c5, 5, padding=2), nn.ReLU(inplace=True))
        self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = c1 + c3 + c5 + c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


@dataclass(frozen=True)
class InceptionSpec:
    """One row of Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""

    c1: int
    c3_reduce: int
    c3: int
    c5_reduce: int
    c5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.c1 + self.c3 + self.c5 + self.pool_proj


class Inception(nn.Module):
    """Fig. 2(b), the module with dimension reductions: 1x1 "reduce" convolutions shrink
    the depth before the expensive 3x3 and 5x5 convolutions, and a 1x1 "projection" after
    the pool keeps the pool branch from passing every input channel through.

    (B, c_in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W), branches concatenated in the
    order 1x1, 3x3, 5x5, pool. `branch5_kernel=3` gives torchvision's variant.
    """

    def __init__(self, c_in: int, spec: InceptionSpec, batch_norm: bool = False,
                 branch5_kernel: int = 5):
        super().__init__()
        u = lambda a, b, k, p=0: ConvUnit(a, b, k, padding=p, batch_norm=batch_norm)  # noqa: E731
        self.branch1 = u(c_in, spec.c1, 1)
        self.branch3 = nn.Sequential(u(c_in, spec.c3_reduce, 1), u(spec.c3_reduce, spec.c3, 3, 1))
        self.branch5 = nn.Sequential(u(c_in, spec.c5_reduce, 1),
                                     u(spec.c5_reduce, spec.c5, branch5_kernel, branch5_kernel // 2))
        # torchvision's pool branch rounds up (ceil_mode); at stride 1 that changes nothing
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                         u(c_in, spec.pool_proj, 1))
        self.out_channels = spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


# Table 1 of the paper: the nine inception modules, with "M" where a 3x3/2 max-pool sits.
GOOGLENET_CFG: list = [
    ("3a", InceptionSpec(64, 96, 128, 16, 32, 32)),       # 192 -> 256 channels, 28x28
    ("3b", InceptionSpec(128, 128, 192, 32, 96, 64)),     # -> 480
    "M",                                                  # 28 -> 14
    ("4a", InceptionSpec(192, 96, 208, 16, 48, 64)),      # -> 512 (auxiliary head 1 here)
    ("4b", InceptionSpec(160, 112, 224, 24, 64, 64)),     # -> 512
    ("4c", InceptionSpec(128, 128, 256, 24, 64, 64)),     # -> 512
    ("4d", InceptionSpec(112, 144, 288, 32, 64, 64)),     # -> 528 (auxiliary head 2 here)
    ("4e", InceptionSpec(256, 160, 320, 32, 128, 128)),   # -> 832
    "M",                                                  # 14 -> 7
    ("5a", InceptionSpec(256, 160, 320, 32, 128, 128)),   # -> 832
    ("5b", InceptionSpec(384, 192, 384, 48, 128, 128)),   # -> 1024, then global average pool
]


class AuxHead(nn.Module):
    """An auxiliary classifier (section 5): 5x5/3 average pool (14x14 -> 4x4), 1x1 conv
    with 128 filters and ReLU, FC 1024 with ReLU, dropout 0.7, linear classifier.

    `adaptive=True` (torchvision) pools adaptively to 4x4 instead: same output size at
    14x14 (windows of 4 or 5 pixels rather than 5), and defined for any input size.
    """

    def __init__(self, c_in: int, num_classes: int, batch_norm: bool = False, dropout: float = 0.7,
                 adaptive: bool = False, conv_channels: int = 128, hidden: int = 1024):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4) if adaptive else nn.AvgPool2d(5, stride=3)
        self.conv = ConvUnit(c_in, conv_channels, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(conv_channels * 4 * 4, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x)).flatten(1)                  # (B, 128 * 4 * 4) = (B, 2048)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))   # (B, classes)


@dataclass
class GoogLeNetOutputs:
    """What GoogLeNet returns in training mode when it has auxiliary heads."""

    logits: torch.Tensor
    aux1: torch.Tensor
    aux2: torch.Tensor | None = None      # None for a network with a single auxiliary head


class GoogLeNet(nn.Module):
    """GoogLeNet: a stem (7x7/2 conv, pool, 1x1 and 3x3 convs, pool), nine inception
    modules with two more pools, global average pooling, dropout and one linear layer.

    (B, 3, 224, 224): stem -> (192, 28, 28); 3a-3b -> (480, 28, 28); pool -> 14x14;
    4a-4e -> (832, 14, 14); pool -> 7x7; 5a-5b -> (1024, 7, 7); average -> (1024,) -> logits.
    With `aux_logits=True` the model returns `GoogLeNetOutputs` in training mode and only
    the main logits in eval mode (the auxiliary heads are discarded at inference).

    Paper vs torchvision (`torchvision=True`): see the module docstring.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, torchvision: bool = False,
                 dropout: float | None = None, cfg: list | None = None, stem: nn.Module | None = None,
                 stem_channels: int = 192, aux_after: tuple[str, ...] = ("4a", "4d"),
                 aux_sizes: tuple[int, int] = (128, 1024), init_weights: bool = True):
        super().__init__()
        bn = torchvision
        self.stem = stem if stem is not None else self._stem(bn, paper_lrn=not torchvision)
        self.aux_after = aux_after if aux_logits else ()
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        aux: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, n_pool = stem_channels, 3
        for row in cfg or GOOGLENET_CFG:
            if row == "M":
                # the paper pools 3x3/2 both times; torchvision's second pool is 2x2/2 (both 14 -> 7)
                k = 2 if torchvision and n_pool == 4 else 3
                blocks[f"pool{n_pool}"] = nn.MaxPool2d(k, 2, ceil_mode=True)
                n_pool += 1
                continue
            name, spec = row
            blocks[f"inception{name}"] = Inception(c_in, spec, batch_norm=bn,
                                                   branch5_kernel=3 if torchvision else 5)
            c_in = spec.out_channels
            if name in self.aux_after:
                aux[f"aux_{name}"] = AuxHead(c_in, num_classes, batch_norm=bn, adaptive=torchvision,
                                             conv_channels=aux_sizes[0], hidden=aux_sizes[1])
        self.blocks = nn.Sequential(blocks)
        self.aux = nn.ModuleDict(aux)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # the paper drops 40% before the classifier; torchvision 20%
        self.dropout = nn.Dropout(dropout if dropout is not None else (0.2 if torchvision else 0.4))
        self.fc = nn.Linear(c_in, num_classes)
        if init_weights:
            he_init(self)        # the paper does not say how it initialised; see he_init

    @staticmethod
    def _stem(bn: bool, paper_lrn: bool) -> nn.Sequential:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=ConvUnit(3, 64, 7, stride=2, padding=3, batch_norm=bn),   # 224 -> 112
            pool1=nn.MaxPool2d(3, 2, ceil_mode=True))                       # 112 -> 56
        if paper_lrn:
            layers["norm1"] = LocalResponseNorm(5, 1e-4, 0.75, 2.0)
        layers["conv2"] = ConvUnit(64, 64, 1, batch_norm=bn)               # 1x1 reduce
        layers["conv3"] = ConvUnit(64, 192, 3, padding=1, batch_norm=bn)   # 56
        if paper_lrn:
            layers["norm2"] = LocalResponseNorm(5, 1e-4, 0.75, 2.0)
        layers["pool2"] = nn.MaxPool2d(3, 2, ceil_mode=True)               # 56 -> 28
        return nn.Sequential(layers)

    def forward(self, x: torch.Tensor):
        x = self.stem(x)
        aux_out = []
        for name, block in self.blocks.named_children():
            x = block(x)
            key = f"aux_{name.removeprefix('inception')}"
            if self.training and key in self.aux:
                aux_out.append(self.aux[key](x))
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        if self.training and aux_out:
            return GoogLeNetOutputs(logits, *aux_out)
        return logits


def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet as in the paper (biases, LRN in the stem, 5x5 branches, dropout 0.4)."""
    return GoogLeNet(**kwargs)


def googlenet_torchvision(**kwargs) -> GoogLeNet:
    """torchvision's GoogLeNet: 6,624,904 parameters, 13,004,888 with aux_logits=True."""
    return GoogLeNet(torchvision=True, **kwargs)


# MNIST-sized: a 3x3 stem (28 -> 14 after a pool), two inception modules, a pool to 7x7,
# one more module, global average pooling. Widths follow Table 1's proportions, scaled down.
SMALL_CFG: list = [
    ("3a", InceptionSpec(16, 16, 24, 4, 8, 8)),       # 32 -> 56 channels, 14x14
    ("3b", InceptionSpec(24, 24, 32, 8, 16, 8)),      # -> 80 (auxiliary head here)
    "M",                                              # 14 -> 7
    ("4a", InceptionSpec(32, 24, 48, 8, 16, 16)),     # -> 112
]


def inception_small(num_classes: int = 10, aux_logits: bool = False, **kwargs) -> GoogLeNet:
    """A 28x28 MNIST GoogLeNet from the same blocks, with one optional auxiliary head."""
    stem = nn.Sequential(OrderedDict(conv1=ConvUnit(1, 32, 3, padding=1),      # 28x28
                                     pool1=nn.MaxPool2d(3, 2, padding=1)))      # 28 -> 14
    # one auxiliary head, after 3b: its 5x5/3 average pool reads 14x14 maps as in the paper;
    # 32 maps and 128 hidden units instead of 128 and 1024, in proportion to the small net
    return GoogLeNet(num_classes, aux_logits=aux_logits, cfg=SMALL_CFG, stem=stem, stem_channels=32,
                     aux_after=("3b",), aux_sizes=(32, 128), **kwargs)


def googlenet_loss(outputs, target: torch.Tensor, aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """Cross-entropy of the main logits plus `aux_weight` times each auxiliary loss.

    `outputs` is what GoogLeNet returns: a `GoogLeNetOutputs` in training mode (with
    auxiliary heads), or plain logits (eval mode, or no heads).
    """
    ce = nn.functional.cross_entropy
    if isinstance(outputs, GoogLeNetOutputs):
        aux = [o for o in (outputs.aux1, outputs.aux2) if o is not None]
        return ce(outputs.logits, target) + aux_weight * sum(ce(a, target) for a in aux)
    return ce(outputs, target)
