"""ResNet and its successors, built from one set of residual blocks.

Sources:
- He, Zhang, Ren, Sun, "Deep residual learning for image recognition", CVPR 2016: the basic
  and bottleneck blocks, projection shortcuts, the stage table for 18/34/50/101/152 layers
  (Table 1) and the CIFAR-10 networks with 6n + 2 layers (Section 4.2).
- He, Zhang, Ren, Sun, "Identity mappings in deep residual networks", ECCV 2016:
  pre-activation blocks (BN-ReLU-conv, nothing after the addition).
- Zagoruyko and Komodakis, "Wide residual networks", BMVC 2016: width factor k.
- Xie, Girshick, Dollar, Tu, He, "Aggregated residual transformations for deep neural
  networks" (ResNeXt), CVPR 2017: cardinality through grouped 3x3 convolutions.
- Huang, Sun, Liu, Sedra, Weinberger, "Deep networks with stochastic depth", ECCV 2016.

Layout (torchvision's style): `cfgs` maps a depth to (block class, blocks per stage); block
classes state their contract (`expansion`: output channels = planes * expansion); thin
builders (`resnet50()`) turn a row into a network. Module names follow torchvision's
(conv1, bn1, layer1..layer4, fc, downsample), so state dicts are interchangeable with it.

Block contract: `Block(in_channels, planes, stride=1, **options)` maps
(B, in_channels, H, W) to (B, planes * expansion, H / stride, W / stride). Options shared by
every block:
  shortcut       "projection" (1x1 conv + BN when the shape changes; the paper's option B),
                 "pad" (subsample and zero-pad the new channels, parameter-free; option A,
                 used by the paper's CIFAR networks) or "none" (a plain network: no shortcut)
  survival_prob  stochastic depth: in training the residual branch is kept with this
                 probability (else the block is the shortcut alone); at evaluation the branch
                 is always computed and multiplied by it. 1.0 (default) = an ordinary block.
Bottleneck blocks also take `groups` and `base_width` (ResNeXt and wide bottlenecks) and
`stride_in_1x1`.

Departure from the paper (torchvision's "ResNet v1.5"): a bottleneck that downsamples puts
its stride on the 3x3 convolution, not on the first 1x1 as in the 2016 paper; that changes
no parameter but raises ResNet-50's multiply-adds from about 3.9 G to 4.1 G. `stride_in_1x1=True`
restores the paper's placement.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "PadShortcut", "ResNet", "cfgs",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet",
    "preact_resnet18", "preact_resnet50", "wide_resnet50_2", "resnext50_32x4d",
    "cifar_resnet", "wide_resnet_cifar", "linear_survival_probs", "stage_shapes", "weight_layers",
]

SHORTCUTS = ("projection", "pad", "none")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a batch norm follows and has its own shift)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias: changes the channel count (and subsamples when stride > 1)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A shortcut: keep every `stride`-th pixel and append zero channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]                     # (B, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))                  # (B, C_out, H/s, W/s)


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, with_norm: bool = True):
    """The module that brings x to the block's output shape, or None when x already has it."""
    if kind not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {kind!r}")
    if kind == "none" or (stride == 1 and in_channels == out_channels):
        return None
    if kind == "pad":
        if out_channels < in_channels:
            raise ValueError("a padding shortcut cannot reduce the channel count; use 'projection'")
        return PadShortcut(in_channels, out_channels, stride)
    if not with_norm:                     # pre-activation blocks: a bare 1x1 convolution
        return conv1x1(in_channels, out_channels, stride)
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class _ResidualBlock(nn.Module):
    """What every block shares: the shortcut option and stochastic depth.

    Subclasses build `self.downsample` (or None) and define `branch(x)`, the residual function F.
    """

    expansion = 1
    preactivation = False

    def _init_shared(self, in_channels: int, out_channels: int, stride: int, shortcut: str,
                     survival_prob: float, with_norm: bool = True) -> None:
        if not 0.0 < survival_prob <= 1.0:
            raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.plain = shortcut == "none"
        self.survival_prob = survival_prob
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, with_norm)

    def _branch_active(self) -> bool:
        """Stochastic depth in training: keep the branch with probability survival_prob."""
        if not self.training or self.survival_prob >= 1.0:
            return True
        return bool(torch.rand(()) < self.survival_prob)

    def _scale(self, branch: torch.Tensor) -> torch.Tensor:
        """At evaluation the branch counts with its expected weight, survival_prob (Huang et al.)."""
        return branch if self.training or self.survival_prob >= 1.0 else branch * self.survival_prob


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions: conv-BN-ReLU-conv-BN, add the shortcut, ReLU (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "projection",
                 survival_prob: float = 1.0, groups: int = 1, base_width: int = 64, stride_in_1x1: bool = False):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock has no groups or width options (they belong to Bottleneck)")
        self._init_shared(in_channels, planes, stride, shortcut, survival_prob)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plain:
            return self.relu(self.branch(x))
        identity = x if self.downsample is None else self.downsample(x)
        if not self._branch_active():
            return F.relu(identity)              # dropped: H = ReLU(id(x)); not in place, x may be saved
        return self.relu(self._scale(self.branch(x)) + identity)      # the ReLU comes after the addition


