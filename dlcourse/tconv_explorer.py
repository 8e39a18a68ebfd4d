"""The transposed-convolution explorer (chapter 12): the output size and the overlap pattern of a
transposed convolution for every choice of kernel, stride and padding.

A transposed convolution with kernel k and stride s stamps a copy of the kernel for every input
pixel, s pixels apart from its neighbour's, and adds the stamps where they overlap
(`dlcourse.upsample.conv_transpose2d`). How many stamps cover an output pixel depends on where it
lies: away from the border, an output position receives one tap for every kernel tap t with
t = position (mod s), so the counts repeat with period s, and they are all equal only when s
divides k. Otherwise neighbouring pixels receive ceil(k / s) and floor(k / s) taps in turn, in
both directions: the checkerboard pattern of Odena, Dumoulin and Olah (2016); with s > k some
rows and columns receive no tap at all. A trained kernel can undo the unevenness only by
learning weights that compensate for it exactly.

Each view is computed, not described: the coverage map is the transposed convolution of an
all-ones input with an all-ones kernel (`conv_transpose2d`, the library's scatter-add), so every
output pixel holds the number of kernel taps that land on it; the output size is
`conv_transpose_output_size`; the pattern away from the border is read off the map.
tests/test_tconv_explorer.py checks the views against F.conv_transpose2d and nn.ConvTranspose2d.

Why it is built this way (as `dlcourse.nms_explorer` and `dlcourse.arch_explorer` are): the book is
static HTML without a Python kernel, so every view is computed in advance, one `widgets.HTML` per
(kernel, stride, padding), nested in `widgets.Stack`s, one level per slider, and each slider is
joined to its level's Stacks with `widgets.jslink`, which the browser resolves from the embedded
widget state on its own (in a live notebook too). A view's map is a tiny PNG (one pixel per
output pixel, drawn enlarged), so seventy-two views weigh a few tens of kilobytes.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import torch

from dlcourse.upsample import conv_transpose2d, conv_transpose_output_size

__all__ = ["KERNELS", "STRIDES", "PADDINGS", "INPUT", "coverage", "compute_view", "render_view", "map_uri",
           "tconv_explorer"]

KERNELS = (1, 2, 3, 4, 5, 6)
STRIDES = (1, 2, 3, 4)
PADDINGS = (0, 1, 2)
INPUT = 6      # pixels a side: (INPUT - 1) s >= k - 1 for every k, s above, so every view has an interior


def coverage(size: int, kernel: int, stride: int, padding: int = 0, dims: int = 2) -> torch.Tensor:
    """How many kernel taps land on each output pixel of a transposed convolution of an all-ones
    input through an all-ones kernel: (H_out, W_out) int64 for a size x size input (dims=2), or
    (W_out,) along one axis of a 1 x size input (dims=1). The 2-D map is the outer product of two
    1-D ones: a pixel's count is its row's count times its column's."""
    rows = size if dims == 2 else 1
    ones = torch.ones(1, 1, rows, size, dtype=torch.float64)
    weight = torch.ones(1, 1, kernel if dims == 2 else 1, kernel, dtype=torch.float64)
    pad = (padding, padding) if dims == 2 else (0, padding)
    out = conv_transpose2d(ones, weight, stride=(stride if dims == 2 else 1, stride), padding=pad)[0, 0]
    return out.round().long() if dims == 2 else out[0].round().long()


def compute_view(kernel: int, stride: int, padding: int, size: int = INPUT) -> dict:
    """One view: the output size (None when these settings give no output), the coverage map,
    the counts along one axis, and the pattern away from the border.

    The interior is where every stamp that could cover a pixel exists: positions k - 1 to
    (n - 1) s of the full (uncropped) output, shifted by the padding. `period` holds the counts
    at s consecutive interior positions, starting from the first interior one: they repeat."""
    try:
        out = conv_transpose_output_size(size, kernel, stride, padding)
    except ValueError:
        out = None
    view = {"kernel": kernel, "stride": stride, "padding": padding, "input": size, "size": out}
    if out is None:
        return view
    cov = coverage(size, kernel, stride, padding)
    line = coverage(size, kernel, stride, padding, dims=1)                 # (out,): counts along one axis
    lo, hi = max(kernel - 1 - padding, 0), min((size - 1) * stride - padding, out - 1)   # interior, after the crop
    period = line[lo:hi + 1].tolist()[:stride] if hi >= lo else []
    if not period:
        pattern = "border only"
    elif min(period) == 0:
        pattern = "gaps"
    elif min(period) == max(period):
        pattern = "even"
    else:
        pattern = "checkerboard"
    view.update(coverage=cov.tolist(), row=line.tolist(), interior=(lo, hi), period=period, pattern=pattern,
                most=int(cov.max()))
    return view


