"""The sampling explorer: what the prefix and the temperature do to a character model's text.

Chapter 10 trains a character language model; this explorer shows, for a few prefixes and
temperatures, (a) the model's distribution over the next character after the prefix at that
temperature, as the most likely characters with their probabilities, and (b) a continuation
the model writes from the prefix with `dlcourse.text.generate` (temperature 0 is greedy
decoding; every other view draws from a generator seeded with the same `seed`, so a page
shows the same text on every build and a reader can reproduce any view).

Why it is built this way (as `dlcourse.explorer` and `dlcourse.arch_explorer` are): the book
is static HTML without a Python kernel, so every view is computed in advance, one
`widgets.HTML` per (prefix, temperature), nested in `widgets.Stack`s, one level per control,
and each control is joined to its level's Stacks with `widgets.jslink`, which the browser
resolves from the embedded widget state on its own (in a live notebook too).
"""
from __future__ import annotations

import html
from typing import Sequence

import ipywidgets as widgets
import torch
from torch import nn

from dlcourse.text import Vocab, generate

__all__ = ["TEMPERATURES", "next_char_distribution", "compute_view", "render_view", "sampling_explorer"]

TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


@torch.no_grad()
def next_char_distribution(model: nn.Module, vocab: Vocab, prefix: str, temperature: float) -> torch.Tensor:
    """(V,) probabilities of the character after `prefix` when sampling at `temperature`:
    softmax(logits / temperature), and all mass on the most likely character at temperature 0
    (what greedy decoding picks)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, _ = model(vocab.encode(prefix).to(device)[None], None)         # (1, len(prefix), V)
    model.train(was_training)
    last = logits[0, -1].float().cpu()                                     # (V,)
    if temperature == 0:
        return torch.nn.functional.one_hot(last.argmax(), last.numel()).float()
    return torch.softmax(last / temperature, dim=-1)


def _shown(ch: str) -> str:
    return "\u2423" if ch == " " else ch                                   # a visible space


def compute_view(model: nn.Module, vocab: Vocab, prefix: str, temperature: float, num_chars: int = 120,
                 seed: int = 0, top: int = 5) -> dict:
    """One view: the `top` most likely next characters with their probabilities, the entropy of
    the next-character distribution (nats), and the generated text (prefix included)."""
    probs = next_char_distribution(model, vocab, prefix, temperature)
    p, idx = probs.topk(min(top, probs.numel()))
    nonzero = probs[probs > 0]
    entropy = float(-(nonzero * nonzero.log()).sum())
    text = generate(model, vocab, prefix, num_chars, temperature, generator=torch.Generator().manual_seed(seed))
    return {"prefix": prefix, "temperature": temperature, "text": text, "entropy": entropy,
            "top": [(vocab.itos[int(i)], float(q)) for i, q in zip(idx, p)]}


def render_view(view: dict) -> str:
    """HTML for one view: the next-character table and the continuation (prefix in bold)."""
    rows = "".join(f"<tr><td><code>{html.escape(_shown(ch))}</code></td><td>{q:.3f}</td>"
                   f"<td><span class='sx-bar' style='width:{100 * q:.0f}px'></span></td></tr>"
                   for ch, q in view["top"])
    prefix, rest = view["prefix"], view["text"][len(view["prefix"]):]
    mode = "greedy (temperature 0)" if view["temperature"] == 0 else f"temperature {view['temperature']:g}"
    return (f"<div class='sx'><p><b>{mode}</b>; next-character entropy {view['entropy']:.2f} nats</p>"
            f"<table><tr><th>next</th><th>probability</th><th></th></tr>{rows}</table>"
            f"<p class='sx-text'><b>{html.escape(prefix)}</b>{html.escape(rest)}</p></div>")


STYLE = ("<style>.sx table{border-collapse:collapse;margin:0.3em 0}.sx td,.sx th{border:1px solid #ccc;"
         "padding:0.1em 0.5em;text-align:left}.sx .sx-bar{display:inline-block;height:0.8em;background:#4c78a8}"
         ".sx .sx-text{font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere;max-width:40em}"
         ".sx{max-width:100%}</style>")


def sampling_explorer(model: nn.Module, vocab: Vocab, prefixes: Sequence[str],
                      temperatures: Sequence[float] = TEMPERATURES, num_chars: int = 120,
                      seed: int = 0) -> widgets.VBox:
    """Build the explorer (use it as the last expression of a notebook cell): a drop-down for
    the prefix, a slider for the temperature, len(prefixes) x len(temperatures) precomputed views.
    Opens on the first prefix at the temperature nearest 1."""
    prefixes, temperatures = list(prefixes), list(temperatures)
    if not prefixes or not temperatures:
        raise ValueError("the explorer needs at least one prefix and one temperature")
    start = min(range(len(temperatures)), key=lambda k: abs(temperatures[k] - 1.0))
    # a drop-down and a slider that shrinks: both fit a phone-width screen (390 CSS pixels)
    controls = [widgets.Dropdown(options=prefixes, index=0, description="prefix",
                                 layout=widgets.Layout(width="auto", max_width="20em")),
                widgets.SelectionSlider(options=[f"{t:g}" for t in temperatures], index=start,
                                        description="temperature", continuous_update=True,
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(flex="1 1 14em", width="auto", max_width="26em",
                                                              min_width="0"))]
    stacks_by_level: list[list[widgets.Stack]] = [[], []]
    views: list[dict] = []

    def leaf(prefix: str, t: float) -> widgets.Widget:
        view = compute_view(model, vocab, prefix, t, num_chars, seed)
        views.append(view)
        return widgets.HTML(value=render_view(view))

    rows = []
    for prefix in prefixes:
        row = widgets.Stack(children=[leaf(prefix, t) for t in temperatures], selected_index=start)
        stacks_by_level[1].append(row)
        rows.append(row)
    root = widgets.Stack(children=rows, selected_index=0)
    stacks_by_level[0].append(root)
    links = [widgets.jslink((control, "index"), (stack, "selected_index"))
             for control, stacks in zip(controls, stacks_by_level) for stack in stacks]
    box = widgets.VBox([widgets.HTML(STYLE), widgets.HBox(controls, layout=widgets.Layout(flex_flow="row wrap")),
                        root])
    # keep references: the links must outlive this call; tests inspect the views
    box._dlcourse_controls, box._dlcourse_links, box._dlcourse_views = controls, links, views
    return box
