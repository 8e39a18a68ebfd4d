"""The inception explorer: what 1x1 bottlenecks do to an inception module's size and cost.

The module is deck 003's example: a 28x28x256 input and four parallel branches, a 1x1
convolution with 128 filters, a 3x3 convolution with 192, a 5x5 convolution with 96 and a
3x3 max-pool. Three sliders choose the 1x1 reductions of GoogLeNet (Szegedy et al. 2014,
Fig. 2b): the width of the 1x1 convolution in front of the 3x3 branch, the one in front of
the 5x5 branch, and the projection after the pool ("none" leaves a branch as in the naive
module). Each view tabulates, per branch, the layers, the output channels, the parameters
and the multiply-adds, the module's totals, and how they compare with the naive module.

Every figure comes from real modules: the branches are built from `nn.Conv2d` and
`nn.MaxPool2d` on the `meta` device and measured with `dlcourse.flops.macs_by_module`
(torch's flop counter) and `parameters()`; `tests/test_arch_explorer.py` checks them
against the lecture's formula W_o * H_o * F * F * D * K.

Why it is built this way (as `dlcourse.explorer` is): the book is static HTML without a
Python kernel, so every view is computed in advance, one `widgets.HTML` per combination of
the sliders, nested in `widgets.Stack`s one level per slider, and each slider is joined to
its level's Stacks with `widgets.jslink`, which the browser resolves from the embedded
widget state on its own.
"""
from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from torch import nn

from dlcourse.flops import macs_by_module

# Deck 003's naive inception example.
INPUT = (256, 28, 28)          # (channels, height, width)
WIDTHS = {"1x1": 128, "3x3": 192, "5x5": 96}
REDUCE3 = (None, 16, 32, 64, 96, 128)      # None = no 1x1 in front of the 3x3 convolution
REDUCE5 = (None, 8, 16, 32, 64)
POOL_PROJ = (None, 32, 64, 128)

__all__ = ["Setting", "NAIVE", "build_branches", "compute_view", "render_view", "inception_explorer",
           "INPUT", "WIDTHS", "REDUCE3", "REDUCE5", "POOL_PROJ"]


@dataclass(frozen=True)
class Setting:
    reduce3: int | None
    reduce5: int | None
    pool_proj: int | None


class _Branches(nn.Module):
    """The four branches side by side; forward concatenates them along channels."""

    def __init__(self, branches: dict[str, nn.Module]):
        super().__init__()
        self.branches = nn.ModuleDict(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches.values()], dim=1)


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)        # "same" padding keeps 28x28


def build_branches(s: Setting, c_in: int = INPUT[0]) -> _Branches:
    """The module for a setting, on the `meta` device (shapes only, no memory)."""
    with torch.device("meta"):
        def reduced(width: int, k: int, reduce: int | None) -> nn.Module:
            if reduce is None:
                return _conv(c_in, width, k)
            return nn.Sequential(_conv(c_in, reduce, 1), _conv(reduce, width, k))

        pool: nn.Module = nn.MaxPool2d(3, stride=1, padding=1)
        if s.pool_proj is not None:
            pool = nn.Sequential(pool, _conv(c_in, s.pool_proj, 1))
        return _Branches({
            "1x1": _conv(c_in, WIDTHS["1x1"], 1),
            "3x3": reduced(WIDTHS["3x3"], 3, s.reduce3),
            "5x5": reduced(WIDTHS["5x5"], 5, s.reduce5),
            "pool": pool,
        })


def _layers(name: str, s: Setting) -> str:
    reduce = {"3x3": s.reduce3, "5x5": s.reduce5}.get(name)
    if name == "pool":
        return "3x3 max-pool" + (f" -> 1x1 conv, {s.pool_proj}" if s.pool_proj else "")
    conv = f"{name} conv, {WIDTHS[name]}"
    return f"1x1 conv, {reduce} -> {conv}" if reduce else conv


NAIVE = Setting(None, None, None)


@functools.lru_cache(maxsize=None)
def compute_view(s: Setting) -> dict:
    """Everything a view shows, as plain data: per-branch rows and the module's totals.

    Returns {"rows": [{"branch", "layers", "channels", "params", "macs"}], "out_shape",
    "params", "macs", "naive_params", "naive_macs"} (cached: do not modify it).
    """
    module = build_branches(s)
    c, h, w = INPUT
    out = module(torch.zeros(1, c, h, w, device="meta"))
    per = macs_by_module(module, INPUT, device=torch.device("meta"))
    rows = []
    for name, branch in module.branches.items():
        channels = branch(torch.zeros(1, c, h, w, device="meta")).shape[1]
        rows.append({"branch": name, "layers": _layers(name, s), "channels": channels,
                     "params": sum(p.numel() for p in branch.parameters()),
                     "macs": per.get(f"branches.{name}", 0)})
    view = {"rows": rows, "out_shape": tuple(out.shape[1:]),
            "params": sum(r["params"] for r in rows), "macs": per[""]}
    naive = view if s == NAIVE else compute_view(NAIVE)
    view["naive_params"], view["naive_macs"] = naive["params"], naive["macs"]
    return view


