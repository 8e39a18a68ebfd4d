"""The convolution and pooling explorers: precomputed values against torch, error views, the
jslink wiring, the view they open on, and the touch sizes of their controls."""
import itertools
import re

import ipywidgets as widgets
from ipywidgets.widgets.widget_link import Link
import pytest
import torch
import torch.nn.functional as F

from dlcourse import explorer

IMAGE = torch.tensor(explorer.DEFAULT_IMAGE, dtype=torch.float64)


@pytest.fixture(scope="module")
def box():
    return explorer.convolution_explorer()


@pytest.mark.parametrize("k, s, p, d", [(3, 1, 0, 1), (3, 2, 0, 1), (3, 1, 1, 1), (2, 1, 2, 2),
                                        (5, 2, 2, 1), (1, 2, 1, 1), (4, 1, 0, 1), (3, 1, 2, 2)])
def test_precomputed_values_match_torch(k, s, p, d):
    view = explorer.compute_view(IMAGE, explorer.Setting(k, s, p, d))
    assert view["valid"]
    ref = F.conv2d(IMAGE[None, None], explorer.default_kernel(k)[None, None], stride=s, padding=p, dilation=d)[0, 0]
    assert torch.equal(torch.tensor(view["output"], dtype=torch.float64), ref)
    html = explorer.render_view(view, explorer.Setting(k, s, p, d), "cxT")
    assert f"Output: {ref.shape[0]} x {ref.shape[1]}" in html
    # the value at the last position is spelled out in the view
    assert f"= <b>{int(ref[-1, -1])}</b>" in html


def test_worked_example_kernel_is_used_for_f3():
    view = explorer.compute_view(IMAGE, explorer.Setting(3, 1, 0, 1))
    assert view["output"] == [[51, 66, 20], [31, 49, 101], [15, 53, -2]]


def torch_verdict(k, s, p, d):
    """What PyTorch says about a setting on the explorer's 5x5 image, independently of the
    explorer's arithmetic: "refused" (conv2d raises: the window does not fit the padded input),
    "tiles" (some window ends on the padded input's last row and column) or "leaves the edge"
    (conv2d drops the last rows/columns: the window does not fit a whole number of times).
    Coverage comes from autograd: an input pixel is in some window iff the gradient of the
    output's sum (all-ones kernel) is nonzero there."""
    x = F.pad(IMAGE, (p,) * 4).requires_grad_()
    try:
        out = F.conv2d(x[None, None], torch.ones(1, 1, k, k, dtype=torch.float64), stride=s, dilation=d)
    except RuntimeError:
        return "refused"
    out.sum().backward()
    return "tiles" if x.grad[-1].any() and x.grad[:, -1].any() else "leaves the edge"


@pytest.mark.parametrize("k, s, p, d, why", [(3, 3, 0, 1, "not an integer"), (5, 1, 0, 2, "spans"),
                                             (2, 2, 0, 1, "not an integer")])
def test_invalid_settings_show_the_reason(k, s, p, d, why):
    view = explorer.compute_view(IMAGE, explorer.Setting(k, s, p, d))
    assert not view["valid"]
    html = explorer.render_view(view, explorer.Setting(k, s, p, d), "cxT")
    assert "invalid setting" in html and why in html
    assert "Output:" not in html
    # PyTorch's reading of the same setting gives the same reason
    assert torch_verdict(k, s, p, d) == {"spans": "refused", "not an integer": "leaves the edge"}[why]


def test_every_setting_of_the_explorer_is_judged_as_torch_judges_it():
    # the whole grid the explorer precomputes (kernel 1-5, stride 1-3, padding 0-2, dilation 1-2)
    for k, s, p, d in itertools.product(range(1, 6), range(1, 4), range(0, 3), range(1, 3)):
        view = explorer.compute_view(IMAGE, explorer.Setting(k, s, p, d))
        verdict = torch_verdict(k, s, p, d)
        setting = f"F={k}, S={s}, P={p}, dilation={d}: torch says {verdict}, explorer says {view['message']}"
        assert view["valid"] == (verdict == "tiles"), setting
        if verdict == "tiles":
            ref = F.conv2d(IMAGE[None, None], explorer.default_kernel(k)[None, None], stride=s, padding=p,
                           dilation=d)[0, 0]
            assert torch.equal(torch.tensor(view["output"], dtype=torch.float64), ref), setting
        else:
            assert ("spans" if verdict == "refused" else "not an integer") in view["message"], setting


def _leaves(w, path=()):
    if isinstance(w, widgets.Stack):
        for i, c in enumerate(w.children):
            yield from _leaves(c, path + (i,))
    else:
        yield path, w


def test_widget_tree_has_one_view_per_setting_and_all_jslinks(box):
    style, bar, root = box.children
    sliders = list(bar.children)
    assert [len(sl.options) for sl in sliders] == [5, 3, 3, 2]
    leaves = list(_leaves(root))
    assert len(leaves) == 5 * 3 * 3 * 2
    assert all(isinstance(w, widgets.HTML) for _, w in leaves)
    # every Stack is linked to the slider of its depth, from the slider's index
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
    assert len(links) == sum(len(v) for v in stacks_by_depth.values()) == 1 + 5 + 15 + 45


def test_leaf_at_path_shows_its_setting(box):
    root = box.children[2]
    values = [list(range(1, 6)), list(range(1, 4)), list(range(0, 3)), list(range(1, 3))]
    for path, leaf in _leaves(root):
        k, s, p, d = (values[i][j] for i, j in enumerate(path))
        assert f"F={k}, S={s}, P={p}, dilation={d}" in leaf.value
        has_output = re.search(r"Output: (\d+) x (\d+)", leaf.value)
        assert bool(has_output) != ("invalid setting" in leaf.value)


