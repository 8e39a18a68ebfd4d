"""VGG (2014): very deep networks built only from 3x3 convolutions and 2x2 max-pooling.

Source: Simonyan and Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015 (arXiv:1409.1556): Table 1 (configurations A-E), Table 2 (their
parameter counts: 133, 133, 134, 138 and 144 million).

Layout (as in torchvision's models/): `cfgs` holds the paper's Table 1 as data, one list
per configuration; `VGG` turns a list into `features` and puts the three fully connected
layers on top; the builders are one line each.

    entry       meaning
    64          3x3 convolution (stride 1, padding 1) with 64 filters, then ReLU
    (256, 1)    1x1 convolution with 256 filters, then ReLU (configuration C only)
    "LRN"       local response normalisation (configuration A-LRN only)
    "M"         2x2 max-pooling with stride 2 (halves height and width)

    vgg11() A 132,863,336   vgg11_lrn() A-LRN 132,863,336   vgg13() B 133,047,848
    vgg16_c() C 133,638,952 vgg16() D 138,357,544           vgg19() E 143,667,240

`layer_table` measures where memory and parameters sit, from the model itself: forward
hooks record every convolution, pooling and fully connected output, on the `meta` device
(shapes only, no memory), so VGG-19 at 224x224 is tabulated in milliseconds.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from dlcourse.models.alexnet import LocalResponseNorm, he_init

__all__ = ["Entry", "cfgs", "VGG", "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19",
           "vgg_small", "LayerStats", "layer_table", "weight_layers"]

Entry = Union[int, tuple, str]      # 64 | (256, 1) | "LRN" | "M"

cfgs: dict[str, list[Entry]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    # A with LRN after the first convolution; the paper found it did not help (Table 3).
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    # C = B plus a 1x1 convolution at the end of blocks 3, 4 and 5 (more non-linearity
    # without a larger receptive field); D replaces those 1x1 convolutions by 3x3 ones.
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
          512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
    # MNIST-sized, same entries: 28 -> 14 -> 7 -> 3 after three blocks.
    "small": [16, 16, "M", 32, 32, "M", 64, 64, "M"],
}


def _conv_spec(entry: Entry) -> tuple[int, int]:
    """(filters, kernel) of a convolution entry."""
    if isinstance(entry, int):
        return entry, 3
    filters, kernel = entry
    return filters, kernel


class VGG(nn.Module):
    """A VGG network from a configuration list (see the module docstring for the entries).

    `features`: the convolution blocks, (B, 3, 224, 224) -> (B, 512, 7, 7) for A-E.
    `classifier`: flatten -> fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8, with
    `hidden` units (4096 in the paper) and dropout 0.5 after the first two FC layers.
    `image_size` fixes the classifier's input width (7x7x512 at 224); the paper's dense
    evaluation turned the FC layers into convolutions instead, which is not done here.
    """

    def __init__(self, cfg: list[Entry], num_classes: int = 1000, in_channels: int = 3,
                 image_size: int = 224, hidden: int = 4096, dropout: float = 0.5,
                 init_weights: bool = True):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        block, conv, c_in, size = 1, 1, in_channels, image_size
        for entry in cfg:
            if entry == "M":
                layers[f"pool{block}"] = nn.MaxPool2d(kernel_size=2, stride=2)
                block, conv, size = block + 1, 1, size // 2
            elif entry == "LRN":
                # The paper used AlexNet's normalisation (k=2, n=5, alpha=1e-4, beta=0.75).
                layers[f"lrn{block}_{conv - 1}"] = LocalResponseNorm(5, 1e-4, 0.75, 2.0)
            else:
                filters, k = _conv_spec(entry)
                # "same" padding: (k - 1) / 2, so 3x3 convolutions keep the size, 1x1 too
                layers[f"conv{block}_{conv}"] = nn.Conv2d(c_in, filters, k, padding=(k - 1) // 2)
                layers[f"relu{block}_{conv}"] = nn.ReLU(inplace=True)
                c_in, conv = filters, conv + 1
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for {block - 1} poolings")
        self.features = nn.Sequential(layers)
        self.feature_shape = (c_in, size, size)
        width = c_in * size * size
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc6=nn.Linear(width, hidden), relu6=nn.ReLU(inplace=True), drop6=nn.Dropout(dropout),
            fc7=nn.Linear(hidden, hidden), relu7=nn.ReLU(inplace=True), drop7=nn.Dropout(dropout),
            fc8=nn.Linear(hidden, num_classes),
        ))
        if init_weights:
            he_init(self)        # not the paper's N(0, 0.01) with staged training: see he_init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def vgg11(**kwargs) -> VGG:
    """Configuration A (11 weight layers): 132,863,336 parameters."""
    return VGG(cfgs["A"], **kwargs)


def vgg11_lrn(**kwargs) -> VGG:
    """Configuration A-LRN: A with local response normalisation (no extra parameters)."""
    return VGG(cfgs["A-LRN"], **kwargs)


def vgg13(**kwargs) -> VGG:
    """Configuration B (13 weight layers): 133,047,848 parameters."""
    return VGG(cfgs["B"], **kwargs)


def vgg16_c(**kwargs) -> VGG:
    """Configuration C (16 weight layers, three of them 1x1): 133,638,952 parameters."""
    return VGG(cfgs["C"], **kwargs)


def vgg16(**kwargs) -> VGG:
    """Configuration D, VGG-16 (13 convolutions + 3 FC layers): 138,357,544 parameters."""
    return VGG(cfgs["D"], **kwargs)


def vgg19(**kwargs) -> VGG:
    """Configuration E, VGG-19 (16 convolutions + 3 FC layers): 143,667,240 parameters."""
    return VGG(cfgs["E"], **kwargs)


def vgg_small(num_classes: int = 10, **kwargs) -> VGG:
    """Three VGG blocks for 28x28 MNIST digits, with a narrow classifier (fast profile)."""
    kwargs = {"in_channels": 1, "image_size": 28, "hidden": 128, **kwargs}
    return VGG(cfgs["small"], num_classes=num_classes, **kwargs)


def weight_layers(cfg: list[Entry]) -> int:
    """Weight layers of a configuration: its convolutions plus the 3 FC layers (D: 16)."""
    return sum(1 for e in cfg if e not in ("M", "LRN")) + 3


@dataclass(frozen=True)
class LayerStats:
    name: str              # module name inside the model, e.g. "features.conv4_1"
    kind: str              # "input", "conv", "pool", "fc" or "lrn"
    output_shape: tuple    # without the batch dimension, e.g. (512, 28, 28)
    activations: int       # values in the output, per image
    bytes: int             # activations * bytes per value (4 at float32)
    params: int            # weights + biases of the layer


_KINDS = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.Linear: "fc", LocalResponseNorm: "lrn"}


def layer_table(model: nn.Module, input_size=(3, 224, 224), dtype=torch.float32) -> list[LayerStats]:
    """One row for the input and for every convolution, pooling, LRN and FC output.

    This is the slides' accounting: ReLU is done in place (it stores nothing new) and
    only the values each layer produces are counted, per image, in the forward pass.
    The model is copied to the `meta` device, so nothing is allocated or computed.
    """
    meta = _to_meta(model).eval()
    per_value = torch.empty((), dtype=dtype).element_size()
    rows = [LayerStats("input", "input", tuple(input_size), _numel(input_size),
                       _numel(input_size) * per_value, 0)]

    def hook_for(name: str, kind: str):
        def hook(module, inputs, output):
            shape = tuple(output.shape[1:])
            rows.append(LayerStats(name, kind, shape, _numel(shape), _numel(shape) * per_value,
                                   sum(p.numel() for p in module.parameters())))
        return hook

    handles = [m.register_forward_hook(hook_for(n, _KINDS[type(m)]))
               for n, m in meta.named_modules() if type(m) in _KINDS]
    try:
        with torch.no_grad():
            meta(torch.zeros(1, *input_size, device="meta", dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return rows


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _to_meta(model: nn.Module) -> nn.Module:
    """The model itself when it already lives on `meta`, else a weightless copy there."""
    p = next(model.parameters(), None)
    if p is None or p.device.type == "meta":
        return model
    # deepcopy with every parameter and buffer pre-mapped to a meta stand-in: the copy
    # never holds real weights (a plain deepcopy of VGG-16 would duplicate 550 MB)
    memo = {id(t): nn.Parameter(torch.empty_like(t, device="meta"), t.requires_grad)
            for t in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo)
