"""The convolution explorer: an ipywidgets view of one convolution on a small input.

Sliders choose the kernel size, stride, padding and dilation; the view shows the padded
input, the kernel, the output size (or why the setting is invalid) and, for a chosen
output position, the window it reads and the value computed there.

Why it is built this way: the book is static HTML with no Python kernel behind it, yet
the explorer must still respond there. So every view is computed in advance, one
`widgets.HTML` per combination of the four parameters, and the views are nested in
`widgets.Stack` containers, one level per parameter. Each slider is connected with
`widgets.jslink` to the `selected_index` of every Stack at its level, which the browser
resolves on its own from the embedded widget state. Inside a view, the output position
is chosen by clicking an output cell: that is plain HTML (hidden radio buttons with
labels) and CSS, so it also works without a kernel.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import torch

from dlcourse.conv import output_size, window_slices

# The worked example of chapter 1: its 5x5 image is the explorer's input.
DEFAULT_IMAGE = [[2, 4, 9, 1, 4], [2, 1, 4, 4, 6], [1, 1, 2, 9, 2], [7, 3, 5, 1, 3], [2, 3, 4, 8, 5]]
# Its 3x3 kernel is used for F = 3; other sizes get small fixed integers (seeded).
DEFAULT_KERNEL_3 = [[1, 2, 3], [-4, 7, 4], [2, -5, 1]]


def default_kernel(f: int) -> torch.Tensor:
    """The explorer's F x F integer kernel (deterministic, so the book page is reproducible)."""
    if f == 3:
        return torch.tensor(DEFAULT_KERNEL_3, dtype=torch.float64)
    g = torch.Generator().manual_seed(100 + f)
    return torch.randint(-3, 4, (f, f), generator=g).to(torch.float64)


@dataclass(frozen=True)
class Setting:
    kernel: int
    stride: int
    padding: int
    dilation: int


def compute_view(image: torch.Tensor, s: Setting) -> dict:
    """Everything a view shows, as plain data (tested against torch conv2d).

    Returns {"valid", "message", "out_h", "out_w", "output" (list of lists), "kernel",
    "padded", "windows": {(i, j): (rows, cols)}} where rows/cols index the padded input.
    """
    h, w = image.shape
    kernel = default_kernel(s.kernel)
    padded = torch.nn.functional.pad(image, (s.padding,) * 4)
    try:
        out_h = output_size(h, s.kernel, s.stride, s.padding, s.dilation)
        out_w = output_size(w, s.kernel, s.stride, s.padding, s.dilation)
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


def _num(v: float) -> str:
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


def render_view(view: dict, s: Setting, uid: str) -> str:
    """HTML for one setting. `uid` makes the element ids and CSS rules unique on the page."""
    title = (f"<b>F={s.kernel}, S={s.stride}, P={s.padding}, dilation={s.dilation}</b> "
             f"on a {view['padded'].shape[0] - 2 * s.padding}x{view['padded'].shape[1] - 2 * s.padding} input")
    pad = view["padded"]
    kernel_html = _table([[_num(v) for v in row] for row in view["kernel"].tolist()], caption="kernel")
    if not view["valid"]:
        return (f'<div class="cx" id="{uid}">{title}<p class="cx-msg" style="color:#b00020">'
                f'{html.escape(view["message"])}</p>'
                + _table([[_num(v) for v in row] for row in pad.tolist()], caption="padded input")
                + kernel_html + "</div>")

    n_pos = view["out_h"] * view["out_w"]
    # input cell classes: "p" for padding, "wK" for every window K that reads the cell
    cls = [["p" if (r < s.padding or c < s.padding or r >= pad.shape[0] - s.padding
                    or c >= pad.shape[1] - s.padding) else "" for c in range(pad.shape[1])]
           for r in range(pad.shape[0])]
    explain = []
    for (i, j), (rows, cols) in view["windows"].items():
        k = i * view["out_w"] + j
        for r in range(rows.start, rows.stop, rows.step):
            for c in range(cols.start, cols.stop, cols.step):
                cls[r][c] += f" w{k}"
        # spell out the products for small kernels; for big ones the page would grow too much
        terms = " + ".join(
            f"{_num(a)}*{_num(b)}" for a, b in zip(pad[rows, cols].flatten().tolist(),
                                                    view["kernel"].flatten().tolist()))
        if s.kernel > 3:
            terms = f"sum of {s.kernel * s.kernel} products"
        explain.append(
            f'<div class="cx-val v{k}">Output ({i}, {j}) reads padded rows {rows.start}..{rows.stop - 1}, '
            f'columns {cols.start}..{cols.stop - 1} (step {rows.step}): '
            f'{terms} = <b>{_num(view["output"][i][j])}</b></div>')
    out_cells = [[f'<label for="{uid}-r{i * view["out_w"] + j}">{_num(v)}</label>'
                  for j, v in enumerate(row)] for i, row in enumerate(view["output"])]
    out_cls = [[f"o{i * view['out_w'] + j}" for j in range(view["out_w"])] for i in range(view["out_h"])]
    radios = "".join(
        f'<input type="radio" class="r{k}" name="{uid}" id="{uid}-r{k}"{" checked" if k == 0 else ""}>'
        for k in range(n_pos))
    return (f'<div class="cx" id="{uid}">{radios}<div class="cx-body">{title}'
            f'<p class="cx-msg">{view["message"]} (click an output cell to see its window)</p>'
            + _table([[_num(v) for v in row] for row in pad.tolist()], cls, "padded input")
            + kernel_html + _table(out_cells, out_cls, "output") + "".join(explain) + "</div></div>")


