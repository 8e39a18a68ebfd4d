"""AlexNet (2012) and ZFNet (2013): the deep convolutional networks that won ILSVRC.

Sources: Krizhevsky, Sutskever, Hinton, "ImageNet classification with deep convolutional
neural networks", NIPS 2012 (sections 3.1-3.5 for ReLU, the two GPUs, local response
normalisation and overlapping pooling; section 4 for dropout and augmentation);
Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014 (the
one-stream layout that torchvision ships); Zeiler and Fergus, "Visualizing and
understanding convolutional networks", ECCV 2014 (ZFNet, Fig. 3).

Layout (as in torchvision's models/): each variant is a row of `cfgs` (a tuple of
convolution stages plus the widths of the classifier), `AlexNet` turns a row into
`features` (conv -> ReLU -> [LRN] -> [max-pool] per stage) and `classifier`
(FC -> ReLU -> dropout, twice, then the output layer), and the builders are one line each.

    alexnet()             single stream, 227x227 input:        62,378,344 parameters
    alexnet_two_stream()  the paper's two-GPU split (grouped):  60,965,224 parameters
    alexnet_torchvision() "one weird trick" layout, 224 input:  61,100,840 parameters
    zfnet()               ZFNet, 224 input:                     62,357,608 parameters
    alexnet_unpadded()    deck 001's arithmetic without padding: 28,813,344 weights
    alexnet_small()       a 28x28 MNIST-sized AlexNet built from the same stages

`LocalResponseNorm` is written from the paper's formula (alpha multiplies the plain sum
of squares); PyTorch's `nn.LocalResponseNorm` divides alpha by the window size, so it
needs alpha = 5e-4 to compute the same thing (tests/test_alexnet.py checks both).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LocalResponseNorm", "ConvStage", "AlexNetConfig", "cfgs", "AlexNet", "alexnet",
    "alexnet_two_stream", "alexnet_torchvision", "zfnet", "alexnet_unpadded", "alexnet_small",
    "count_weights", "he_init",
]


class LocalResponseNorm(nn.Module):
    """Local response normalisation across channels, as written in the AlexNet paper:

        b_i = a_i / (k + alpha * sum_{j = i - n//2}^{i + (n-1)//2} a_j^2) ** beta

    where the sum runs over the n neighbouring channels that exist (channels outside
    0..C-1 count as zero). The paper used k=2, n=5, alpha=1e-4, beta=0.75. For odd n the
    window is centred (2 channels on each side for n=5); for even n it reaches one channel
    further back than forward, the same choice as nn.LocalResponseNorm.

    Input (B, C, ...) -> output of the same shape. No parameters.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.dim() < 2:
            raise ValueError(f"expected (B, C, ...), got shape {tuple(a.shape)}")
        before, after = self.size // 2, (self.size - 1) // 2
        c = a.shape[1]
        # zeros for the missing channels: `before` in front of channel 0, `after` behind C-1
        sq = F.pad(a.pow(2), (0, 0) * (a.dim() - 2) + (before, after))   # (B, C + n - 1, ...)
        # window_sum[:, i] = sum of squares over channels i - before .. i + after: n shifted views
        window_sum = sum(sq[:, j:j + c] for j in range(self.size))        # (B, C, ...)
        return a / (self.k + self.alpha * window_sum).pow(self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@dataclass(frozen=True)
class ConvStage:
    """One convolution of an AlexNet-style feature extractor, with what follows it.

    Every convolution is followed by a ReLU; `lrn` adds local response normalisation
    after the ReLU and `pool` a 3x3 max-pool with stride 2 (overlapping: the windows
    overlap by one pixel, section 3.4 of the paper). `groups=2` splits the convolution
    into two independent halves, as the two GPUs did.
    """

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False
    pool: bool = False


@dataclass(frozen=True)
class AlexNetConfig:
    """A whole network: its convolution stages, the classifier widths and the input size."""

    stages: tuple[ConvStage, ...]
    hidden: tuple[int, ...] = (4096, 4096)   # widths of the hidden fully connected layers
    image_size: int = 227                    # the input size the network was designed for
    in_channels: int = 3
    pool_ceil: bool = False                  # ZFNet's pools round up (110 -> 55, 26 -> 13)
    adaptive_pool: int | None = None         # torchvision: average-pool to a fixed 6x6 first


def _paper_stages(groups: int) -> tuple[ConvStage, ...]:
    # groups=2 on CONV2, CONV4 and CONV5: in the paper those layers read only the maps of
    # their own GPU; CONV3 (and the FC layers) read the maps of both GPUs.
    return (
        ConvStage(96, 11, stride=4, lrn=True, pool=True),               # 227 -> 55 -> pool 27
        ConvStage(256, 5, padding=2, groups=groups, lrn=True, pool=True),  # 27 -> 27 -> pool 13
        ConvStage(384, 3, padding=1),                                   # 13
        ConvStage(384, 3, padding=1, groups=groups),                    # 13
        ConvStage(256, 3, padding=1, groups=groups, pool=True),         # 13 -> pool 6
    )


cfgs: dict[str, AlexNetConfig] = {
    # The paper's layer sizes in one stream. The paper says 224x224 inputs, but an 11x11
    # stride-4 convolution without padding gives 55x55 maps (as the paper's figure shows)
    # only from 227x227: (227 - 11) / 4 + 1 = 55.
    "alexnet": AlexNetConfig(_paper_stages(groups=1)),
    "alexnet_two_stream": AlexNetConfig(_paper_stages(groups=2)),
    # Krizhevsky 2014 ("one weird trick"), the layout torchvision ships: 64/192/384/256/256
    # maps, no LRN, padding 2 on CONV1 so that 224 inputs give 55x55, and an adaptive
    # average pool to 6x6 so that any input size reaches the classifier as 256x6x6.
    "alexnet_torchvision": AlexNetConfig((
        ConvStage(64, 11, stride=4, padding=2, pool=True),
        ConvStage(192, 5, padding=2, pool=True),
        ConvStage(384, 3, padding=1),
        ConvStage(256, 3, padding=1),
        ConvStage(256, 3, padding=1, pool=True),
    ), image_size=224, adaptive_pool=6),
    # ZFNet (Zeiler & Fergus, Fig. 3): CONV1 is 7x7 stride 2 instead of 11x11 stride 4 and
    # CONV2 has stride 2, both changes found by visualising AlexNet's first two layers
    # (aliasing, dead filters); one stream with dense connections. 224 -> 110 -> pool 55
    # -> 26 -> pool 13 -> 13 -> 13 -> 13 -> pool 6. The paper does not state CONV1's
    # padding; padding 1 gives its 110x110. Its pools round up (as in Caffe). Its
    # "contrast normalisation" across maps is modelled with the same LRN as AlexNet.
    "zfnet": AlexNetConfig((
        ConvStage(96, 7, stride=2, padding=1, lrn=True, pool=True),
        ConvStage(256, 5, stride=2, lrn=True, pool=True),
        ConvStage(384, 3, padding=1),
        ConvStage(384, 3, padding=1),
        ConvStage(256, 3, padding=1, pool=True),
    ), image_size=224, pool_ceil=True),
    # Deck 001's arithmetic: the paper's filters but no padding anywhere. 227 -> 55 -> 27
    # -> 23 -> 11 -> 9 -> 7 -> 5 -> 2, so FC6 reads only 2x2x256 values.
    "alexnet_unpadded": AlexNetConfig((
        ConvStage(96, 11, stride=4, lrn=True, pool=True),
        ConvStage(256, 5, lrn=True, pool=True),
        ConvStage(384, 3),
        ConvStage(384, 3),
        ConvStage(256, 3, pool=True),
    )),
    # MNIST-sized: the same five stages (LRN after the first two, overlapping 3x3/2 pools
    # after stages 1, 2 and 5) with few maps: 28 -> 28 -> pool 13 -> 13 -> pool 6 -> 6
    # -> 6 -> 6 -> pool 2. Trains in seconds on one CPU thread.
    "alexnet_small": AlexNetConfig((
        ConvStage(16, 5, padding=2, lrn=True, pool=True),
        ConvStage(32, 3, padding=1, lrn=True, pool=True),
        ConvStage(48, 3, padding=1),
        ConvStage(48, 3, padding=1),
        ConvStage(32, 3, padding=1, pool=True),
    ), hidden=(128, 128), image_size=28, in_channels=1),
}


def _spatial(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    span = size + 2 * padding - kernel
    return (-(-span // stride) if ceil else span // stride) + 1


class AlexNet(nn.Module):
    """An AlexNet-style network built from an `AlexNetConfig`.

    `features`: per stage convN -> reluN [-> normN] [-> poolN]; (B, C, H, W) -> (B, C5, s, s).
    `classifier`: flatten -> fc6 -> relu6 -> drop6 -> fc7 -> relu7 -> drop7 -> fc8.
    Dropout (p=0.5 in the paper) follows the first two fully connected layers; it is
    active only in train mode. `feature_shape` is the (C, s, s) the classifier reads.
    """

    def __init__(self, cfg: AlexNetConfig, num_classes: int = 1000, dropout: float = 0.5,
                 image_size: int | None = None, init_weights: bool = True):
        super().__init__()
        size = image_size or cfg.image_size
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = cfg.in_channels
        for i, st in enumerate(cfg.stages, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, st.out_channels, st.kernel, st.stride, st.padding,
                                           groups=st.groups)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            size = _spatial(size, st.kernel, st.stride, st.padding)
            if st.lrn:
                # In the two-GPU original each GPU normalised its own half of the maps; here
                # the window runs over all maps (it differs only at the two halves' border).
                layers[f"norm{i}"] = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
            if st.pool:
                layers[f"pool{i}"] = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=cfg.pool_ceil)
                size = _spatial(size, 3, 2, 0, cfg.pool_ceil)
            c_in = st.out_channels
        if cfg.adaptive_pool:
            layers["avgpool"] = nn.AdaptiveAvgPool2d(cfg.adaptive_pool)
            size = cfg.adaptive_pool
        if size < 1:
            raise ValueError(f"input size {image_size or cfg.image_size} is too small for this network")
        self.features = nn.Sequential(layers)
        self.feature_shape = (c_in, size, size)                    # (256, 6, 6) for AlexNet at 227

        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width, n = c_in * size * size, 6
        for h in cfg.hidden:
            head[f"fc{n}"] = nn.Linear(width, h)
            head[f"relu{n}"] = nn.ReLU(inplace=True)
            head[f"drop{n}"] = nn.Dropout(dropout)
            width, n = h, n + 1
        head[f"fc{n}"] = nn.Linear(width, num_classes)
        self.classifier = nn.Sequential(head)
        if init_weights:
            he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def he_init(model: nn.Module) -> nn.Module:
    """He (Kaiming) initialisation for ReLU networks; returns the model.

    Departure from the papers: AlexNet drew weights from N(0, 0.01) with some biases set
    to 1, and VGG trained configuration A first and started deeper nets from its weights.
    Scaling each layer's weights by its fan (He et al., 2015) lets every one of these
    networks train from scratch, and makes the small MNIST variants converge within the
    fast profile's two epochs (PyTorch's default initialisation is markedly slower there).
    Convolutions: normal with std sqrt(2 / fan_out); linear layers: uniform with the
    ReLU gain over fan_in; biases zero; BatchNorm left at (1, 0).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def alexnet(**kwargs) -> AlexNet:
    """AlexNet's layers in one stream at 227x227: 62,378,344 parameters."""
    return AlexNet(cfgs["alexnet"], **kwargs)


def alexnet_two_stream(**kwargs) -> AlexNet:
    """The paper's two-GPU AlexNet (grouped CONV2, CONV4, CONV5): 60,965,224 parameters."""
    return AlexNet(cfgs["alexnet_two_stream"], **kwargs)


def alexnet_torchvision(**kwargs) -> AlexNet:
    """The "one weird trick" layout that torchvision ships: 61,100,840 parameters."""
    return AlexNet(cfgs["alexnet_torchvision"], **kwargs)


def zfnet(**kwargs) -> AlexNet:
    """ZFNet (ILSVRC 2013): 7x7 stride-2 CONV1, stride-2 CONV2, 224x224 input."""
    return AlexNet(cfgs["zfnet"], **kwargs)


def alexnet_unpadded(**kwargs) -> AlexNet:
    """Deck 001's AlexNet without padding (a teaching count, not a published network)."""
    return AlexNet(cfgs["alexnet_unpadded"], **kwargs)


def alexnet_small(num_classes: int = 10, **kwargs) -> AlexNet:
    """A 28x28 single-channel AlexNet (same stages, few maps) for MNIST in the fast profile."""
    return AlexNet(cfgs["alexnet_small"], num_classes=num_classes, **kwargs)


def count_weights(model: nn.Module, biases: bool = True) -> int:
    """Parameters of `model`; with `biases=False` only the tensors named `weight`."""
    return sum(p.numel() for name, p in model.named_parameters() if biases or not name.endswith("bias"))