def test_explorer_rejects_non_2d_image():
    with pytest.raises(ValueError, match="2-D"):
        explorer.convolution_explorer(image=[1, 2, 3])
    with pytest.raises(ValueError, match="2-D"):
        explorer.pooling_explorer(image=[1, 2, 3])


def _visible_leaf(root):
    """The view a reader sees before touching anything: follow every Stack's selected_index."""
    w = root
    while isinstance(w, widgets.Stack):
        w = w.children[w.selected_index]
    return w


def test_explorer_opens_on_the_worked_example(box):
    labels = {c.description: c.value for c in box._dlcourse_controls}
    assert labels == {"kernel F": "3", "stride S": "1", "padding P": "0", "dilation": "1"}
    leaf = _visible_leaf(box._dlcourse_root)
    assert "F=3, S=1, P=0, dilation=1" in leaf.value and "Output: 3 x 3" in leaf.value
    assert "= <b>51</b>" in leaf.value  # the worked example's first output value
    # every Stack of a level opens on its control's index (jslink would also copy it over)
    for depth, control in enumerate(box._dlcourse_controls):
        stacks = [l.target[0] for l in box._dlcourse_links if l.source[0] is control]
        assert stacks and all(st.selected_index == control.index for st in stacks), depth


def test_controls_are_touch_sized_and_wrap():
    """At phone width each slider gets its own line (flex wrap) and a 28 px handle."""
    box = explorer.convolution_explorer()
    style, bar = box.children[0].value, box.children[1]
    assert "cx-explorer" in box._dom_classes and bar.layout.flex_flow == "row wrap"
    handle = re.search(r"--jp-widgets-slider-handle-size:(\d+)px", style)
    assert handle and int(handle.group(1)) >= 24  # WCAG 2.2 minimum target size is 24 px
    assert all(c.layout.width == "auto" and c.layout.min_width == "0" for c in box._dlcourse_controls)


POOL_IMAGE = torch.tensor(explorer.DEFAULT_POOL_IMAGE, dtype=torch.float64)
POOL_SETTINGS = list(itertools.product(explorer.POOL_OPS, range(2, 4), range(1, 4), range(0, 2)))


@pytest.mark.parametrize("op, k, s, p", POOL_SETTINGS)
def test_pooling_views_match_torch_or_say_why_not(op, k, s, p):
    setting = explorer.PoolSetting(op, k, s, p)
    view = explorer.compute_pool_view(POOL_IMAGE, setting)
    html = explorer.render_pool_view(view, setting, "pxT")
    pool = F.max_pool2d if op == "max" else F.avg_pool2d  # avg: zeros padded and counted, as ours
    if view["valid"]:
        ref = pool(POOL_IMAGE[None, None], k, s, p)[0, 0]
        assert torch.equal(torch.tensor(view["output"], dtype=torch.float64), ref)
        assert f"Output: {ref.shape[0]} x {ref.shape[1]}" in html
    else:
        assert "invalid setting" in html and "not an integer" in html
        assert (4 + 2 * p - k) % s != 0  # PyTorch would floor: the last window would hang over


def test_pooling_padding_larger_than_half_the_window_is_refused_like_torch():
    view = explorer.compute_pool_view(POOL_IMAGE, explorer.PoolSetting("max", 2, 1, 2))
    assert not view["valid"] and "more than half the window" in view["message"]
    with pytest.raises(RuntimeError, match="half"):
        F.max_pool2d(POOL_IMAGE[None, None], 2, 1, 2)


def test_max_pooling_pads_with_minus_infinity_and_average_counts_padded_zeros():
    grid = -torch.ones(2, 2, dtype=torch.float64)  # all negative: a zero pad would win a max
    top_left = explorer.compute_pool_view(grid, explorer.PoolSetting("max", 2, 2, 1))["output"][0][0]
    assert top_left == -1.0
    assert explorer.compute_pool_view(grid, explorer.PoolSetting("average", 2, 2, 1))["output"][0][0] == -0.25


def test_pooling_explorer_opens_on_two_by_two_max_pooling_at_stride_two():
    box = explorer.pooling_explorer()
    assert [c.value for c in box._dlcourse_controls] == ["max", "2", "2", "0"]
    assert isinstance(box._dlcourse_controls[0], widgets.ToggleButtons)
    leaf = _visible_leaf(box._dlcourse_root)
    assert "max pooling, F=2, S=2, P=0" in leaf.value and "Output: 2 x 2" in leaf.value
    assert len(list(_leaves(box._dlcourse_root))) == 2 * 2 * 3 * 2
    assert len(box._dlcourse_links) == 1 + 2 + 4 + 12


def test_grid_covers_every_combination():
    combos = list(itertools.product(range(1, 6), range(1, 4), range(0, 3), range(1, 3)))
    valid = sum(explorer.compute_view(IMAGE, explorer.Setting(*c))["valid"] for c in combos)
    assert 0 < valid < len(combos)  # both kinds of views are shown


@pytest.mark.slow
@pytest.mark.xdist_group("ch1-notebooks")
def test_executed_notebook_embeds_widget_state():
    """nbclient stores the widget state that the static book page needs to make the sliders work."""
    import json
    import pathlib

    import nbformat
    from nbclient import NotebookClient

    path = pathlib.Path(__file__).resolve().parents[1] / "book" / "01-convolution" / "sliding-window.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    kinds = [m["model_name"] for m in state.values()]
    assert kinds.count("StackModel") == 1 + 5 + 15 + 45
    assert kinds.count("LinkModel") == 1 + 5 + 15 + 45
    text = json.dumps(state)
    assert "Output: 3 x 3" in text and "invalid setting" in text
    # the explorer is the output of a cell, as a widget view
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1 and views[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in state