def stylesheet(max_positions: int) -> str:
    """One <style> block for all views: a checked radio "rK" highlights window K, output K
    and explanation K of its own view (the `~` sibling selector keeps views apart)."""
    rules = "".join(
        f".cx .r{k}:checked~div .w{k}{{background:#ffd166}}"
        f".cx .r{k}:checked~div .o{k}{{background:#06d6a0}}"
        f".cx .r{k}:checked~div .v{k}{{display:block}}" for k in range(max_positions))
    return ("<style>.cx input{display:none}.cx .cx-val{display:none}"
            ".cx td{border:1px solid #999;min-width:2.2em;text-align:center}.cx td.p{color:#999}"
            ".cx label{cursor:pointer;display:block}"
            ".cx table{display:inline-table;margin:0 1em 0.5em 0;border-collapse:collapse}"
            f"{rules}</style>")


def convolution_explorer(image=None, kernels=range(1, 6), strides=range(1, 4),
                         paddings=range(0, 3), dilations=range(1, 3)) -> widgets.VBox:
    """Build the explorer widget (use it as the last expression of a notebook cell).

    Four sliders index four levels of nested Stacks; 5 x 3 x 3 x 2 = 90 precomputed views
    by default. Each slider is a SelectionSlider whose synced `index` (0..n-1) is linked
    to the Stacks' `selected_index`; its label shows the real value.
    """
    image = torch.tensor(DEFAULT_IMAGE if image is None else image, dtype=torch.float64)
    if image.dim() != 2:
        raise ValueError(f"the explorer's image must be a 2-D grid, got shape {tuple(image.shape)}")
    levels = [("kernel F", list(kernels)), ("stride S", list(strides)),
              ("padding P", list(paddings)), ("dilation", list(dilations))]
    sliders = [widgets.SelectionSlider(options=[str(v) for v in vals], index=0,
                                       description=name, continuous_update=True)
               for name, vals in levels]
    stacks_by_level: list[list[widgets.Stack]] = [[] for _ in levels]
    views: list[dict] = []

    def build(depth: int, chosen: tuple[int, ...]):
        if depth == len(levels):
            s = Setting(*chosen)
            uid = f"cx{len(views)}"
            view = compute_view(image, s)
            views.append(view)
            return widgets.HTML(value=render_view(view, s, uid))
        children = [build(depth + 1, chosen + (v,)) for v in levels[depth][1]]
        stack = widgets.Stack(children=children, selected_index=0)
        stacks_by_level[depth].append(stack)
        return stack

    root = build(0, ())
    links = [widgets.jslink((slider, "index"), (stack, "selected_index"))
             for slider, stacks in zip(sliders, stacks_by_level) for stack in stacks]
    most = max(v["out_h"] * v["out_w"] for v in views if v["valid"])
    box = widgets.VBox([widgets.HTML(stylesheet(most)), widgets.HBox(sliders[:2]),
                        widgets.HBox(sliders[2:]), root])
    box._dlcourse_links = links  # keep references (tests inspect them)
    return box
