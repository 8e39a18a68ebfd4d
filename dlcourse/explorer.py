"""Chapter 1's explorers: ipywidgets views of one convolution, or one pooling layer, on a small input.

    convolution_explorer()   sliders for kernel size, stride, padding and dilation
    pooling_explorer()       max or average pooling; sliders for window size, stride and padding

Each view shows the (padded) input, the kernel, the output size (or why the setting is
invalid) and, for the output cell a reader clicks, the window it reads and the value
computed there. Both open on the book's worked example (a 3x3 kernel at stride 1 on the
5x5 image; 2x2 max pooling at stride 2 on the 4x4 grid).

Why it is built this way: the book is static HTML with no Python kernel behind it, yet
the explorers must still respond there. So every view is computed in advance, one
`widgets.HTML` per combination of the parameters, and the views are nested in
`widgets.Stack` containers, one level per parameter. Each control (a slider, or toggle
buttons for a choice of words) is connected with `widgets.jslink` to the
`selected_index` of every Stack at its level. A jslink is resolved by the browser, not
by Python, so the controls respond the same way in the static book page (from the
embedded widget state) and in a live notebook (JupyterLab, Colab) once the cell has run.
Inside a view, the output position is chosen by clicking an output cell: that is plain
HTML (hidden radio buttons with labels) and CSS, so it needs no kernel either.

The controls are sized for touch: they wrap one per line on a phone-width screen, and
the slider handles are 28 px across (the stylesheet below sets ipywidgets' own CSS
variables for the explorer only).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable, Sequence

import ipywidgets as widgets
import torch

from dlcourse.conv import output_size, window_slices

# The worked example of chapter 1: its 5x5 image is the convolution explorer's input.
DEFAULT_IMAGE = [[2, 4, 9, 1, 4], [2, 1, 4, 4, 6], [1, 1, 2, 9, 2], [7, 3, 5, 1, 3], [2, 3, 4, 8, 5]]
# Its 3x3 kernel is used for F = 3; other sizes get small fixed integers (seeded).
DEFAULT_KERNEL_3 = [[1, 2, 3], [-4, 7, 4], [2, -5, 1]]
# Chapter 1's pooling example: the 4x4 grid that 2x2 max pooling at stride 2 reduces to 2x2.
DEFAULT_POOL_IMAGE = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
POOL_OPS = ("max", "average")


def default_kernel(f: int) -> torch.Tensor:
    """The explorer's F x F integer kernel (deterministic, so the book page is reproducible)."""
    if f == 3:
        return torch.tensor(DEFAULT_KERNEL_3, dtype=torch.float64)
    g = torch.Generator().manual_seed(100 + f)
    return torch.randint(-3, 4, (f, f), generator=g).to(torch.float64)


@dataclass(frozen=True)
class Setting:
    """One view of the convolution explorer."""

    kernel: int
    stride: int
    padding: int
    dilation: int


@dataclass(frozen=True)
class PoolSetting:
    """One view of the pooling explorer: op is "max" or "average"."""

    op: str
    kernel: int
    stride: int
    padding: int


# The settings the explorers open on: the worked examples of chapter 1.
WORKED_EXAMPLE = Setting(kernel=3, stride=1, padding=0, dilation=1)
POOL_EXAMPLE = PoolSetting(op="max", kernel=2, stride=2, padding=0)


def _sizes(h: int, w: int, f: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, int]:
    """Output height and width; ValueError (with the reason) for an invalid setting."""
    return output_size(h, f, stride, padding, dilation), output_size(w, f, stride, padding, dilation)


def compute_view(image: torch.Tensor, s: Setting) -> dict:
    """Everything a convolution view shows, as plain data (tested against torch conv2d).

    Returns {"valid", "message", "out_h", "out_w", "output" (list of lists), "kernel",
    "padded", "windows": {(i, j): (rows, cols)}} where rows/cols index the padded input.
    """
    h, w = image.shape
    kernel = default_kernel(s.kernel)
    padded = torch.nn.functional.pad(image, (s.padding,) * 4)
    try:
        out_h, out_w = _sizes(h, w, s.kernel, s.stride, s.padding, s.dilation)
    except ValueError as err:
        return {"valid": False, "message": str(err), "kernel": kernel, "padded": padded}
    output, windows = [], {}
    for i in range(out_h):
        row = []
        for j in range(out_w):
            rows, cols = window_slices(i, j, s.kernel, s.stride, s.dilation)
            row.append(float((padded[rows, cols] * kernel).sum()))
            windows[(i, j)] = (rows, cols)
        output.append(row)
    return {"valid": True, "message": f"Output: {out_h} x {out_w}", "out_h": out_h, "out_w": out_w,
            "output": output, "kernel": kernel, "padded": padded, "windows": windows}


