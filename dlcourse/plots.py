"""Figures the chapters draw: learning curves, and a network's layers as a diagram.

`learning_curves({"ReLU + max": h1, "sigmoid + avg": h2})` draws two panels (loss,
accuracy); each run is one colour, training dashed and validation solid.

`feature_map_diagram(lenet5())` draws the network the way papers do (LeNet-5's Figure 2): each
stage of feature maps as a stack of squares labelled "maps@height x width", each fully
connected layer as a bar labelled with its width, and between them the operation. The
shapes come from one forward pass (`dlcourse.summary`), so the drawing is the model's.

`multichannel_conv_figure(x, w, b, i, j, ...)` shows how one output value of a convolution
over several input channels is made: one window per channel, one kernel slice per
channel, one partial sum per channel, added together with the bias.
"""
from __future__ import annotations

import math
from typing import Mapping

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
from torch import nn

from dlcourse.train import History

__all__ = ["learning_curves", "feature_map_diagram", "multichannel_conv_figure"]


def learning_curves(histories: History | Mapping[str, History], title: str | None = None, ax=None):
    """Plot training/validation loss and accuracy against epochs; return the matplotlib Figure."""
    if isinstance(histories, History):
        histories = {"model": histories}
    if not histories:
        raise ValueError("learning_curves needs at least one History")
    if ax is None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        ax_loss, ax_acc = ax
        fig = ax_loss.figure
    for i, (name, h) in enumerate(histories.items()):
        colour = f"C{i}"
        ax_loss.plot(h.epoch, h.train_loss, "--", color=colour, label=f"{name} (train)")
        ax_loss.plot(h.epoch, h.val_loss, "-o", color=colour, ms=3, label=f"{name} (val)")
        ax_acc.plot(h.epoch, h.train_acc, "--", color=colour, label=f"{name} (train)")
        ax_acc.plot(h.epoch, h.val_acc, "-o", color=colour, ms=3, label=f"{name} (val)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for a in (ax_loss, ax_acc):
        a.grid(alpha=0.3)
        a.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _operation(module: nn.Module) -> str:
    """A short label (two lines at most) for what a layer does: "5x5 conv\\npad 2", "2x2\\nmax pool"."""
    kind = type(module).__name__
    k = getattr(module, "kernel_size", None)
    k = k[0] if isinstance(k, tuple) else k
    if isinstance(module, nn.Linear):
        return "full\nconnection"
    if "Conv" in kind:
        pad = getattr(module, "padding", 0)
        pad = pad[0] if isinstance(pad, tuple) else pad
        sparse = "\n(sparse)" if "Sparse" in kind else ""
        return f"{k}x{k} conv{sparse}" + (f"\npad {pad}" if pad else "")
    if "MaxPool" in kind:
        return f"{k}x{k}\nmax pool"
    if "AvgPool" in kind:
        return f"{k}x{k}\navg pool"
    if kind == "Subsampling":
        return "2x2 sub-\nsampling"
    return kind


def feature_map_diagram(model: nn.Module, input_size=(1, 28, 28), title: str | None = None, ax=None,
                  max_maps: int = 6):
    """Draw `model`'s stages left to right from one forward pass; return the Figure.

    A stage is every layer that changes the shape of what flows through the network
    (activations and flattening are not stages). Feature maps (C, H, W) are drawn as up
    to `max_maps` stacked squares whose side grows with H; vectors (n,) as a bar whose
    height grows with sqrt(n). Below each stage: its shape; above: the layer's name.
    """
    from dlcourse.summary import summary

    rows = summary(model, input_size=input_size, print_table=False)
    stages = [("input", None, tuple(input_size))]
    for r in rows:
        if r.kind == "Flatten" or r.output_shape == stages[-1][2]:
            continue
        stages.append((r.name.split(".")[-1], model.get_submodule(r.name), r.output_shape))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.5 * len(stages), 2.6))
    else:
        fig = ax.figure
    largest = max(s[2][1] for s in stages if len(s[2]) == 3 and s[2][1] > 1)
    x, gap = 0.0, 1.0                                        # gap: room for the arrow and its label
    for i, (name, module, shape) in enumerate(stages):
        maps = len(shape) == 3 and shape[1] > 1
        if maps:
            c, h, w = shape
            side = 0.35 + 0.65 * h / largest                 # 0.35 .. 1.0 units
            shown = min(c, max_maps)
            for m in range(shown):                           # back to front, offset up and right
                off = 0.07 * (shown - 1 - m)
                ax.add_patch(Rectangle((x + off, 0.5 - side / 2 + off), side * w / h, side,
                                       facecolor=plt.cm.Blues(0.3 + 0.4 * m / max(shown - 1, 1)),
                                       edgecolor="#1f3b57", lw=0.8))
            width = side * w / h + 0.07 * (shown - 1)
            label = f"{c}@{h}x{w}"
        else:
            n = math.prod(shape)                             # (n,) or (n, 1, 1): a vector
            height = min(1.2, 0.15 + 0.035 * math.sqrt(n))
            width = 0.18
            ax.add_patch(Rectangle((x, 0.5 - height / 2), width, height, facecolor="#f4a261",
                                   edgecolor="#7a3e12", lw=0.8))
            label = f"{n}@1x1" if len(shape) == 3 else f"{n}"
        ax.text(x + width / 2, -0.32, label, ha="center", va="top", fontsize=8)
        ax.text(x + width / 2, 1.3, name, ha="center", va="bottom", fontsize=9, fontweight="bold")
        if i + 1 < len(stages):
            ax.annotate("", xy=(x + width + gap - 0.08, 0.5), xytext=(x + width + 0.08, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=1))
            ax.text(x + width + gap / 2, 0.58, _operation(stages[i + 1][1]), ha="center", va="bottom",
                    fontsize=7, linespacing=1.0)
        x += width + gap
    ax.set_xlim(-0.1, x - gap + 0.1)
    ax.set_ylim(-0.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _grid_panel(ax, values, title, highlight=None, fmt="{:.0f}", box: int | None = None):
    """Draw a matrix as a grid of numbers; `highlight` = (rows, cols) slices to shade.

    `box` (cells) fixes the panel's extent, so that grids of different sizes drawn side by
    side get cells of one size; the grid sits at the box's top left.
    """
    h, w = values.shape
    top = max(box or h, h) - h                                   # empty cells below the grid
    for r in range(h):
        for c in range(w):
            inside = (highlight is not None and highlight[0].start <= r < highlight[0].stop
                      and (r - highlight[0].start) % (highlight[0].step or 1) == 0
                      and highlight[1].start <= c < highlight[1].stop
                      and (c - highlight[1].start) % (highlight[1].step or 1) == 0)
            ax.add_patch(Rectangle((c, top + h - 1 - r), 1, 1, facecolor="#ffd166" if inside else "white",
                                   edgecolor="#999999", lw=0.6))
            ax.text(c + 0.5, top + h - 0.5 - r, fmt.format(float(values[r, c])), ha="center", va="center",
                    fontsize=7, fontweight="bold" if inside else "normal")
    ax.set_xlim(0, max(box or w, w))
    ax.set_ylim(0, top + h)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=8)


