"""Synthetic scenes of simple shapes for detection and segmentation, generated from a seed.

Each image (3, size, size) holds 1..max_objects non-overlapping squares, circles and
triangles in random colours on a dark noisy background. Targets follow torchvision's
detection convention: ``boxes`` (k, 4) float32 as (x0, y0, x1, y1) in pixels with x1/y1
exclusive (the box is the shape's tight bounding box), ``labels`` (k,) int64 with 0
reserved for the background, and for segmentation ``masks`` (k, H, W) bool per object.
Shapes never overlap, so every mask is the whole visible object and fits its box exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

CLASSES = ("background", "square", "circle", "triangle")


def _shape_mask(kind: str, s: int) -> np.ndarray:
    """(s, s) bool mask of a shape filling an s x s square (pixel centres at +0.5)."""
    c = np.arange(s) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    if kind == "square":
        return np.ones((s, s), bool)
    if kind == "circle":
        return (xx - s / 2) ** 2 + (yy - s / 2) ** 2 <= (s / 2) ** 2
    # Triangle: apex at the top centre, base along the bottom row.
    return np.abs(xx - s / 2) <= yy / 2


@dataclass
class ShapesDataset(Dataset):
    """``images`` (N, 3, H, W) float32 in [0, 1]; per image ``boxes``, ``labels`` and
    (segmentation only) ``masks``. Indexing gives ``(image, target_dict)``."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    masks: list[torch.Tensor] | None = None
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        target = {"boxes": self.boxes[i], "labels": self.labels[i]}
        if self.masks is not None:
            target["masks"] = self.masks[i]
        return self.images[i], target

    def semantic_masks(self) -> torch.Tensor:
        """(N, H, W) int64 class index per pixel (0 = background); needs masks."""
        if self.masks is None:
            raise ValueError("this data set has no masks: use shapes_segmentation(...)")
        out = torch.zeros(self.images.shape[0], *self.images.shape[2:], dtype=torch.int64)
        for sem, masks, labels in zip(out, self.masks, self.labels):
            for m, c in zip(masks, labels):
                sem[m] = c
        return out

    @staticmethod
    def collate(batch):
        """For DataLoader(collate_fn=...): stacked images and a list of target dicts."""
        images, targets = zip(*batch)
        return torch.stack(images), list(targets)


def _generate(n: int, size: int, max_objects: int, min_size: int, max_size: int | None,
              seed: int, with_masks: bool, draw=None, num_classes: int = len(CLASSES) - 1,
              classes: tuple[str, ...] = CLASSES) -> ShapesDataset:
    """Scenes as documented above. `draw(label, s, rng)` gives an object's (s, s) bool mask
    (default: the square, circle and triangle of `CLASSES`); the grader passes its own to make
    scenes of classes no network has seen (`autograder.scenes`)."""
    if max_size is None:
        max_size = size // 2
    if not 4 <= min_size <= max_size <= size:
        raise ValueError(f"need 4 <= min_size <= max_size <= size, got {min_size}, {max_size}, {size}")
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(0.1, 0.05, (n, 3, size, size)), 0, 1).astype(np.float32)
    all_boxes, all_labels, all_masks = [], [], []
    for img in images:
        taken = np.zeros((size, size), bool)  # pixels already used (with a 1-pixel margin)
        boxes, labels, masks = [], [], []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _attempt in range(50):  # rejection sampling of a free place
                s = int(rng.integers(min_size, max_size + 1))
                x0, y0 = (int(v) for v in rng.integers(0, size - s + 1, 2))
                if not taken[max(y0 - 1, 0):y0 + s + 1, max(x0 - 1, 0):x0 + s + 1].any():
                    break
            else:
                continue  # no room left: fewer objects in this image
            label = int(rng.integers(1, num_classes + 1))
            local = _shape_mask(CLASSES[label], s) if draw is None else draw(label, s, rng)
            full = np.zeros((size, size), bool)
            full[y0:y0 + s, x0:x0 + s] = local
            taken[y0:y0 + s, x0:x0 + s] = True
            img[:, full] = rng.uniform(0.45, 1.0, (3, 1)).astype(np.float32)
            rows, cols = np.nonzero(full)
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])  # tight box
            labels.append(label)
            masks.append(full)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
        if with_masks:
            all_masks.append(torch.from_numpy(np.stack(masks)))
    return ShapesDataset(torch.from_numpy(images), all_boxes, all_labels,
                         all_masks if with_masks else None, classes)


def shapes_detection(n: int = 256, size: int = 64, max_objects: int = 3, min_size: int = 10,
                     max_size: int | None = None, seed: int = 0) -> ShapesDataset:
    """Images with boxes and class labels (1 square, 2 circle, 3 triangle); same seed, same data."""
    return _generate(n, size, max_objects, min_size, max_size, seed, with_masks=False)


def shapes_segmentation(n: int = 256, size: int = 64, max_objects: int = 3, min_size: int = 10,
                        max_size: int | None = None, seed: int = 0) -> ShapesDataset:
    """The same scenes as ``shapes_detection`` with the same arguments, plus per-object
    masks; ``.semantic_masks()`` gives the (N, H, W) class map for semantic segmentation."""
    return _generate(n, size, max_objects, min_size, max_size, seed, with_masks=True)
