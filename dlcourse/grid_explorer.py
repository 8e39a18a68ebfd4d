"""Small explorers for the book's static pages: one or more sliders over precomputed views.

A page gives the sliders (a description and the labels of its settings each) and a function
that renders one combination of settings as HTML; `grid_explorer` computes every view in
advance and nests them in `widgets.Stack`s, one level per slider, joined to the sliders with
`widgets.jslink`. The browser resolves those links from the embedded widget state, so the
explorer works in the built book without a Python kernel, as the inception explorer does
(`dlcourse.arch_explorer`, which explains the design). The sliders wrap onto several lines on a
narrow screen, and the views' tables use the `gx` class, whose style keeps them within a phone's
width.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import ipywidgets as widgets

__all__ = ["grid_explorer", "table", "STYLE"]

STYLE = ("<style>.gx table{border-collapse:collapse;margin:0.4em 0}.gx td,.gx th{border:1px solid #999;"
         "padding:0.15em 0.5em;text-align:right}.gx td:first-child,.gx th:first-child{text-align:left}"
         "@media (max-width: 600px){.gx table{font-size:0.8em}.gx td,.gx th{padding:0.1em 0.3em}}</style>")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    """An HTML table in the explorers' style; numbers are formatted with thousands separators."""
    def cell(v: object) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<div class='gx'>{caption}<table><tr>{head}</tr>{body}</table></div>"


def grid_explorer(levels: Sequence[tuple[str, Sequence[str]]], render: Callable[[tuple[int, ...]], str]
                  ) -> widgets.VBox:
    """Sliders over every combination of settings, each view rendered once by `render`.

    `levels` is a list of (slider description, option labels); `render` receives the index of the
    chosen option of each slider, in order, and returns the view's HTML. All combinations are
    rendered when the function is called (keep their number in the tens).
    """
    sliders = [widgets.SelectionSlider(options=list(options), index=0, description=name,
                                       continuous_update=True, style={"description_width": "initial"})
               for name, options in levels]
    stacks_by_level: list[list[widgets.Stack]] = [[] for _ in levels]

    def build(depth: int, chosen: tuple[int, ...]) -> widgets.Widget:
        if depth == len(levels):
            return widgets.HTML(value=render(chosen))
        stack = widgets.Stack(children=[build(depth + 1, chosen + (i,)) for i in range(len(levels[depth][1]))],
                              selected_index=0)
        stacks_by_level[depth].append(stack)
        return stack

    root = build(0, ())
    links = [widgets.jslink((slider, "index"), (stack, "selected_index"))
             for slider, stacks in zip(sliders, stacks_by_level) for stack in stacks]
    row = widgets.HBox(sliders, layout=widgets.Layout(flex_flow="row wrap"))
    box = widgets.VBox([widgets.HTML(STYLE), row, root])
    box._dlcourse_links = links          # keep references (the links must outlive this call)
    box._dlcourse_views = len(list(itertools.product(*(range(len(o)) for _, o in levels))))
    return box