def compute_pool_view(image: torch.Tensor, s: PoolSetting) -> dict:
    """Everything a pooling view shows (tested against torch's max_pool2d and avg_pool2d).

    Padding follows PyTorch: max pooling pads with -inf (a padded cell never wins),
    average pooling pads with zeros that count in the mean (``count_include_pad=True``).
    PyTorch refuses padding larger than half the window, and so does the explorer.
    Returns the same keys as ``compute_view`` minus "kernel", plus "op".
    """
    if s.op not in POOL_OPS:
        raise ValueError(f"op must be one of {POOL_OPS}, got {s.op!r}")
    h, w = image.shape
    fill = float("-inf") if s.op == "max" else 0.0
    padded = torch.nn.functional.pad(image, (s.padding,) * 4, value=fill)
    view = {"op": s.op, "padded": padded}
    if 2 * s.padding > s.kernel:
        return {**view, "valid": False,
                "message": f"invalid setting: padding P={s.padding} is more than half the window "
                           f"F={s.kernel}, so a window could hold padding only (PyTorch refuses it too)"}
    try:
        out_h, out_w = _sizes(h, w, s.kernel, s.stride, s.padding)
    except ValueError as err:
        return {**view, "valid": False, "message": str(err)}
    output, windows = [], {}
    for i in range(out_h):
        row = []
        for j in range(out_w):
            rows, cols = window_slices(i, j, s.kernel, s.stride)
            window = padded[rows, cols]
            row.append(float(window.max() if s.op == "max" else window.mean()))
            windows[(i, j)] = (rows, cols)
        output.append(row)
    return {**view, "valid": True, "message": f"Output: {out_h} x {out_w}", "out_h": out_h,
            "out_w": out_w, "output": output, "windows": windows}