class Bottleneck(_ResidualBlock):
    """1x1 (reduce) - 3x3 - 1x1 (expand to 4 x planes), BN after each, ReLU after the addition.

    width = planes * base_width / 64 * groups is the channel count of the 3x3 convolution:
    64 / 1 gives ResNet-50's blocks, base_width 128 the Wide ResNet-50-2, groups 32 with
    base_width 4 ResNeXt-50 (32x4d).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "projection",
                 survival_prob: float = 1.0, groups: int = 1, base_width: int = 64, stride_in_1x1: bool = False):
        super().__init__()
        out_channels = planes * self.expansion
        width = int(planes * base_width / 64) * groups
        self._init_shared(in_channels, out_channels, stride, shortcut, survival_prob)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)          # see the module docstring
        self.conv1 = conv1x1(in_channels, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))       # (B, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))     # (B, width, H/s, W/s)
        return self.bn3(self.conv3(out))               # (B, 4 planes, H/s, W/s)

    forward = BasicBlock.forward


class PreActBasicBlock(_ResidualBlock):
    """Pre-activation basic block: x + conv(ReLU(BN(conv(ReLU(BN(x)))))); nothing after the addition.

    When the shape changes, the 1x1 projection reads the pre-activated input ReLU(BN(x)), as in
    the authors' code; otherwise the shortcut is x itself, a pure identity path from block to block.
    """

    expansion = 1
    preactivation = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "projection",
                 survival_prob: float = 1.0, groups: int = 1, base_width: int = 64, stride_in_1x1: bool = False):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock has no groups or width options")
        self._init_shared(in_channels, planes, stride, shortcut, survival_prob, with_norm=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=False)             # x is reused by the shortcut: no in-place

    def branch_from_preact(self, a: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.bn2(self.conv1(a))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.bn1(x))                                     # pre-activation
        if self.plain:
            return self.branch_from_preact(a)
        identity = x if self.downsample is None else self.downsample(a)
        if not self._branch_active():
            return identity
        return identity + self._scale(self.branch_from_preact(a))


class PreActBottleneck(_ResidualBlock):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, plus the shortcut."""

    expansion = 4
    preactivation = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "projection",
                 survival_prob: float = 1.0, groups: int = 1, base_width: int = 64, stride_in_1x1: bool = False):
        super().__init__()
        out_channels = planes * self.expansion
        width = int(planes * base_width / 64) * groups
        self._init_shared(in_channels, out_channels, stride, shortcut, survival_prob, with_norm=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.relu = nn.ReLU(inplace=False)

    def branch_from_preact(self, a: torch.Tensor) -> torch.Tensor:
        out = self.conv1(a)
        out = self.conv2(self.relu(self.bn2(out)))
        return self.conv3(self.relu(self.bn3(out)))

    forward = PreActBasicBlock.forward


class ResNet(nn.Module):
    """A stem, one stage per entry of `layers` (the first keeps the resolution, each later one halves
    it and doubles the width), global average pooling and a linear classifier.

    stem: "imagenet" = 7x7/2 conv + 3x3/2 max pool (224x224 inputs -> 56x56 at stage 1);
          "small" = one 3x3/1 conv (CIFAR's 32x32 or MNIST's 28x28 keep their size).
    widths: planes of each stage (the blocks output planes * expansion channels).
    stem_channels: defaults to widths[0].
    survival_probs: one stochastic-depth survival probability per block (in order), or None.
    zero_init_residual: start each post-activation block's last BN at gamma = 0, so that every
        block begins as the identity (Goyal et al. 2017); off by default, as in the paper.
    """

    def __init__(self, block: type[_ResidualBlock], layers: list[int] | tuple[int, ...], num_classes: int = 1000,
                 widths: tuple[int, ...] = (64, 128, 256, 512), stem: str = "imagenet", in_channels: int = 3,
                 stem_channels: int | None = None, shortcut: str = "projection",
                 survival_probs: list[float] | None = None, zero_init_residual: bool = False, **block_options):
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError(f"one width per stage: got {len(widths)} widths for {len(layers)} stages")
        if survival_probs is not None and len(survival_probs) != sum(layers):
            raise ValueError(f"survival_probs needs one value per block ({sum(layers)}), got {len(survival_probs)}")
        self.block, self.layers = block, tuple(layers)
        stem_channels = stem_channels or widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "small":
            self.conv1 = conv3x3(in_channels, stem_channels)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        # a small pre-activation network normalises inside its first block, so its stem is the
        # convolution alone; the ImageNet stem keeps BN-ReLU before max pooling (as the authors' code)
        bare_stem = block.preactivation and stem == "small"
        self.bn1 = nn.Identity() if bare_stem else nn.BatchNorm2d(stem_channels)
        self.relu = nn.Identity() if bare_stem else nn.ReLU(inplace=True)
        probs = iter(survival_probs or [1.0] * sum(layers))
        channels = stem_channels
        for i, (n_blocks, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1              # the first block of stages 2.. halves H, W
                blocks.append(block(channels, planes, stride, shortcut=shortcut,
                                    survival_prob=next(probs), **block_options))
                channels = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        # pre-activation: the last block's output has not been normalised yet
        self.final_bn = nn.BatchNorm2d(channels) if block.preactivation else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        self._initialise(zero_init_residual)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.layers))]

    def _initialise(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")   # He et al. 2015
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))         # imagenet stem: (B, 64, H/4, W/4)
        for stage in self.stages:
            x = stage(x)
        if self.final_bn is not None:
            x = F.relu(self.final_bn(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


# Table 1 of He et al. (2016), as data: depth -> (block, blocks per stage conv2_x .. conv5_x).
cfgs: dict[int, tuple[type[_ResidualBlock], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def weight_layers(block: type[_ResidualBlock], layers) -> int:
    """The depth in the paper's sense: convolutions on the main path plus the stem conv and the fc."""
    per_block = 3 if block in (Bottleneck, PreActBottleneck) else 2
    return per_block * sum(layers) + 2


def resnet(depth: int, **kwargs) -> ResNet:
    """The ImageNet ResNet of `depth` layers from `cfgs` (18, 34, 50, 101 or 152)."""
    if depth not in cfgs:
        raise ValueError(f"depth must be one of {sorted(cfgs)}, got {depth}")
    block, layers = cfgs[depth]
    return ResNet(block, layers, **kwargs)


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2); 11,689,512 parameters."""
    return resnet(18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3); 21,797,672 parameters."""
    return resnet(34, **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: bottlenecks (3, 4, 6, 3); 25,557,032 parameters."""
    return resnet(50, **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: bottlenecks (3, 4, 23, 3); 44,549,160 parameters."""
    return resnet(101, **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: bottlenecks (3, 8, 36, 3); 60,192,808 parameters."""
    return resnet(152, **kwargs)


def preact_resnet18(**kwargs) -> ResNet:
    """ResNet-18's stage table with pre-activation blocks (He et al., ECCV 2016)."""
    return ResNet(PreActBasicBlock, cfgs[18][1], **kwargs)


def preact_resnet50(**kwargs) -> ResNet:
    """ResNet-50's stage table with pre-activation bottlenecks."""
    return ResNet(PreActBottleneck, cfgs[50][1], **kwargs)


def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2 (torchvision's ImageNet variant): every 3x3 convolution twice as wide."""
    return ResNet(Bottleneck, cfgs[50][1], base_width=128, **kwargs)


def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): 32 groups of 4 channels in the first stage's 3x3 convolutions."""
    return ResNet(Bottleneck, cfgs[50][1], groups=32, base_width=4, **kwargs)


def linear_survival_probs(n_blocks: int, p_last: float = 0.5) -> list[float]:
    """Huang et al.'s linear decay rule: block l of L survives with p_l = 1 - l / L * (1 - p_last)."""
    return [1.0 - (l / n_blocks) * (1.0 - p_last) for l in range(1, n_blocks + 1)]


def cifar_resnet(depth: int = 20, num_classes: int = 10, in_channels: int = 3, widths=(16, 32, 64),
                 block: type[_ResidualBlock] = BasicBlock, shortcut: str = "pad", plain: bool = False,
                 stochastic_depth: float | None = None, **kwargs) -> ResNet:
    """The CIFAR-10 networks of He et al. (Section 4.2): 6n + 2 layers, three stages of n basic blocks.

    32x32 (or MNIST's 28x28) inputs, a 3x3 stem; widths 16, 32, 64 by default.
    shortcut "pad" (option A, as in the paper: ResNet-20 has about 0.27 M parameters) or "projection".
    plain=True builds the same stack without any shortcut (the paper's "plain" baselines).
    stochastic_depth=p_L applies the linear decay rule down to survival p_L for the last block.
    """
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNets have 6n + 2 layers (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    probs = linear_survival_probs(3 * n, stochastic_depth) if stochastic_depth is not None else None
    return ResNet(block, (n, n, n), num_classes=num_classes, widths=tuple(widths), stem="small",
                  in_channels=in_channels, shortcut="none" if plain else shortcut, survival_probs=probs, **kwargs)


def wide_resnet_cifar(depth: int = 28, k: int = 10, num_classes: int = 10, in_channels: int = 3) -> ResNet:
    """WRN-depth-k of Zagoruyko and Komodakis: pre-activation basic blocks, widths 16k, 32k, 64k.

    depth = 6n + 4 (n blocks per stage; the 4 counts the stem, the classifier and the two
    projection shortcuts). WRN-28-10 has about 36.5 M parameters (Table 1 of the paper);
    the paper's dropout between the two convolutions is left out.
    """
    if (depth - 4) % 6:
        raise ValueError(f"Wide ResNets have 6n + 4 layers (16, 22, 28, 40, ...), got {depth}")
    n = (depth - 4) // 6
    return ResNet(PreActBasicBlock, (n, n, n), num_classes=num_classes, widths=(16 * k, 32 * k, 64 * k),
                  stem="small", stem_channels=16, in_channels=in_channels)


def stage_shapes(model: nn.Module, input_size=(3, 224, 224), names=None, device=None) -> dict[str, tuple]:
    """Output shape (without the batch axis) of each named top-level child, from one eval pass.

    Works on the `meta` device. `names` defaults to every top-level child that is called.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    shapes: dict[str, tuple] = {}
    children = dict(model.named_children())
    wanted = names or list(children)
    handles = [children[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
               for n in wanted if children.get(n) is not None]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: shapes[n] for n in wanted if n in shapes}
