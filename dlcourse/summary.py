"""A model summary: every layer's output shape and parameter count, from one forward pass.

Forward hooks on the leaf modules (those without children) record the shape of what each
layer returns; parameters are counted per module with `recurse=False`, so every parameter
is counted exactly once and the column sums to `sum(p.numel() for p in model.parameters())`
(a layer that holds no parameters of its own, such as ReLU or pooling, shows 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LayerRow", "summary", "format_table"]


@dataclass(frozen=True)
class LayerRow:
    name: str                  # dotted module name, e.g. "features.C1"
    kind: str                  # class name, e.g. "Conv2d"
    output_shape: tuple        # output shape without the batch dimension, e.g. (6, 28, 28)
    params: int                # parameters held by this module itself
    trainable: int             # of which requires_grad


def summary(model: nn.Module, input_size=(1, 28, 28), batch_size: int = 2, device=None,
            print_table: bool = True) -> list[LayerRow]:
    """Run one forward pass on zeros of shape (batch_size, *input_size); return one row per leaf call.

    The model is put in eval mode for the pass (so dropout/batch norm do not change state)
    and restored to its previous mode afterwards. A module called twice yields two rows.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    rows: list[LayerRow] = []
    seen: set[int] = set()                      # count a reused module's parameters once

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
            own = list(module.parameters(recurse=False))
            first = id(module) not in seen
            seen.add(id(module))
            rows.append(LayerRow(name, type(module).__name__, shape,
                                 sum(p.numel() for p in own) if first else 0,
                                 sum(p.numel() for p in own if p.requires_grad) if first else 0))
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules()
               if n and not any(True for _ in m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # Parameters held directly by a container module (not by a leaf) get a row of their own,
    # so that the total always equals sum(p.numel() for p in model.parameters()).
    leftover = sum(p.numel() for p in model.parameters()) - sum(r.params for r in rows)
    if leftover:
        rows.append(LayerRow("(held by containers)", "", (), leftover, leftover))
    if print_table:
        print(format_table(rows))
    return rows


def format_table(rows: list[LayerRow]) -> str:
    """The rows as a fixed-width text table with a total line."""
    lines = [f"{'layer':<22}{'type':<16}{'output shape':<18}{'params':>10}", "-" * 66]
    for r in rows:
        lines.append(f"{r.name:<22}{r.kind:<16}{str(list(r.output_shape)):<18}{r.params:>10,}")
    total = sum(r.params for r in rows)
    trainable = sum(r.trainable for r in rows)
    lines += ["-" * 66, f"{'total':<56}{total:>10,}", f"{'trainable':<56}{trainable:>10,}"]
    return "\n".join(lines)