def _num(v: float) -> str:
    if v == float("-inf"):
        return "-inf"
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def _table(cells: list[list[str]], classes: list[list[str]] | None = None, caption: str = "") -> str:
    rows = []
    for r, line in enumerate(cells):
        tds = "".join(
            f'<td class="{classes[r][c].strip()}">{v}</td>' if classes and classes[r][c].strip() else f"<td>{v}</td>"
            for c, v in enumerate(line))
        rows.append(f"<tr>{tds}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="cx-grid">{cap}{"".join(rows)}</table>'


def _render(view: dict, title: str, uid: str, padding: int, side: str,
            terms: Callable[[list[float]], str]) -> str:
    """HTML for one view: input grid (padding greyed), `side` tables, output grid, explanations.

    `terms(values)` spells out how one output value is made from its window's values.
    `uid` makes the element ids and CSS rules unique on the page.
    """
    pad = view["padded"]
    if not view["valid"]:
        return (f'<div class="cx" id="{uid}">{title}<p class="cx-msg" style="color:#b00020">'
                f'{html.escape(view["message"])}</p>'
                + _table([[_num(v) for v in row] for row in pad.tolist()], caption="padded input")
                + side + "</div>")

    n_pos = view["out_h"] * view["out_w"]
    # input cell classes: "p" for padding, "wK" for every window K that reads the cell
    cls = [["p" if (r < padding or c < padding or r >= pad.shape[0] - padding
                    or c >= pad.shape[1] - padding) else "" for c in range(pad.shape[1])]
           for r in range(pad.shape[0])]
    explain = []
    for (i, j), (rows, cols) in view["windows"].items():
        k = i * view["out_w"] + j
        for r in range(rows.start, rows.stop, rows.step):
            for c in range(cols.start, cols.stop, cols.step):
                cls[r][c] += f" w{k}"
        explain.append(
            f'<div class="cx-val v{k}">Output ({i}, {j}) reads padded rows {rows.start}..{rows.stop - 1}, '
            f'columns {cols.start}..{cols.stop - 1} (step {rows.step}): '
            f'{terms(pad[rows, cols].flatten().tolist())} = <b>{_num(view["output"][i][j])}</b></div>')
    out_cells = [[f'<label for="{uid}-r{i * view["out_w"] + j}">{_num(v)}</label>'
                  for j, v in enumerate(row)] for i, row in enumerate(view["output"])]
    out_cls = [[f"o{i * view['out_w'] + j}" for j in range(view["out_w"])] for i in range(view["out_h"])]
    radios = "".join(
        f'<input type="radio" class="r{k}" name="{uid}" id="{uid}-r{k}"{" checked" if k == 0 else ""}>'
        for k in range(n_pos))
    return (f'<div class="cx" id="{uid}">{radios}<div class="cx-body">{title}'
            f'<p class="cx-msg">{view["message"]} (click an output cell to see its window)</p>'
            + _table([[_num(v) for v in row] for row in pad.tolist()], cls, "padded input")
            + side + _table(out_cells, out_cls, "output") + "".join(explain) + "</div></div>")


def render_view(view: dict, s: Setting, uid: str) -> str:
    """HTML for one convolution setting."""
    n = view["padded"].shape[0] - 2 * s.padding
    title = f"<b>F={s.kernel}, S={s.stride}, P={s.padding}, dilation={s.dilation}</b> on a {n}x{n} input"
    kernel = view["kernel"]
    side = _table([[_num(v) for v in row] for row in kernel.tolist()], caption="kernel")

    def terms(values: list[float]) -> str:
        # spell out the products for small kernels; for big ones the page would grow too much
        if s.kernel > 3:
            return f"sum of {s.kernel * s.kernel} products"
        return " + ".join(f"{_num(a)}*{_num(b)}" for a, b in zip(values, kernel.flatten().tolist()))

    return _render(view, title, uid, s.padding, side, terms)


def render_pool_view(view: dict, s: PoolSetting, uid: str) -> str:
    """HTML for one pooling setting."""
    n = view["padded"].shape[0] - 2 * s.padding
    title = f"<b>{s.op} pooling, F={s.kernel}, S={s.stride}, P={s.padding}</b> on a {n}x{n} input"
    if s.op == "max":
        rule = "each output is the largest value in its window; padding is -inf, so it never wins"
    else:
        rule = (f"each output is the mean of the {s.kernel * s.kernel} values in its window, "
                "padded zeros included (PyTorch's default)")
    side = f'<p class="cx-rule">{html.escape(rule)}</p>'

    def terms(values: list[float]) -> str:
        listed = ", ".join(_num(v) for v in values)
        if s.op == "max":
            return f"max({listed})"
        return f"({' + '.join(_num(v) for v in values)}) / {len(values)}"

    return _render(view, title, uid, s.padding, side, terms)


def stylesheet(max_positions: int) -> str:
    """One <style> block for all views: a checked radio "rK" highlights window K, output K
    and explanation K of its own view (the `~` sibling selector keeps views apart), plus
    the touch sizes of the controls (scoped to `.cx-explorer`)."""
    rules = "".join(
        f".cx .r{k}:checked~div .w{k}{{background:#ffd166}}"
        f".cx .r{k}:checked~div .o{k}{{background:#06d6a0}}"
        f".cx .r{k}:checked~div .v{k}{{display:block}}" for k in range(max_positions))
    touch = (
        # ipywidgets draws its sliders from these variables: bigger handle, thicker track, taller row
        ".cx-explorer{--jp-widgets-slider-handle-size:28px;--jp-widgets-slider-track-thickness:8px;"
        "--jp-widgets-inline-height:44px;max-width:100%}"
        ".cx-explorer .cx-controls{column-gap:1.5em}"
        ".cx-explorer .widget-toggle-button{height:44px;min-width:7em}"
        ".cx-explorer .cx-val,.cx-explorer .cx-msg{overflow-wrap:anywhere}")
    return ("<style>.cx input{display:none}.cx .cx-val{display:none}"
            ".cx td{border:1px solid #999;min-width:2.2em;text-align:center}.cx td.p{color:#999}"
            ".cx label{cursor:pointer;display:block;padding:0.3em 0}"
            ".cx table{display:inline-table;margin:0 1em 0.5em 0;border-collapse:collapse}"
            f"{touch}{rules}</style>")


def _control(name: str, values: Sequence, start) -> widgets.Widget:
    """A slider for numbers, toggle buttons for words; either one's synced `index` picks a child."""
    options = [str(v) for v in values]
    index = list(values).index(start)
    if all(isinstance(v, int) for v in values):
        return widgets.SelectionSlider(options=options, index=index, description=name, continuous_update=True,
                                       layout=widgets.Layout(flex="1 1 17em", width="auto", max_width="28em",
                                                             min_width="0"))
    return widgets.ToggleButtons(options=options, index=index, description=name)


def _explorer(levels: list[tuple[str, list]], start: Sequence, make_view: Callable[[tuple, str], tuple[dict, str]],
              prefix: str) -> widgets.VBox:
    """Nested Stacks with one level per entry of `levels`, each level linked to its control.

    `make_view(setting_values, uid)` returns (view data, view HTML) for one combination;
    `start` holds the value each control (and every Stack) opens on; `prefix` starts the
    views' element ids, so that two explorers can share a page.
    """
    controls = [_control(name, values, first) for (name, values), first in zip(levels, start)]
    stacks_by_level: list[list[widgets.Stack]] = [[] for _ in levels]
    views: list[dict] = []

    def build(depth: int, chosen: tuple):
        if depth == len(levels):
            view, markup = make_view(chosen, f"{prefix}{len(views)}")
            views.append(view)
            return widgets.HTML(value=markup)
        children = [build(depth + 1, chosen + (v,)) for v in levels[depth][1]]
        stack = widgets.Stack(children=children, selected_index=controls[depth].index)
        stacks_by_level[depth].append(stack)
        return stack

    root = build(0, ())
    links = [widgets.jslink((control, "index"), (stack, "selected_index"))
             for control, stacks in zip(controls, stacks_by_level) for stack in stacks]
    most = max(v["out_h"] * v["out_w"] for v in views if v["valid"])
    bar = widgets.HBox(controls, layout=widgets.Layout(flex_flow="row wrap"))
    bar.add_class("cx-controls")
    box = widgets.VBox([widgets.HTML(stylesheet(most)), bar, root])
    box.add_class("cx-explorer")
    # keep references (tests inspect them)
    box._dlcourse_controls, box._dlcourse_root, box._dlcourse_links = controls, root, links
    return box


def _grid(image, default) -> torch.Tensor:
    grid = torch.tensor(default if image is None else image, dtype=torch.float64)
    if grid.dim() != 2:
        raise ValueError(f"the explorer's image must be a 2-D grid, got shape {tuple(grid.shape)}")
    return grid


def convolution_explorer(image=None, kernels=range(1, 6), strides=range(1, 4),
                         paddings=range(0, 3), dilations=range(1, 3),
                         start: Setting = WORKED_EXAMPLE) -> widgets.VBox:
    """Build the convolution explorer (use it as the last expression of a notebook cell).

    Four sliders index four levels of nested Stacks; 5 x 3 x 3 x 2 = 90 precomputed views
    by default, opening on `start` (the worked example: F=3, S=1, P=0, dilation 1). Each
    slider is a SelectionSlider whose synced `index` (0..n-1) is linked to the Stacks'
    `selected_index`; its label shows the real value.
    """
    grid = _grid(image, DEFAULT_IMAGE)
    levels = [("kernel F", list(kernels)), ("stride S", list(strides)),
              ("padding P", list(paddings)), ("dilation", list(dilations))]

    def make_view(values: tuple, uid: str):
        s = Setting(*values)
        view = compute_view(grid, s)
        return view, render_view(view, s, uid)

    return _explorer(levels, (start.kernel, start.stride, start.padding, start.dilation), make_view, "cx")


def pooling_explorer(image=None, ops=POOL_OPS, kernels=range(2, 4), strides=range(1, 4),
                     paddings=range(0, 2), start: PoolSetting = POOL_EXAMPLE) -> widgets.VBox:
    """Build the pooling explorer: max or average pooling with window F, stride S, padding P.

    2 x 2 x 3 x 2 = 24 precomputed views by default, opening on 2x2 max pooling at stride 2.
    """
    grid = _grid(image, DEFAULT_POOL_IMAGE)
    levels = [("pooling", list(ops)), ("window F", list(kernels)), ("stride S", list(strides)),
              ("padding P", list(paddings))]

    def make_view(values: tuple, uid: str):
        s = PoolSetting(*values)
        view = compute_pool_view(grid, s)
        return view, render_pool_view(view, s, uid)

    return _explorer(levels, (start.op, start.kernel, start.stride, start.padding), make_view, "px")