def map_uri(cov: Sequence[Sequence[int]], most: int) -> str:
    """The coverage map as a data URI of a PNG, one pixel per output pixel: dark for no tap,
    light for `most` taps (matplotlib's viridis)."""
    from matplotlib import colormaps
    from PIL import Image

    counts = np.asarray(cov, dtype=np.float64)
    rgb = (colormaps["viridis"](counts / max(most, 1))[..., :3] * 255).round().astype(np.uint8)   # (H, W, 3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pattern_text(view: dict) -> str:
    k, s = view["kernel"], view["stride"]
    taps = ", ".join(str(c) for c in view["period"])
    if view["pattern"] == "even":
        return (f"Away from the border every row and column receives {view['period'][0]} taps "
                f"(s = {s} divides k = {k}): <b>even overlap</b>.")
    if view["pattern"] == "checkerboard":
        return (f"Away from the border the rows and columns receive {taps} taps in turn, repeating every {s} pixels "
                f"(s = {s} does not divide k = {k}): <b>uneven overlap, a checkerboard</b>.")
    if view["pattern"] == "gaps":
        return (f"Away from the border the rows and columns receive {taps} taps in turn (stride {s} is larger than "
                f"kernel {k}): <b>gaps</b>, pixels no stamp reaches.")
    return "Every output pixel lies near the border."


def render_view(view: dict) -> str:
    """HTML for one view: the size formula with its numbers, the pattern, the map and its middle row."""
    n, k, s, p = view["input"], view["kernel"], view["stride"], view["padding"]
    formula = f"({n} &minus; 1) &middot; {s} &minus; 2 &middot; {p} + {k}"
    if view["size"] is None:
        return (f"<div class='tx'><p>Input {n} x {n}, kernel k = {k}, stride s = {s}, padding p = {p}: "
                f"{formula} &le; 0, no output.</p></div>")
    out = view["size"]
    alt = (f"The {out} by {out} coverage map of a transposed convolution with kernel {k}, stride {s} and padding "
           f"{p}: {view['pattern']}")
    row = " ".join(str(c) for c in view["row"])
    return (f"<div class='tx'><p>Input {n} x {n}, kernel k = {k}, stride s = {s}, padding p = {p}: output "
            f"{formula} = {out}, so <b>output {out} x {out}</b>.</p>"
            f"<p>{_pattern_text(view)}</p>"
            f"<img class='tx-map' src='{map_uri(view['coverage'], view['most'])}' alt='{html.escape(alt)}'>"
            f"<p class='tx-row'>taps per output row (and per column), along one axis: <code>{row}</code></p>"
            f"<p class='tx-legend'>dark: no tap; light: {view['most']} taps, the most any output pixel receives "
            f"(a pixel's count is its row's count times its column's)</p></div>")


STYLE = ("<style>.tx p{margin:0.3em 0;max-width:42em}.tx .tx-legend,.tx .tx-row{font-size:0.85em}"
         ".tx-map{width:100%;max-width:260px;display:block;image-rendering:pixelated;border:1px solid #999}</style>")


def _nearest(values: Sequence[int], target: int) -> int:
    return min(range(len(values)), key=lambda i: abs(values[i] - target))


def tconv_explorer(kernels: Sequence[int] = KERNELS, strides: Sequence[int] = STRIDES,
                   paddings: Sequence[int] = PADDINGS, size: int = INPUT,
                   start: tuple[int, int, int] = (3, 2, 0)) -> widgets.VBox:
    """Build the explorer (use it as the last expression of a notebook cell): sliders for the
    kernel size, the stride and the padding of a transposed convolution of a size x size input;
    len(kernels) x len(strides) x len(paddings) precomputed views. Opens on the settings nearest
    `start` (kernel 3, stride 2: the checkerboard)."""
    kernels, strides, paddings = list(kernels), list(strides), list(paddings)
    if not kernels or not strides or not paddings:
        raise ValueError("the explorer needs at least one kernel size, one stride and one padding")
    levels = [("kernel k", kernels), ("stride s", strides), ("padding p", paddings)]
    at = [_nearest(values, v) for (_, values), v in zip(levels, start)]
    sliders = [widgets.SelectionSlider(options=[str(v) for v in values], index=i, description=name,
                                       continuous_update=True, style={"description_width": "initial"},
                                       layout=widgets.Layout(flex="1 1 12em", width="auto", max_width="20em",
                                                             min_width="0"))
               for (name, values), i in zip(levels, at)]
    stacks_by_level: list[list[widgets.Stack]] = [[], [], []]
    views: list[dict] = []

    def build(depth: int, chosen: tuple[int, ...]) -> widgets.Widget:
        if depth == len(levels):
            view = compute_view(*chosen, size=size)
            views.append(view)
            return widgets.HTML(value=render_view(view))
        stack = widgets.Stack(children=[build(depth + 1, chosen + (v,)) for v in levels[depth][1]],
                              selected_index=at[depth])
        stacks_by_level[depth].append(stack)
        return stack

    root = build(0, ())
    links = [widgets.jslink((slider, "index"), (stack, "selected_index"))
             for slider, stacks in zip(sliders, stacks_by_level) for stack in stacks]
    box = widgets.VBox([widgets.HTML(STYLE), widgets.HBox(sliders, layout=widgets.Layout(flex_flow="row wrap")), root])
    # keep references: the links must outlive this call; tests inspect the views
    box._dlcourse_controls, box._dlcourse_links, box._dlcourse_views = sliders, links, views
    return box
