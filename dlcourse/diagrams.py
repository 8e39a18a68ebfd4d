"""Architecture diagrams drawn with matplotlib from a model's own layer table.

`trace(model, input_size)` runs one forward pass with hooks and returns one `Box` per
drawn layer (convolution, pooling, normalisation, fully connected layer, or a whole block
such as an inception module), with its output shape and parameters. `draw(boxes)` lays
the boxes out left to right: a box's height grows with the spatial size of its output,
its width with the number of channels, and its colour says what kind of layer it is.
Nothing is typed in by hand, so a diagram always shows the model that the code builds.

Run `trace` on a model built on the `meta` device: shapes flow, nothing is allocated.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn

__all__ = ["Box", "trace", "draw", "KIND_COLOURS"]

KIND_COLOURS = {"conv": "#4C72B0", "pool": "#DD8452", "norm": "#8C8C8C", "fc": "#55A868",
                "block": "#8172B3", "gap": "#C44E52"}


@dataclass(frozen=True)
class Box:
    name: str              # module name, e.g. "features.conv1"
    kind: str              # one of KIND_COLOURS
    label: str             # short text drawn under the box, e.g. "conv 11x11/4, 96"
    shape: tuple           # output shape without the batch dimension
    params: int


def _kind(m: nn.Module, blocks: tuple[type, ...]) -> str | None:
    if blocks and isinstance(m, blocks):
        return "block"
    if isinstance(m, nn.Conv2d):
        return "conv"
    if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
        return "gap"
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "pool"
    if isinstance(m, nn.Linear):
        return "fc"
    if type(m).__name__ in ("LocalResponseNorm", "BatchNorm2d"):
        return "norm"
    return None


def _label(m: nn.Module, kind: str) -> str:
    if kind == "conv":
        k, s = m.kernel_size[0], m.stride[0]
        groups = f" g{m.groups}" if m.groups > 1 else ""
        return f"conv {k}x{k}" + (f"/{s}" if s > 1 else "") + groups
    if kind == "pool":
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return "avg pool"
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        return f"{'max' if isinstance(m, nn.MaxPool2d) else 'avg'} {k}x{k}/{s}"
    if kind == "gap":
        return "global avg"
    if kind == "fc":
        return "FC"
    if kind == "norm":
        return "LRN" if type(m).__name__ == "LocalResponseNorm" else "BN"
    return type(m).__name__


def trace(model: nn.Module, input_size, blocks: tuple[type, ...] = (), skip: tuple[str, ...] = ()) -> list[Box]:
    """One Box per drawn module, in the order the forward pass calls them.

    `blocks`: module types drawn as one box (their insides are not drawn). `skip`: module
    names (prefixes) left out, e.g. auxiliary heads. The model runs in eval mode.
    """
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    boxes: list[Box] = []
    inside_block: set[str] = set()
    handles = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(s) for s in skip):
            continue
        if any(name.startswith(b + ".") for b in inside_block):
            continue
        kind = _kind(m, blocks)
        if kind is None:
            continue
        if kind == "block":
            inside_block.add(name)

        def hook(mod, inputs, output, name=name, kind=kind):
            shape = tuple(output.shape[1:])
            label = name.rsplit(".", 1)[-1] if kind == "block" else _label(mod, kind)   # e.g. "inception3a"
            boxes.append(Box(name, kind, label, shape, sum(q.numel() for q in mod.parameters())))
        handles.append(m.register_forward_hook(hook))
    forward_on_zeros(model, input_size, device, handles)
    return boxes


def forward_on_zeros(model: nn.Module, input_size, device, handles: list, context=None) -> None:
    """One forward pass of a batch of one zero input of `input_size`, in evaluation mode and without
    gradients (the hooks only read shapes), then the model's mode restored and the `handles` of its
    hooks removed, whatever happened. `context`: one more context to run the pass in."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), (context if context is not None else contextlib.nullcontext()):
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def _shape_text(shape: tuple) -> str:
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(map(str, shape))


def draw(boxes: list[Box], title: str | None = None, ax=None, input_size=None):
    """Draw the boxes left to right; return the matplotlib Figure.

    Height: sqrt of the output's height (so 224 and 7 both stay visible); width: log2 of
    the channels. Each box is labelled with its layer and its output (H x W x C).
    """
    if not boxes:
        raise ValueError("nothing to draw: trace() found no layers")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(boxes) + 1), 3.4))
    else:
        fig = ax.figure
    items = ([("input", "input", tuple(input_size))] if input_size else []) + \
        [(b.label, b.kind, b.shape) for b in boxes]
    x = 0.0
    for label, kind, shape in items:
        h = math.sqrt(shape[1]) if len(shape) == 3 else 1.2
        c = shape[0]
        w = 0.18 + 0.05 * math.log2(max(c, 1))
        colour = KIND_COLOURS.get(kind, "#BBBBBB")
        ax.add_patch(FancyBboxPatch((x, -h / 2), w, h, boxstyle="round,pad=0.02", fc=colour,
                                    ec="black", lw=0.6, alpha=0.9 if kind != "input" else 0.3))
        ax.text(x + w / 2, -h / 2 - 0.4, f"{label}\n{_shape_text(shape)}", ha="center", va="top",
                fontsize=6.5, rotation=90)
        x += w + 0.35
    top = max(math.sqrt(s[1]) if len(s) == 3 else 1.2 for _, _, s in items)
    ax.set_xlim(-0.3, x)
    ax.set_ylim(-top / 2 - 6.5, top / 2 + 0.5)
    ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, fc=KIND_COLOURS[k]) for k in KIND_COLOURS
               if any(b.kind == k for b in boxes)]
    names = {"conv": "convolution", "pool": "pooling", "norm": "normalisation", "fc": "fully connected",
             "block": "block", "gap": "global average pool"}
    ax.legend(handles, [names[k] for k in KIND_COLOURS if any(b.kind == k for b in boxes)],
              loc="upper right", fontsize=7, ncol=3, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
