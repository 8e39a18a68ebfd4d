"""Encoder-decoder networks drawn by resolution level (chapter 12), from the model's own forward pass.

`trace_levels(model, input_size, kinds)` runs one forward pass with hooks on the modules of the
given types (outermost only) and returns one `Step` per call, in call order, with its output shape
and its *level*: how many times the input's height was halved to get there (log2 of the input
height over the output height). `draw_levels(steps, links)` draws each step as a box, left to
right in call order and lower the deeper its level, so that an encoder-decoder network appears as
the "U" its papers draw, consecutive steps joined by a line. Max pooling and unpooling done with
torch.nn.functional (FCN, SegNet and U-Net pool that way, SegNet unpools that way) are steps too,
recorded through a TorchFunctionMode. `links` are the network's long connections, given
by the caller as (from step, to step, label): U-Net's and the tiramisu's concatenated skips,
SegNet's pooling indices, FCN's skip scores. Nothing about the shapes is typed in: they are what
the model computes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn
from torch.overrides import TorchFunctionMode

from dlcourse.diagrams import forward_on_zeros

__all__ = ["Step", "trace_levels", "draw_levels", "KIND_COLOURS"]

KIND_COLOURS = {"conv": "#4C72B0", "dense": "#8172B3", "down": "#DD8452", "up": "#55A868", "score": "#C44E52"}
KIND_NAMES = {"conv": "convolutions", "dense": "dense block", "down": "downsampling", "up": "upsampling",
              "score": "class scores"}


@dataclass(frozen=True)
class Step:
    name: str          # module name, e.g. "decode.0"
    kind: str          # one of KIND_COLOURS
    label: str         # text under the box
    shape: tuple       # output shape without the batch dimension (C, H, W)
    level: int         # log2(input height / output height)
    params: int


class _Functional(TorchFunctionMode):
    """Records the pooling and unpooling that a forward pass does with torch.nn.functional (FCN,
    SegNet and U-Net pool that way, not with modules) while no traced module is running."""

    NAMES = {"max_pool2d": ("down", "pool"), "max_pool2d_with_indices": ("down", "pool"),
             "max_unpool2d": ("up", "unpool")}

    def __init__(self, record):
        super().__init__()
        self.record, self.inside = record, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if self.inside == 0 and name in self.NAMES:
            self.record(*self.NAMES[name], out[0] if isinstance(out, tuple) else out, 0)
        return out


def trace_levels(model: nn.Module, input_size, kinds: dict, labels: dict[str, str] | None = None) -> list[Step]:
    """One Step per call of a module that `kinds` names (outermost modules only) and per max
    pooling or unpooling done with torch.nn.functional outside them, in call order.

    `kinds` maps module names (str) or types to a kind of KIND_COLOURS; a name wins over a type,
    and of the types the first that matches wins (list subclasses first). Functional poolings
    are named "pool1", "pool2", ... and unpoolings "unpool1", ... in call order. `labels`
    overrides the text under a box by name (default: the name). Eval mode, no gradients."""
    labels = labels or {}
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    steps: list[Step] = []
    handles, taken = [], []
    height = input_size[-2]
    counts = {"pool": 0, "unpool": 0}

    def record(kind, name, output, params):
        if name in counts:                                     # a functional pooling: number it
            counts[name] += 1
            name = f"{name}{counts[name]}"
        shape = tuple(output.shape[1:])
        steps.append(Step(name, kind, labels.get(name, name), shape, round(math.log2(height / shape[-2])), params))

    mode = _Functional(record)
    for name, m in model.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        kind = kinds.get(name) if name in kinds else next(
            (k for t, k in kinds.items() if isinstance(t, type) and isinstance(m, t)), None)
        if kind is None:
            continue
        taken.append(name)

        def enter(mod, inputs):
            mode.inside += 1

        def leave(mod, inputs, output, name=name, kind=kind):
            mode.inside -= 1
            record(kind, name, output, sum(q.numel() for q in mod.parameters()))
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    forward_on_zeros(model, input_size, device, handles, context=mode)
    return steps


def draw_levels(steps: list[Step], links: list[tuple[str, str, str]] = (), title: str | None = None, ax=None,
                input_size=None):
    """Draw `steps` as boxes by call order (x) and level (y, deeper lower); return the Figure.

    Each box is labelled with its step's label and output (H x W x C). `links` (from name, to
    name, label) are drawn as dashed grey arrows that leave the top of one box and land on the
    top of the other."""
    if not steps:
        raise ValueError("nothing to draw: trace_levels() found no modules")
    items = ([Step("input", "input", "input", tuple(input_size), 0, 0)] if input_size else []) + list(steps)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(items) + 1.5), 3.8))
    else:
        fig = ax.figure
    gap, w, h, dy = 1.0, 0.62, 0.9, 1.6
    where = {}
    for i, s in enumerate(items):
        x, y = i * gap, -s.level * dy
        where[s.name] = (x, y)
        colour = KIND_COLOURS.get(s.kind, "#BBBBBB")
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=colour, ec="black",
                                    lw=0.6, alpha=0.9 if s.kind != "input" else 0.3))
        c, hh, ww = s.shape
        ax.text(x, y, f"{hh}x{ww}\nx{c}", ha="center", va="center", fontsize=5.5,
                color="white" if s.kind != "input" else "black")
        ax.text(x, y - h / 2 - 0.08, s.label, ha="center", va="top", fontsize=5.5, rotation=90)
        if i:
            prev = items[i - 1]
            px, py = where[prev.name]
            ax.plot([px + w / 2, x - w / 2], [py, y], color="black", lw=0.6)
    for src, dst, label in links:                     # up from the source, across, down onto the target
        (x0, y0), (x1, y1) = where[src], where[dst]
        top = max(y0, y1) + h / 2 + 0.3
        ax.plot([x0, x0, x1], [y0 + h / 2, top, top], color="#777777", lw=0.8, ls="--")
        ax.annotate("", xy=(x1, y1 + h / 2), xytext=(x1, top),
                    arrowprops=dict(arrowstyle="->", color="#777777", lw=0.8))
        ax.text((x0 + x1) / 2, top + 0.05, label, ha="center", va="bottom", fontsize=5.5, color="#555555")
    depth = max(s.level for s in items)
    ax.set_xlim(-gap, len(items) * gap)
    ax.set_ylim(-depth * dy - h / 2 - 2.6, h / 2 + 1.4)
    ax.set_aspect("auto")
    ax.axis("off")
    used = [k for k in KIND_COLOURS if any(s.kind == k for s in steps)]
    ax.legend([plt.Rectangle((0, 0), 1, 1, fc=KIND_COLOURS[k]) for k in used], [KIND_NAMES[k] for k in used],
              loc="lower right", fontsize=6.5, ncol=len(used), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
