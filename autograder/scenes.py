"""Detection scenes drawn from a secret seed: the grader's convergence task for detectors (a11).

The counterpart of `autograder.glyphs` for object detection. The shapes scenes of
`dlcourse.datasets.shapes` (squares, circles, triangles) are public: a detector trained on them
elsewhere, its weights pasted into the notebook, would find them in any scene the grader drew.
So the grader's scenes hold classes of its own: each class is a glyph of a few strokes
(`autograder.glyphs._prototypes`) drawn from the per-student secret seed, and every object is its
class's glyph, slightly rotated and jittered, rendered as a solid mask at the object's size and
painted in a random colour on the shapes scenes' dark noisy background. Boxes are the masks' tight
boxes and labels run 1..classes, as in the shapes scenes, so the notebook's detector and training
code take these scenes unchanged. No network has seen these classes: weights brought from
elsewhere may find the objects but cannot say which is which (a fast-profile detector of the shapes
scenes scores an mAP@0.5 of 0.21 to 0.34 on them, matched to their classes as well as it can be, where
honest training on the scenes the grader hands the student's code reaches 0.8 to 0.97;
tests/test_scenes.py).

    task = glyph_scenes(seed, n_train=512, n_held=256)   # task.train, task.held: ShapesDataset
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from autograder.glyphs import _prototypes, _render
from dlcourse.datasets.shapes import ShapesDataset, _generate


@dataclass(frozen=True)
class SceneTask:
    train: ShapesDataset   # the scenes the student's training code is given
    held: ShapesDataset    # other scenes of the same classes: they never enter the kernel


def _glyph_drawer(protos: torch.Tensor, width: float):
    """draw(label, s, rng) -> (s, s) bool mask of class `label`'s glyph (labels 1..len(protos))."""

    def draw(label: int, s: int, rng: np.random.Generator) -> np.ndarray:
        seg = protos[label - 1] - 0.5                                                 # (S, 2, 2) about the centre
        angle = math.radians(float(rng.uniform(-15, 15)))
        rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        seg = torch.einsum("ij,skj->ski", rot, seg) + 0.5
        seg = seg + torch.from_numpy(rng.normal(0, 0.02, seg.shape)).float()        # a hand's wobble
        ink = _render(seg[None], torch.tensor([width]), size=s)[0, 0]                 # (s, s) in [0, 1]
        mask = (ink > 0.5).numpy()
        if not mask.any():                                                            # never an empty object
            mask[s // 2, s // 2] = True
        return mask

    return draw


def glyph_scenes(seed: int, n_train: int, n_held: int, size: int = 64, classes: int = 3, max_objects: int = 3,
                 min_size: int = 16, max_size: int = 32, strokes: int = 3, width: float = 0.16,
                 masks: bool = False) -> SceneTask:
    """The scenes of `seed`: `n_train` to train on and `n_held` held out, of the same `classes`
    glyph classes. Objects are `min_size`..`max_size` pixels wide, strokes `width` of that. With
    `masks`, each scene also holds its objects' masks (`.semantic_masks()`: a12's segmentation task)."""
    g = torch.Generator().manual_seed(int(seed))
    protos = _prototypes(g, classes, strokes)                                         # (classes, strokes, 2, 2)
    seeds = torch.randint(0, 2 ** 31 - 1, (2,), generator=g).tolist()
    names = ("background",) + tuple(f"glyph {k}" for k in range(1, classes + 1))
    make = lambda n, s: _generate(n, size, max_objects, min_size, max_size, s, with_masks=masks,  # noqa: E731
                                  draw=_glyph_drawer(protos, width), num_classes=classes, classes=names)
    return SceneTask(make(n_train, seeds[0]), make(n_held, seeds[1]))
