"""Synthetic data sets: deterministic per seed, and geometrically / arithmetically right."""
from __future__ import annotations

import math

import torch

from dlcourse import datasets


def test_shapes_are_deterministic_per_seed():
    a = datasets.shapes_detection(n=20, seed=3)
    b = datasets.shapes_detection(n=20, seed=3)
    c = datasets.shapes_detection(n=20, seed=4)
    assert torch.equal(a.images, b.images) and all(torch.equal(p, q) for p, q in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)
    seg = datasets.shapes_segmentation(n=20, seed=3)  # same scenes, plus masks
    assert torch.equal(seg.images, a.images)


def test_boxes_inside_images_and_masks_fit_their_boxes():
    d = datasets.shapes_segmentation(n=40, size=48, max_objects=4, seed=0)
    assert d.images.shape == (40, 3, 48, 48) and 0 <= d.images.min() and d.images.max() <= 1
    for i in range(len(d)):
        image, t = d[i]
        boxes, labels, masks = t["boxes"], t["labels"], t["masks"]
        assert len(boxes) == len(labels) == len(masks) >= 1
        assert ((labels >= 1) & (labels <= 3)).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        for (x0, y0, x1, y1), m in zip(boxes.long().tolist(), masks):
            rows, cols = m.nonzero(as_tuple=True)
            # The box is the tight box of the mask: the mask touches all four sides.
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)
        assert masks.sum(0).max() <= 1  # objects never overlap
    sem = d.semantic_masks()
    for s, t in zip(sem, (d[i][1] for i in range(len(d)))):
        expected = (t["masks"] * t["labels"][:, None, None]).sum(0)
        assert torch.equal(s, expected)


def test_shape_classes_have_their_geometric_fill_ratios():
    d = datasets.shapes_segmentation(n=200, size=64, min_size=24, max_size=32, seed=1)
    ratios = {1: [], 2: [], 3: []}
    for i in range(len(d)):
        t = d[i][1]
        for box, label, m in zip(t["boxes"], t["labels"], t["masks"]):
            area = (box[2] - box[0]) * (box[3] - box[1])
            ratios[int(label)].append(float(m.sum() / area))
    mean = {k: sum(v) / len(v) for k, v in ratios.items()}
    assert mean[1] == 1.0                          # square fills its box
    assert abs(mean[2] - math.pi / 4) < 0.03       # disc in its square: pi/4
    assert abs(mean[3] - 0.5) < 0.05               # triangle: half its box


def test_detection_collate_for_dataloader():
    d = datasets.shapes_detection(n=6, seed=0)
    loader = torch.utils.data.DataLoader(d, batch_size=4, collate_fn=d.collate)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 64, 64) and len(targets) == 4 and "masks" not in targets[0]


def test_ring_of_gaussians_modes_centres_and_spread():
    r = datasets.ring_of_gaussians(n=8000, modes=8, radius=2.0, std=0.05, seed=0)
    assert r.points.shape == (8000, 2) and r.points.dtype == torch.float32
    angles = torch.arange(8) * 2 * math.pi / 8
    ref = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    assert torch.allclose(r.centers, ref, atol=1e-6)
    for k in range(8):
        pts = r.points[r.modes == k]
        assert 800 < len(pts) < 1200
        assert torch.allclose(pts.mean(0), ref[k], atol=0.01)
        assert abs(pts.std(0).mean() - 0.05) < 0.005
    again = datasets.ring_of_gaussians(n=8000, modes=8, radius=2.0, std=0.05, seed=0)
    assert torch.equal(r.points, again.points)
    assert not torch.equal(r.points, datasets.ring_of_gaussians(n=8000, std=0.05, seed=1).points)


def test_adding_problem_targets_are_sums_of_marked_numbers():
    x, y = datasets.adding_problem(n=500, seq_len=30, seed=0)
    assert x.shape == (500, 30, 2) and y.shape == (500,)
    marks = x[:, :, 1]
    assert torch.equal(marks.sum(1), torch.full((500,), 2.0))
    assert (marks[:, :15].sum(1) == 1).all() and (marks[:, 15:].sum(1) == 1).all()
    for seq, target in zip(x[:50], y[:50]):
        marked = [float(v) for v, m in seq.tolist() if m == 1.0]
        assert abs(sum(marked) - float(target)) < 1e-6
    # Always answering 1 gives MSE = Var(U1 + U2) = 1/6: the published baseline.
    big_x, big_y = datasets.adding_problem(n=20_000, seq_len=10, seed=1)
    assert abs(float(((big_y - 1) ** 2).mean()) - 1 / 6) < 0.01
    assert torch.equal(datasets.adding_problem(n=5, seed=2)[0], datasets.adding_problem(n=5, seed=2)[0])


def test_copy_memory_layout():
    x, y = datasets.copy_memory(n=10, length=5, delay=7, symbols=4, seed=0)
    assert x.shape == y.shape == (10, 17)
    assert torch.equal(y[:, -5:], x[:, :5]) and (y[:, :-5] == 0).all()
    assert (x[:, 11] == 5).all() and (x[:, 5:11] == 0).all() and (x[:, 12:] == 0).all()