def _fmt(n: int) -> str:
    return f"{n:,}"


def render_view(view: dict, s: Setting) -> str:
    """HTML for one setting: a table of the branches and a line comparing with the naive module."""
    head = "".join(f"<th>{t}</th>" for t in ("branch", "layers", "output channels", "parameters",
                                              "multiply-adds"))
    body = "".join(
        f"<tr><td>{r['branch']}</td><td>{html.escape(r['layers'])}</td><td>{r['channels']}</td>"
        f"<td>{_fmt(r['params'])}</td><td>{_fmt(r['macs'])}</td></tr>" for r in view["rows"])
    c, h, w = view["out_shape"]
    total = (f"<tr class='ix-total'><td>module</td><td>concatenate</td><td>{c}</td>"
             f"<td>{_fmt(view['params'])}</td><td>{_fmt(view['macs'])}</td></tr>")
    ratio = view["macs"] / view["naive_macs"]
    label = ", ".join(f"{k}: {v if v is not None else 'none'}" for k, v in
                      (("3x3 reduce", s.reduce3), ("5x5 reduce", s.reduce5), ("pool projection", s.pool_proj)))
    return (f"<div class='ix'><b>{label}</b>"
            f"<p>Input {INPUT[1]}x{INPUT[2]}x{INPUT[0]} -> output {h}x{w}x{c}. "
            f"Multiply-adds: {_fmt(view['macs'])} = {ratio:.1%} of the naive module's "
            f"{_fmt(view['naive_macs'])}; parameters: {_fmt(view['params'])} "
            f"(naive: {_fmt(view['naive_params'])}).</p>"
            f"<table class='ix-table'><tr>{head}</tr>{body}{total}</table></div>")


# On a phone (the book's mobile layout is 390 CSS pixels wide) the table drops its "layers" column,
# which the sliders' labels already say, and shrinks its text, so that the multiply-adds stay on screen.
STYLE = ("<style>.ix table{border-collapse:collapse;margin:0.4em 0}.ix td,.ix th{border:1px solid #999;"
         "padding:0.15em 0.6em;text-align:right}.ix td:nth-child(-n+2){text-align:left}"
         ".ix .ix-total{font-weight:bold;background:#f2f2f2}"
         "@media (max-width: 600px){.ix td:nth-child(2),.ix th:nth-child(2){display:none}"
         ".ix table{font-size:0.8em}.ix td,.ix th{padding:0.1em 0.3em}}</style>")


def inception_explorer(reduce3=REDUCE3, reduce5=REDUCE5, pool_proj=POOL_PROJ) -> widgets.VBox:
    """Build the explorer (use it as the last expression of a notebook cell).

    Three SelectionSliders index three levels of nested Stacks: 6 x 5 x 4 = 120
    precomputed views by default. A slider's synced `index` is linked to the Stacks'
    `selected_index`; its label shows the width ("none" for no 1x1 convolution).
    """
    levels = [("3x3 reduce", list(reduce3)), ("5x5 reduce", list(reduce5)), ("pool proj", list(pool_proj))]
    sliders = [widgets.SelectionSlider(options=["none" if v is None else str(v) for v in vals], index=0,
                                       description=name, continuous_update=True,
                                       style={"description_width": "initial"})
               for name, vals in levels]
    stacks_by_level: list[list[widgets.Stack]] = [[] for _ in levels]

    def build(depth: int, chosen: tuple) -> widgets.Widget:
        if depth == len(levels):
            s = Setting(*chosen)
            return widgets.HTML(value=render_view(compute_view(s), s))
        stack = widgets.Stack(children=[build(depth + 1, chosen + (v,)) for v in levels[depth][1]],
                              selected_index=0)
        stacks_by_level[depth].append(stack)
        return stack

    root = build(0, ())
    links = [widgets.jslink((slider, "index"), (stack, "selected_index"))
             for slider, stacks in zip(sliders, stacks_by_level) for stack in stacks]
    # the sliders wrap onto several lines where the page is narrower than the three of them
    row = widgets.HBox(sliders, layout=widgets.Layout(flex_flow="row wrap"))
    box = widgets.VBox([widgets.HTML(STYLE), row, root])
    box._dlcourse_links = links          # keep references (the links must outlive this call)
    return box
