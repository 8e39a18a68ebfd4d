"""Training runs on the ring of Gaussians and an explorer that steps through them (chapter 13).

`ring_run` trains chapter 13's ring players (`dlcourse.models.gan.RingGenerator` and
`RingDiscriminator`) with `dlcourse.gan.train_step` and keeps, every `every` steps, a snapshot:
samples of the generator drawn from a fixed batch of noise, both players' losses, and the modes
covered and fraction of high-quality samples (`dlcourse.gan.mode_coverage`). The explorer then
shows the snapshots of one or more runs side by side in time.

Why it is built this way (as `dlcourse.tconv_explorer` is): the book is static HTML without a
Python kernel, so every view is rendered in advance, one `widgets.HTML` per (run, snapshot),
nested in `widgets.Stack`s, one level per control, and each control is joined to its level's
Stacks with `widgets.jslink`, which the browser resolves from the embedded widget state on its own
(in a live notebook too). A view's scatter plot is a small PNG drawn with PIL, point by point, so
that a few dozen views weigh a few hundred kilobytes at most.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import torch

from dlcourse.datasets.gaussians import ring_of_gaussians
from dlcourse.gan import mode_coverage, train_step
from dlcourse.models.gan import RingDiscriminator, RingGenerator

__all__ = ["Snapshot", "RingRun", "ring_run", "scatter_uri", "render_view", "ring_explorer"]


@dataclass
class Snapshot:
    step: int
    samples: torch.Tensor            # (n, 2) the generator's points for the run's fixed noise
    modes: int                       # modes covered (dlcourse.gan.mode_coverage)
    high_quality: float              # fraction of samples within 3 std of a centre
    d_loss: float | None = None      # the losses of the step that ended here (None at step 0)
    g_loss: float | None = None


@dataclass
class RingRun:
    name: str
    settings: dict
    centers: torch.Tensor            # (modes, 2)
    std: float
    snapshots: list[Snapshot] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1]


def ring_run(name: str = "run", steps: int = 2000, every: int = 250, lr_g: float = 1e-3, lr_d: float = 1e-3,
             betas: tuple[float, float] = (0.5, 0.999), nonsaturating: bool = True, batch: int = 128,
             hidden: int = 64, latent: int = 8, modes: int = 8, radius: float = 2.0, std: float = 0.05,
             samples: int = 1000, seed: int = 0) -> RingRun:
    """Train a fresh pair of ring players for `steps` alternating steps (Adam for both, with the
    given learning rates and betas; DCGAN's beta1 = 0.5 by default) on batches drawn from 50,000
    points of the ring, and snapshot every `every` steps (and at step 0). Seeded: the same
    arguments give the same run on the same machine."""
    import time

    torch.manual_seed(seed)
    data = ring_of_gaussians(50_000, modes=modes, radius=radius, std=std, seed=seed)
    generator, discriminator = RingGenerator(latent, hidden), RingDiscriminator(hidden)
    opt_g = torch.optim.Adam(generator.parameters(), lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr_d, betas=betas)
    g = torch.Generator().manual_seed(seed)
    fixed = torch.randn(samples, latent, generator=g)              # the noise every snapshot draws from
    settings = dict(steps=steps, every=every, lr_g=lr_g, lr_d=lr_d, betas=betas, nonsaturating=nonsaturating,
                    batch=batch, hidden=hidden, latent=latent, std=std, seed=seed)
    run = RingRun(name, settings, data.centers, std)

    def snap(step: int, losses: dict | None) -> None:
        with torch.no_grad():
            x = generator(fixed)
        cov = mode_coverage(x, data.centers, std)
        run.snapshots.append(Snapshot(step, x, cov["modes"], cov["high_quality"],
                                      None if losses is None else losses["d_loss"],
                                      None if losses is None else losses["g_loss"]))

    start = time.perf_counter()
    snap(0, None)
    for step in range(1, steps + 1):
        idx = torch.randint(len(data.points), (batch,), generator=g)
        z = torch.randn(batch, latent, generator=g)
        losses = train_step(generator, discriminator, opt_g, opt_d, data.points[idx], z, nonsaturating=nonsaturating)
        if step % every == 0 or step == steps:
            snap(step, losses)
    run.seconds = time.perf_counter() - start
    return run


def scatter_uri(points: torch.Tensor, centers: torch.Tensor, std: float, size: int = 180, extent: float = 3.0) -> str:
    """Points (n, 2) on the square [-extent, extent]^2 as a size x size PNG data URI: an orange circle
    of radius 3 std around each centre (the high-quality zone), the points in blue, dark where
    they pile up."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    scale = size / (2 * extent)

    def px(xy):
        return (xy[0] + extent) * scale, (extent - xy[1]) * scale    # y up

    r = max(3 * std * scale, 2.0)
    for c in centers.tolist():
        x, y = px(c)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(225, 225, 225))
    counts = np.zeros((size, size))
    p = points.detach().double().numpy()
    cols = np.floor((p[:, 0] + extent) * scale).astype(int)
    rows = np.floor((extent - p[:, 1]) * scale).astype(int)
    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    np.add.at(counts, (rows[inside], cols[inside]), 1)
    ys, xs = np.nonzero(counts)
    for y, x in zip(ys.tolist(), xs.tolist()):
        shade = int(max(0, 160 - 40 * counts[y, x]))
        draw.rectangle([x, y, x + 1, y + 1], fill=(shade // 2, shade // 2, 255 if shade else 120))
    for c in centers.tolist():                                       # the zones' outlines on top
        x, y = px(c)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(230, 120, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_view(run: RingRun, snapshot: Snapshot) -> str:
    """HTML for one view: the run, the step, the coverage numbers, the losses and the scatter."""
    modes = len(run.centers)
    losses = ("before training" if snapshot.d_loss is None else
              f"losses at this step: D {snapshot.d_loss:.3f}, G {snapshot.g_loss:.3f}")
    alt = (f"{len(snapshot.samples)} generated points of the run {run.name} at step {snapshot.step}: "
           f"{snapshot.modes} of {modes} modes covered")
    return (f"<div class='rx'><p><b>{html.escape(run.name)}</b>, step {snapshot.step} of {run.settings['steps']}: "
            f"<b>{snapshot.modes} of {modes} modes covered</b>, {100 * snapshot.high_quality:.1f}% of the samples "
            f"of high quality.</p>"
            f"<img class='rx-map' src='{scatter_uri(snapshot.samples, run.centers, run.std)}' alt='{html.escape(alt)}'>"
            f"<p class='rx-legend'>{losses}; orange circles: 3 standard deviations around the {modes} centres</p></div>")


STYLE = ("<style>.rx p{margin:0.3em 0;max-width:42em}.rx .rx-legend{font-size:0.85em}"
         ".rx-map{width:100%;max-width:240px;display:block;border:1px solid #999}</style>")


def ring_explorer(runs: Sequence[RingRun], start: int = -1) -> widgets.VBox:
    """Build the explorer (use it as the last expression of a notebook cell): buttons to choose a
    run and a slider over its snapshots (the runs must share their snapshot steps); one
    precomputed view per (run, snapshot). Opens on the first run at snapshot `start` (the last)."""
    runs = list(runs)
    if not runs:
        raise ValueError("the explorer needs at least one run")
    steps = [s.step for s in runs[0].snapshots]
    if any([s.step for s in r.snapshots] != steps for r in runs):
        raise ValueError("every run must have snapshots at the same steps")
    at = range(len(steps))[start]
    chooser = widgets.ToggleButtons(options=[r.name for r in runs], index=0, description="run",
                                    style={"description_width": "initial", "button_width": "auto"})
    slider = widgets.SelectionSlider(options=[str(s) for s in steps], index=at, description="step",
                                     continuous_update=True, style={"description_width": "initial"},
                                     layout=widgets.Layout(width="auto", max_width="30em"))
    views: list[tuple[str, int]] = []
    inner = []
    for run in runs:
        children = []
        for snapshot in run.snapshots:
            views.append((run.name, snapshot.step))
            children.append(widgets.HTML(value=render_view(run, snapshot)))
        inner.append(widgets.Stack(children=children, selected_index=at))
    root = widgets.Stack(children=inner, selected_index=0)
    links = [widgets.jslink((chooser, "index"), (root, "selected_index"))]
    links += [widgets.jslink((slider, "index"), (stack, "selected_index")) for stack in inner]
    box = widgets.VBox([widgets.HTML(STYLE), chooser, slider, root])
    # keep references: the links must outlive this call; tests inspect the views
    box._dlcourse_controls, box._dlcourse_links, box._dlcourse_views = [chooser, slider], links, views
    return box