def multichannel_conv_figure(x, weight, bias, i: int, j: int, out_channel: int = 0, stride: int = 1,
                             padding: int = 0):
    """One output value of a multi-channel convolution, channel by channel; return the Figure.

    x: (C_in, H, W) input; weight: (C_out, C_in, k, k); bias: (C_out,). Row c of the
    figure shows input channel c (zero-padded) with the window that output (i, j) reads,
    kernel slice weight[out_channel, c] and their sum of products; the right-hand panel
    adds the partial sums and the bias and shows where the result lands in the output map.
    """
    import torch
    import torch.nn.functional as F

    from dlcourse.conv import window_slices

    c_in, k = x.shape[0], weight.shape[-1]
    xp = F.pad(x, (padding,) * 4)                              # (C_in, H + 2P, W + 2P)
    out = F.conv2d(x[None], weight, bias, stride=stride, padding=padding)[0, out_channel]  # (H_o, W_o)
    rows, cols = window_slices(i, j, k, stride)
    partial = [float((xp[c, rows, cols] * weight[out_channel, c]).sum()) for c in range(c_in)]
    n = xp.shape[-1]                                           # every panel is n cells tall
    fig = plt.figure(figsize=(7.5, 1.75 * c_in))
    grid = fig.add_gridspec(c_in, 4, width_ratios=[n, n, n * 0.8, n])
    for c in range(c_in):
        _grid_panel(fig.add_subplot(grid[c, 0]), xp[c], f"input channel {c} (padded)", (rows, cols), box=n)
        _grid_panel(fig.add_subplot(grid[c, 1]), weight[out_channel, c], f"kernel {out_channel}, slice {c}", box=n)
        ax = fig.add_subplot(grid[c, 2])
        ax.axis("off")
        ax.text(0.0, 0.6, f"sum of\nproducts\n= {partial[c]:g}", fontsize=9, va="center")
    ax = fig.add_subplot(grid[c_in // 2, 3])
    total = " + ".join(f"({v:g})" for v in partial)
    highlight = (slice(i, i + 1), slice(j, j + 1))
    _grid_panel(ax, out, f"output map {out_channel}: {total}\n+ bias {float(bias[out_channel]):g}"
                         f" = {float(out[i, j]):g}", highlight, box=n)
    assert abs(sum(partial) + float(bias[out_channel]) - float(out[i, j])) < 1e-9  # the figure adds up
    fig.tight_layout()
    return fig
