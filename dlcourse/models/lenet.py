"""LeNet-1, LeNet-4 and LeNet-5: the first convolutional networks trained end to end.

Sources: LeCun et al., "Gradient-based learning applied to document recognition",
Proc. IEEE 1998 (LeNet-5, Table I for the C3 connections) and LeCun et al., "Comparison
of learning algorithms for handwritten digit recognition", 1995 (LeNet-1, LeNet-4 and
boosted LeNet-4).

Layout (as in torchvision's models/): a table of configurations, two small blocks and thin
builders. Every network takes MNIST's 28x28 images. The 32x32 networks of the papers
(LeNet-4, LeNet-5) padded the digits into a 32x32 field; here the first convolution pads
by 2 instead, which gives the same 28x28 C1 maps.

Layer names follow the papers: C = convolution, S = subsampling (pooling), F = fully
connected, numbered by position, so `summary(lenet5())` reads like the 1998 table.

Modern LeNet-5 (`lenet5()`): full C3, ReLU, max pooling, linear output: 61,706 parameters.
1998 LeNet-5 (`lenet5_1998()`): sparse C3 (1,516), trainable subsampling (S2 12, S4 32),
scaled tanh; departures from the paper are commented where they happen.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LeNet", "LeNetConfig", "cfgs", "C3_TABLE", "ScaledTanh", "Subsampling", "SparseConv2d",
    "LeNet5_1998", "lenet1", "lenet4", "lenet5", "lenet5_1998", "BoostedLeNet4",
]


@dataclass(frozen=True)
class LeNetConfig:
    """One LeNet variant: feature maps per convolution stage and hidden fully connected widths."""

    convs: tuple[int, ...]      # output channels of each 5x5 convolution (each followed by a 2x2 pool)
    hidden: tuple[int, ...]     # widths of the hidden fully connected layers
    first_padding: int          # 2 = the paper's 32x32 input field; 0 = a 28x28 field (LeNet-1)


cfgs: dict[str, LeNetConfig] = {
    # 28x28 -> 4@24x24 -> pool 12x12 -> 8@8x8 -> pool 4x4 -> 10 outputs.
    # (The slides' "eight 12x12 maps" are the pooled maps that conv 2 reads; its own
    # output is 8x8. The 1995 network connected conv 2 partially; here it is full.)
    "lenet1": LeNetConfig(convs=(4, 8), hidden=(), first_padding=0),
    # 32x32 field -> 4@28x28 -> 14x14 -> 16@10x10 -> 5x5 -> 120 -> 10.
    "lenet4": LeNetConfig(convs=(4, 16), hidden=(120,), first_padding=2),
    # 32x32 field -> 6@28x28 -> 14x14 -> 16@10x10 -> 5x5 -> 120 -> 84 -> 10.
    "lenet5": LeNetConfig(convs=(6, 16), hidden=(120, 84), first_padding=2),
}

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _make(table: dict, key: str, what: str):
    if key not in table:
        raise ValueError(f"{what} must be one of {sorted(table)}, got {key!r}")
    return table[key]


class LeNet(nn.Module):
    """A LeNet built from a `LeNetConfig`: `features` (conv, activation, pool)* then `classifier`.

    activation: "relu" (modern) or "sigmoid"/"tanh" (classic); pool: "max" (modern) or "avg".
    Input (B, 1, 28, 28) -> logits (B, num_classes).
    """

    def __init__(self, cfg: LeNetConfig, num_classes: int = 10, activation: str = "relu",
                 pool: str = "max", in_channels: int = 1, image_size: int = 28):
        super().__init__()
        act, pool_cls = _make(_ACTIVATIONS, activation, "activation"), _make(_POOLS, pool, "pool")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        n, size, c_in = 1, image_size, in_channels
        for i, c_out in enumerate(cfg.convs):
            pad = cfg.first_padding if i == 0 else 0
            layers[f"C{n}"] = nn.Conv2d(c_in, c_out, kernel_size=5, padding=pad)
            layers[f"act{n}"] = act()
            layers[f"S{n + 1}"] = pool_cls(kernel_size=2, stride=2)
            size = (size + 2 * pad - 5 + 1) // 2          # conv 5x5 stride 1, then pool 2x2 stride 2
            c_in, n = c_out, n + 2
        self.features = nn.Sequential(layers)
        self.feature_shape = (c_in, size, size)          # e.g. (16, 5, 5) for LeNet-5

        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = c_in * size * size
        for h in cfg.hidden:
            # In LeNet-5 this first layer (F5) is the paper's C5: a 5x5 convolution over 5x5
            # maps is exactly a linear layer on the flattened maps (same 48,120 parameters).
            head[f"F{n}"] = nn.Linear(width, h)
            head[f"act{n}"] = act()
            width, n = h, n + 1
        head["output"] = nn.Linear(width, num_classes)
        self.classifier = nn.Sequential(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def lenet1(**kwargs) -> LeNet:
    """LeNet-1 (1989/1995): two conv stages, output fully connected to the 8@4x4 maps."""
    kwargs.setdefault("activation", "tanh")
    kwargs.setdefault("pool", "avg")
    return LeNet(cfgs["lenet1"], **kwargs)


def lenet4(**kwargs) -> LeNet:
    """LeNet-4 (1995): 4 and 16 maps, one hidden layer of 120 units."""
    kwargs.setdefault("activation", "tanh")
    kwargs.setdefault("pool", "avg")
    return LeNet(cfgs["lenet4"], **kwargs)


def lenet5(**kwargs) -> LeNet:
    """Modern LeNet-5: full C3, ReLU, max pooling, linear output. 61,706 parameters."""
    return LeNet(cfgs["lenet5"], **kwargs)


class BoostedLeNet4(nn.Module):
    """Boosted LeNet-4 (1995): several LeNet-4s whose outputs are added.

    The paper trained the members one after another on examples the earlier ones got
    wrong (boosting); this module is only the ensemble at test time (softmax outputs summed).
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("BoostedLeNet4 needs at least one member network")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).softmax(dim=1) for m in self.members]).sum(0).log()


