"""A classification task drawn from a secret seed: ten classes of random glyphs.

Convergence points must be earned by training that happens in the grading run, on data the
grader chose. So the grader does not test a student's training code on MNIST (a network
trained on MNIST elsewhere, its weights pasted into the notebook, would pass without any
training): it generates a task no network has seen, from the per-student secret seed, hands
the student's code the training examples, and measures the trained weights in its own
process on held-out examples that never enter the student's kernel. Weights brought from
elsewhere know nothing of these classes and do no better than chance; honest training
learns them as easily as digits.

Each class is a prototype of a few line segments ("strokes"). Each example redraws its
class's prototype under a random rotation, scale and shift, with its endpoints jittered, a
random stroke width and a little pixel noise, anti-aliased on a 28x28 canvas: MNIST's layout,
(N, 1, 28, 28) float32 in [0, 1] with int64 labels, so that the notebooks' networks and
training code take it unchanged.

    task = glyph_task(seed, n_train=6000, n_held=2000)   # task.x_train, task.y_train, task.x_held, task.y_held
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SIZE = 28


@dataclass(frozen=True)
class GlyphTask:
    x_train: torch.Tensor  # (n_train, 1, 28, 28) float32 in [0, 1]
    y_train: torch.Tensor  # (n_train,) int64, balanced over the classes
    x_held: torch.Tensor   # (n_held, 1, 28, 28): the same classes, other draws
    y_held: torch.Tensor


def _render(segments: torch.Tensor, width: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, S, 2, 2) segment endpoints in [0, 1]^2 and (N,) stroke widths -> (N, 1, size, size)."""
    centers = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    grid = torch.stack(torch.meshgrid(centers, centers, indexing="xy"), dim=-1).reshape(1, 1, -1, 2)  # (1, 1, P, 2)
    a, b = segments[:, :, None, 0], segments[:, :, None, 1]                                           # (N, S, 1, 2)
    ab = b - a
    t = ((grid - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)                                 # (N, S, P)
    nearest = a + t.clamp(0, 1).unsqueeze(-1) * ab
    dist = (grid - nearest).norm(dim=-1).amin(dim=1)                                                  # (N, P)
    # anti-aliased: full intensity within half the width, falling to 0 over one pixel
    ink = (1 - (dist - width[:, None] / 2) * size).clamp(0, 1)
    return ink.reshape(-1, 1, size, size)


def _prototypes(g: torch.Generator, classes: int, strokes: int) -> torch.Tensor:
    """(classes, strokes, 2, 2) endpoints: one class at a time, each redrawn until its strokes are
    long enough and it looks unlike every class before it (deterministic for a generator)."""
    kept, images = [], []
    while len(kept) < classes:
        proto = 0.2 + 0.6 * torch.rand(strokes, 2, 2, generator=g)
        if bool(((proto[:, 1] - proto[:, 0]).norm(dim=-1) < 0.25).any()):
            continue
        image = _render(proto[None], torch.tensor([0.08])).flatten()
        if images and float(torch.stack(images).sub(image).norm(dim=1).min()) < 0.6 * float(image.norm()):
            continue
        kept.append(proto)
        images.append(image)
    return torch.stack(kept)


def _draws(protos: torch.Tensor, labels: torch.Tensor, g: torch.Generator, noise: float) -> torch.Tensor:
    n = len(labels)
    seg = protos[labels] - 0.5                                                                      # (n, S, 2, 2)
    angle = (torch.rand(n, generator=g) - 0.5) * (2 * math.radians(20))
    scale = 0.8 + 0.35 * torch.rand(n, generator=g)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)              # (n, 2, 2)
    seg = torch.einsum("nij,nskj->nski", rot, seg)
    seg = seg + 0.5 + (torch.rand(n, 1, 1, 2, generator=g) - 0.5) * 0.2                            # shift
    seg = seg + torch.randn(seg.shape, generator=g) * 0.025                                         # a hand's wobble
    width = 0.05 + 0.05 * torch.rand(n, generator=g)
    out = torch.cat([_render(seg[i:i + 1000], width[i:i + 1000]) for i in range(0, n, 1000)])
    return (out + torch.randn(out.shape, generator=g) * noise).clamp(0, 1)


def glyph_task(seed: int, n_train: int, n_held: int, classes: int = 10, strokes: int = 3,
               noise: float = 0.05) -> GlyphTask:
    """The task of `seed`: `n_train` training and `n_held` held-out examples of the same classes."""
    g = torch.Generator().manual_seed(int(seed))
    protos = _prototypes(g, classes, strokes)
    y_train = (torch.arange(n_train) % classes)[torch.randperm(n_train, generator=g)]
    y_held = (torch.arange(n_held) % classes)[torch.randperm(n_held, generator=g)]
    return GlyphTask(_draws(protos, y_train, g, noise), y_train, _draws(protos, y_held, g, noise), y_held)
