"""Multiply-adds of a forward pass, counted by PyTorch rather than by hand-kept formulas.

`torch.utils.flop_counter.FlopCounterMode` records every matrix product and convolution a
forward pass dispatches and counts floating-point operations as 2 per multiply-add (one
multiply, one add). Papers quote multiply-adds ("FLOPs" in the ResNet paper means
multiply-adds), so `count_macs` halves the counter's total. Counting works on the `meta`
device: shapes flow through the network, no memory is allocated and no arithmetic is done,
so even VGG-19 at 224x224 is counted in milliseconds.

What is counted: convolutions (grouped and transposed included), linear layers, matrix
products and batched matrix products. Element-wise work (ReLU, pooling, normalisation,
additions of residual connections) is not: that is also the papers' convention.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "macs_by_module"]


def _forward_on(model: nn.Module, input_size, batch_size: int, device) -> FlopCounterMode:
    """Run one eval-mode forward pass under a flop counter; return the counter."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    x = torch.zeros(batch_size, *input_size, device=device)
    counter = FlopCounterMode(display=False)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, input_size=(3, 224, 224), batch_size: int = 1, device=None) -> int:
    """Multiply-adds of one forward pass per image (total over the batch / batch_size).

    `device` defaults to the device of the model's parameters; build a large model on
    `torch.device("meta")` to count it without allocating its weights.
    """
    counter = _forward_on(model, input_size, batch_size, device)
    return counter.get_total_flops() // 2 // batch_size


def macs_by_module(model: nn.Module, input_size=(3, 224, 224), device=None) -> dict[str, int]:
    """Multiply-adds per image, per module name (dotted, as in `model.named_modules()`).

    A parent's figure includes its children's: {"features": ..., "features.0": ...}. The
    root module is reported as "" (the whole network).
    """
    counter = _forward_on(model, input_size, 1, device)
    out: dict[str, int] = defaultdict(int)
    for name, per_op in counter.get_flop_counts().items():
        # the counter names modules "<RootClass>.<dotted path>", the root by its class name,
        # and adds a "Global" entry equal to the root: skip that duplicate
        if name == "Global":
            continue
        key = name.split(".", 1)[1] if "." in name else ""
        out[key] += sum(per_op.values()) // 2
    return dict(out)
