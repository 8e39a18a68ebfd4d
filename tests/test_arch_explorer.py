"""The inception explorer: precomputed figures against the conv-cost formula and the reference
modules, and the Stack/jslink wiring that makes it work in the static book."""
import itertools

import ipywidgets as widgets
import pytest
import torch
from ipywidgets.widgets.widget_link import Link

from dlcourse import arch_explorer as ax
from dlcourse.flops import count_macs
from dlcourse.models.googlenet import Inception, InceptionSpec, NaiveInception

C, H, W = ax.INPUT


def formula_macs(s: ax.Setting) -> int:
    """W_o * H_o * F * F * D * K over every convolution of the module (pooling costs none)."""
    hw = H * W
    total = hw * 1 * 1 * C * ax.WIDTHS["1x1"]
    for width, k, reduce in ((ax.WIDTHS["3x3"], 3, s.reduce3), (ax.WIDTHS["5x5"], 5, s.reduce5)):
        total += hw * C * reduce + hw * k * k * reduce * width if reduce else hw * k * k * C * width
    if s.pool_proj:
        total += hw * C * s.pool_proj
    return total


def formula_params(s: ax.Setting) -> int:
    def conv(c_in, c_out, k):
        return k * k * c_in * c_out + c_out
    total = conv(C, ax.WIDTHS["1x1"], 1)
    for width, k, reduce in ((ax.WIDTHS["3x3"], 3, s.reduce3), (ax.WIDTHS["5x5"], 5, s.reduce5)):
        total += conv(C, reduce, 1) + conv(reduce, width, k) if reduce else conv(C, width, k)
    return total + (conv(C, s.pool_proj, 1) if s.pool_proj else 0)


ALL = [ax.Setting(*c) for c in itertools.product(ax.REDUCE3, ax.REDUCE5, ax.POOL_PROJ)]


@pytest.mark.parametrize("s", ALL[::7] + [ALL[-1]], ids=str)
def test_every_figure_matches_the_formula(s):
    view = ax.compute_view(s)
    assert view["macs"] == formula_macs(s) == sum(r["macs"] for r in view["rows"])
    assert view["params"] == formula_params(s)
    channels = ax.WIDTHS["1x1"] + ax.WIDTHS["3x3"] + ax.WIDTHS["5x5"] + (s.pool_proj or C)
    assert view["out_shape"] == (channels, H, W)
    assert [r["channels"] for r in view["rows"]] == [128, 192, 96, s.pool_proj or C]


def test_naive_view_is_deck003s_example():
    view = ax.compute_view(ax.NAIVE)
    assert view["out_shape"] == (672, 28, 28) and view["macs"] == 854_196_224
    with torch.device("meta"):
        naive = NaiveInception(256, 128, 192, 96)
    assert view["macs"] == count_macs(naive, ax.INPUT)
    assert view["params"] == sum(p.numel() for p in naive.parameters())


def test_fully_reduced_view_agrees_with_the_reference_inception_module():
    s = ax.Setting(64, 32, 64)
    with torch.device("meta"):
        ref = Inception(256, InceptionSpec(128, 64, 192, 32, 96, 64))
    view = ax.compute_view(s)
    assert view["macs"] == count_macs(ref, ax.INPUT)
    assert view["params"] == sum(p.numel() for p in ref.parameters())
    assert view["macs"] < view["naive_macs"] / 3


def test_rendered_view_states_its_setting_and_numbers():
    s = ax.Setting(16, None, 128)
    view = ax.compute_view(s)
    page = ax.render_view(view, s)
    assert "3x3 reduce: 16, 5x5 reduce: none, pool projection: 128" in page
    assert f"{view['macs']:,}" in page and f"{view['params']:,}" in page
    assert f"output {H}x{W}x{view['out_shape'][0]}" in page
    assert "1x1 conv, 16 -&gt; 3x3 conv, 192" in page           # escaped arrow in the layers column


@pytest.fixture(scope="module")
def box():
    return ax.inception_explorer()


def _leaves(w, path=()):
    if isinstance(w, widgets.Stack):
        for i, c in enumerate(w.children):
            yield from _leaves(c, path + (i,))
    else:
        yield path, w


def test_widget_tree_has_one_view_per_setting_and_all_jslinks(box):
    style, row, root = box.children
    sliders = list(row.children)
    sizes = [len(ax.REDUCE3), len(ax.REDUCE5), len(ax.POOL_PROJ)]
    assert [len(sl.options) for sl in sliders] == sizes
    leaves = list(_leaves(root))
    assert len(leaves) == sizes[0] * sizes[1] * sizes[2]
    assert all(isinstance(w, widgets.HTML) for _, w in leaves)
    stacks_by_depth = {}

    def walk(w, depth):
        if isinstance(w, widgets.Stack):
            stacks_by_depth.setdefault(depth, []).append(w)
            for c in w.children:
                walk(c, depth + 1)
    walk(root, 0)
    links = {(id(l.source[0]), l.source[1], id(l.target[0]), l.target[1]) for l in box._dlcourse_links}
    assert all(isinstance(l, Link) for l in box._dlcourse_links)
    for depth, stacks in stacks_by_depth.items():
        for st in stacks:
            assert (id(sliders[depth]), "index", id(st), "selected_index") in links
    assert len(links) == 1 + sizes[0] + sizes[0] * sizes[1]


def test_leaf_at_path_shows_its_setting(box):
    root = box.children[2]
    levels = [ax.REDUCE3, ax.REDUCE5, ax.POOL_PROJ]
    for path, leaf in _leaves(root):
        s = ax.Setting(*(levels[i][j] for i, j in enumerate(path)))
        assert ax.render_view(ax.compute_view(s), s) == leaf.value
    assert [sl.options[0] for sl in box.children[1].children] == ["none"] * 3