# ---------------------------------------------------------------------------------------
# LeNet-5 as published in 1998
# ---------------------------------------------------------------------------------------

# Table I of the 1998 paper, as data: C3_TABLE[j] = the S2 maps that C3 map j reads.
# Maps 0-5 read 3 neighbouring maps, 6-11 read 4 neighbouring ones, 12-14 four
# non-neighbouring ones, and map 15 reads all six: 60 connections in total.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a) with A = 1.7159, S = 2/3."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling(nn.Module):
    """Trainable subsampling (S2, S4): per map, sum each 2x2 block, times a coefficient, plus a bias.

    Two parameters per feature map (S2: 6 maps -> 12, S4: 16 maps -> 32).
    (B, C, H, W) -> (B, C, H/2, W/2). The squashing that follows is a separate module.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = F.avg_pool2d(x, 2) * 4                          # (B, C, H/2, W/2)
        return block_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SparseConv2d(nn.Module):
    """A convolution in which output map j reads only the input maps listed in `table[j]`.

    Only the connected kernels are parameters: `weight` has shape (connections, k, k),
    so `sum(p.numel())` counts 60 * 25 + 16 = 1,516 for C3. The forward pass scatters them
    into a dense (C_out, C_in, k, k) kernel (zeros elsewhere) and calls F.conv2d.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5):
        super().__init__()
        for j, inputs in enumerate(table):
            if not inputs or any(not 0 <= i < in_channels for i in inputs):
                raise ValueError(f"connection table row {j} = {inputs} must name input maps in 0..{in_channels - 1}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        # flat index (j * C_in + i) of every connected (output j, input i) pair
        index = [j * in_channels + i for j, inputs in enumerate(table) for i in inputs]
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        fan_in = torch.tensor([len(table[j]) for j in range(len(table))]) * kernel_size**2
        bound = (1.0 / fan_in.float()).sqrt()                        # PyTorch's default conv init bound
        per_conn = torch.cat([bound[j].repeat(len(inp)) for j, inp in enumerate(table)])
        self.weight = nn.Parameter((torch.rand(len(index), kernel_size, kernel_size) * 2 - 1) * per_conn.view(-1, 1, 1))
        self.bias = nn.Parameter((torch.rand(len(table)) * 2 - 1) * bound)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense kernel (C_out, C_in, k, k) with zeros where maps are not connected."""
        k = self.kernel_size
        w = self.weight.new_zeros(self.out_channels * self.in_channels, k, k)
        w = w.index_copy(0, self.index, self.weight)
        return w.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class LeNet5_1998(nn.Sequential):
    """LeNet-5 as in the 1998 paper (input (B, 1, 28, 28) padded to the 32x32 field).

    C1 conv 6@28x28 (156) -> S2 subsampling 6@14x14 (12) -> C3 sparse conv 16@10x10 (1,516)
    -> S4 subsampling 16@5x5 (32) -> C5 conv 120@1x1 (48,120) -> F6 84 (10,164) -> output 10.

    Departures from the paper:
    - output: the paper's 10 Euclidean RBF units compare F6 with fixed, hand-chosen 7x12
      bitmaps and are not trained; here a trainable linear 84 -> 10 layer (850 parameters)
      replaces them so that the usual cross-entropy loss applies.
    - squashing: applied after S2, S4, C5 and F6 (C1 and C3 feed the subsampling layers
      directly), with the paper's A tanh(S a).
    - initialisation: PyTorch's defaults, not the paper's uniform(-2.4/F_in, 2.4/F_in).
    """

    def __init__(self, num_classes: int = 10):
        super().__init__(OrderedDict(
            C1=nn.Conv2d(1, 6, kernel_size=5, padding=2),    # (B, 6, 28, 28)
            S2=Subsampling(6),                                # (B, 6, 14, 14)
            act2=ScaledTanh(),
            C3=SparseConv2d(6, C3_TABLE),                     # (B, 16, 10, 10)
            S4=Subsampling(16),                               # (B, 16, 5, 5)
            act4=ScaledTanh(),
            C5=nn.Conv2d(16, 120, kernel_size=5),             # (B, 120, 1, 1)
            act5=ScaledTanh(),
            flatten=nn.Flatten(),                             # (B, 120)
            F6=nn.Linear(120, 84),                            # (B, 84)
            act6=ScaledTanh(),
            output=nn.Linear(84, num_classes),                # (B, 10) replaces the RBF layer
        ))


def lenet5_1998(**kwargs) -> LeNet5_1998:
    """LeNet-5 as published in 1998 (sparse C3, trainable subsampling); 60,850 parameters here."""
    return LeNet5_1998(**kwargs)
