"""The ring runs and their explorer (chapter 13): a run is seeded and its snapshots hold what
`mode_coverage` gives for the generator's own samples; the scatter plots put the points where they
are; every view is precomputed and the controls are jslinks, so the explorer responds in the static
book."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget_link import Link
from PIL import Image

from dlcourse import ring_explorer as rx
from dlcourse.datasets.gaussians import ring_centers
from dlcourse.gan import mode_coverage
from dlcourse.models.gan import RingGenerator


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    return [rx.ring_run("a", steps=100, every=50, seed=0), rx.ring_run("b", steps=100, every=50, lr_g=1e-2, seed=0)]


def test_a_run_is_seeded_and_its_snapshots_are_the_generators_samples(runs):
    again = rx.ring_run("a", steps=100, every=50, seed=0)
    first = runs[0]
    assert [s.step for s in first.snapshots] == [0, 50, 100]
    for s, t in zip(first.snapshots, again.snapshots):
        assert torch.equal(s.samples, t.samples) and s.modes == t.modes and s.d_loss == t.d_loss
    for s in first.snapshots:
        cov = mode_coverage(s.samples, first.centers, first.std)
        assert (s.modes, s.high_quality) == (cov["modes"], cov["high_quality"])
    # step 0: a fresh generator seeded as the run seeds it, on the run's fixed noise
    torch.manual_seed(0)
    from dlcourse.datasets.gaussians import ring_of_gaussians

    ring_of_gaussians(50_000, std=0.05, seed=0)          # draws from its own generator, not the global one
    fresh = RingGenerator(8, 64)
    fixed = torch.randn(1000, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(first.snapshots[0].samples, fresh(fixed))
    assert first.snapshots[0].d_loss is None and first.snapshots[1].d_loss is not None
    # the second run's settings differ only in the generator's learning rate, and its samples differ
    assert {k for k in first.settings if first.settings[k] != runs[1].settings[k]} == {"lr_g"}
    assert not torch.equal(first.last.samples, runs[1].last.samples)


def _decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_scatter_puts_points_where_they_are_and_circles_around_the_centres():
    centers = ring_centers(8, 2.0)
    img = _decode(rx.scatter_uri(torch.tensor([[1.5, -1.5]]), centers, 0.05, size=180, extent=3.0))
    blue = (img[..., 2] > 200) & (img[..., 0] < 150)
    ys, xs = np.nonzero(blue)
    # x = 1.5 -> column (1.5 + 3) * 30 = 135; y = -1.5 -> row (3 + 1.5) * 30 = 135 (y up)
    assert set(xs.tolist()) <= {135, 136} and set(ys.tolist()) <= {135, 136} and len(xs) == 4
    orange = (img[..., 0] > 200) & (img[..., 1] > 90) & (img[..., 1] < 150) & (img[..., 2] < 60)
    for cx, cy in centers.tolist():
        col, row = int((cx + 3) * 30), int((3 - cy) * 30)
        window = orange[max(row - 6, 0):row + 7, max(col - 6, 0):col + 7]
        assert window.any() and not orange[row, col]         # an outline around the centre, not on it
    assert len(rx.scatter_uri(torch.randn(1000, 2), centers, 0.05)) < 12_000


def test_rendered_view_states_the_run_the_step_and_the_coverage(runs):
    run = runs[0]
    html = rx.render_view(run, run.snapshots[1])
    assert f"step 50 of 100: <b>{run.snapshots[1].modes} of 8 modes covered</b>" in html
    assert f"{100 * run.snapshots[1].high_quality:.1f}% of the samples" in html
    assert f"D {run.snapshots[1].d_loss:.3f}" in html and "<img class='rx-map' src='data:image/png;base64," in html
    assert "before training" in rx.render_view(run, run.snapshots[0])


def test_explorer_precomputes_every_view_and_links_its_controls(runs):
    box = rx.ring_explorer(runs)
    assert box._dlcourse_views == [(r.name, s.step) for r in runs for s in r.snapshots]
    chooser, slider = box._dlcourse_controls
    assert list(chooser.options) == ["a", "b"] and list(slider.options) == ["0", "50", "100"]
    assert slider.index == 2                                   # opens on the last snapshot
    links = box._dlcourse_links
    assert len(links) == 1 + len(runs) and all(type(l) is Link for l in links)   # jslink, not a Python observer
    root = box.children[-1]
    assert links[0].source == (chooser, "index") and links[0].target == (root, "selected_index")
    assert [l.target[0] for l in links[1:]] == list(root.children)
    shown = root.children[1].children[2].value
    assert "<b>b</b>, step 100 of 100" in shown


def test_explorer_refuses_runs_with_different_snapshot_steps(runs):
    other = rx.ring_run("c", steps=100, every=25, seed=0)
    with pytest.raises(ValueError):
        rx.ring_explorer([runs[0], other])
    with pytest.raises(ValueError):
        rx.ring_explorer([])
