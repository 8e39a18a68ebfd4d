"""The convolution explorer: precomputed values against torch, error views, and the jslink wiring."""
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


@pytest.mark.parametrize("k, s, p, d, why", [(3, 3, 0, 1, "not an integer"), (5, 1, 0, 2, "spans"),
                                             (2, 2, 0, 1, "not an integer")])
def test_invalid_settings_show_the_reason(k, s, p, d, why):
    view = explorer.compute_view(IMAGE, explorer.Setting(k, s, p, d))
    assert not view["valid"]
    html = explorer.render_view(view, explorer.Setting(k, s, p, d), "cxT")
    assert "invalid setting" in html and why in html
    assert "Output:" not in html
    # torch agrees that (5 + 2P - span) is not a multiple of S, or the window does not fit
    span = d * (k - 1) + 1
    assert (5 + 2 * p - span) % s != 0 or span > 5 + 2 * p


def _leaves(w, path=()):
    if isinstance(w, widgets.Stack):
        for i, c in enumerate(w.children):
            yield from _leaves(c, path + (i,))
    else:
        yield path, w


def test_widget_tree_has_one_view_per_setting_and_all_jslinks(box):
    style, row1, row2, root = box.children
    sliders = list(row1.children) + list(row2.children)
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
    root = box.children[3]
    values = [list(range(1, 6)), list(range(1, 4)), list(range(0, 3)), list(range(1, 3))]
    for path, leaf in _leaves(root):
        k, s, p, d = (values[i][j] for i, j in enumerate(path))
        assert f"F={k}, S={s}, P={p}, dilation={d}" in leaf.value
        has_output = re.search(r"Output: (\d+) x (\d+)", leaf.value)
        assert bool(has_output) != ("invalid setting" in leaf.value)


def test_explorer_rejects_non_2d_image():
    with pytest.raises(ValueError, match="2-D"):
        explorer.convolution_explorer(image=[1, 2, 3])


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
