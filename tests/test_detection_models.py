"""The small detectors of dlcourse.models.detection: shapes at every stage, targets and losses on
worked examples, and both detectors learning on the shapes scenes (one batch, a few steps: the
book's pages and bench/ train them for real)."""
from __future__ import annotations

import math

import pytest
import torch

from dlcourse.boxes import anchor_grid, encode_boxes
from dlcourse.datasets.shapes import shapes_detection
from dlcourse.models import detection as D


@pytest.fixture(scope="module")
def scenes():
    return shapes_detection(8, seed=3)


def _targets(data, idx):
    return [{"boxes": data.boxes[k], "labels": data.labels[k]} for k in idx]


# ---------------------------------------------------------------- YOLO
def test_yolo_grid_shapes():
    m = D.YOLOGrid(num_classes=3, boxes_per_cell=2)
    out = m(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 8, 8, 2 * 5 + 3)
    assert (out[..., :10] > 0).all() and (out[..., :10] < 1).all()      # boxes and confidences squashed
    assert D.YOLOGrid(num_classes=5, boxes_per_cell=3)(torch.rand(1, 3, 96, 96)).shape == (1, 12, 12, 20)


def test_yolo_targets_worked_example():
    # a 16 x 16 box centred at (16, 16) in a 64-pixel image on an 8 x 8 grid (cells of 8 pixels): cell (2, 2)
    t = D.yolo_targets([torch.tensor([[8.0, 8, 24, 24], [40.0, 20, 60, 30]])], [torch.tensor([2, 3])], 8, 3, 64)
    assert t.shape == (1, 8, 8, 8)
    torch.testing.assert_close(t[0, 2, 2], torch.tensor([1.0, 0.0, 0.0, 0.25, 0.25, 0, 1, 0]))
    # centre (50, 25): cell (row 3, column 6), offsets (0.25, 0.125), size (20/64, 10/64), class 3
    torch.testing.assert_close(t[0, 3, 6], torch.tensor([1.0, 0.25, 0.125, 20 / 64, 10 / 64, 0, 0, 1]))
    assert int(t[..., 0].sum()) == 2


def _perfect(target, boxes_per_cell=2, num_classes=3):
    """A prediction that gets every object exactly (the first box of each cell), with confidence 1,
    all other confidences 0 and a confident right class."""
    n, s = target.shape[:2]
    pred = torch.zeros(n, s, s, boxes_per_cell * 5 + num_classes)
    pred[..., 0:4] = target[..., 1:5]
    pred[..., 5:9] = 0.5                                  # the second box elsewhere (0 confidence)
    pred[..., 4] = target[..., 0]
    pred[..., boxes_per_cell * 5:] = (target[..., 5:] * 2 - 1) * 50
    return pred


def test_yolo_loss_is_zero_for_a_perfect_prediction_and_weighs_each_term():
    t = D.yolo_targets([torch.tensor([[8.0, 8, 24, 24]])], [torch.tensor([1])], 8, 3, 64)
    pred = _perfect(t)
    assert D.yolo_loss(pred, t).item() == pytest.approx(0.0, abs=1e-6)
    # a confidence of 0.4 in a cell without an object costs lambda_noobj * 0.4^2
    p = pred.clone()
    p[0, 5, 5, 4] = 0.4
    assert D.yolo_loss(p, t).item() == pytest.approx(0.5 * 0.16, abs=1e-6)
    assert D.yolo_loss(p, t, lambda_noobj=1.0).item() == pytest.approx(0.16, abs=1e-6)
    # the responsible box's x off by 0.1 costs lambda_coord * 0.01 plus its confidence's error,
    # (1 - IoU)^2: the IoU of two 16-pixel squares shifted by 0.8 pixels
    p = pred.clone()
    p[0, 2, 2, 0] = 0.1
    iou = (16 - 0.8) * 16 / (2 * 256 - (16 - 0.8) * 16)
    assert D.yolo_loss(p, t).item() == pytest.approx(5 * 0.01 + (1 - iou) ** 2, abs=1e-5)
    # width through square roots: 0.25 -> 0.36 costs lambda_coord * (0.6 - 0.5)^2 plus the confidence's error
    p = pred.clone()
    p[0, 2, 2, 2] = 0.36
    iou = 0.25 * 0.25 / (0.36 * 0.25)
    assert D.yolo_loss(p, t).item() == pytest.approx(5 * 0.01 + (1 - iou) ** 2, abs=1e-5)


def _yolo_loss_by_loops(pred, target, lambda_coord, lambda_noobj):
    """The docstring's loss one image, cell and box at a time, in Python's floats."""
    n, s, _, width = pred.shape
    c = target.shape[-1] - 5
    nb = (width - c) // 5
    p, t = pred.tolist(), target.tolist()

    def corners(x, y, w, h, i, j):
        cx, cy = (j + x) / s, (i + y) / s
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    def iou(a, b):
        inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / max(union, 1e-9)

    total = 0.0
    for k in range(n):
        for i in range(s):
            for j in range(s):
                cell, tgt = p[k][i][j], t[k][i][j]
                boxes = [cell[5 * b:5 * b + 5] for b in range(nb)]
                responsible = None
                if tgt[0] > 0:
                    ious = [iou(corners(*bx[:4], i, j), corners(*tgt[1:5], i, j)) for bx in boxes]
                    responsible = max(range(nb), key=lambda b: (ious[b], -b))     # the first of equal ones
                    x, y, w, h, conf = boxes[responsible]
                    total += lambda_coord * ((x - tgt[1]) ** 2 + (y - tgt[2]) ** 2 + (math.sqrt(w) - math.sqrt(tgt[3])) ** 2
                                             + (math.sqrt(h) - math.sqrt(tgt[4])) ** 2) + (conf - ious[responsible]) ** 2
                    logits = cell[5 * nb:]
                    z = sum(math.exp(v) for v in logits)
                    total += sum((math.exp(v) / z - tgt[5 + q]) ** 2 for q, v in enumerate(logits))
                total += sum(lambda_noobj * boxes[b][4] ** 2 for b in range(nb) if b != responsible)
    return total / n


@pytest.mark.parametrize("n,s,nb,c", [(3, 4, 2, 3), (2, 5, 3, 2), (4, 3, 1, 4)])
def test_yolo_loss_over_a_batch_equals_the_loss_written_with_loops(n, s, nb, c):
    """Random predictions on batches of several images (the responsible box is found image by image)."""
    g = torch.Generator().manual_seed(11 * n + s)
    pred = torch.cat([torch.rand(n, s, s, 5 * nb, generator=g) * 0.98 + 0.01, torch.randn(n, s, s, c, generator=g)], -1)
    boxes = [torch.cat([xy := torch.rand(3, 2, generator=g) * 8 * s * 0.7, xy + torch.rand(3, 2, generator=g) * 8 * s * 0.3 + 2], 1)
             for _ in range(n)]
    target = D.yolo_targets(boxes, [torch.randint(1, c + 1, (3,), generator=g) for _ in range(n)], s, c, 8 * s)
    for lc, ln in ((5.0, 0.5), (1.0, 2.0)):
        assert D.yolo_loss(pred, target, lc, ln).item() == pytest.approx(_yolo_loss_by_loops(pred, target, lc, ln), rel=1e-5)


def test_yolo_decode_returns_the_boxes_it_was_given(scenes):
    t = D.yolo_targets(scenes.boxes[:2], scenes.labels[:2], 8, 3, 64)
    dets = D.yolo_decode(_perfect(t), 2, 64)
    for det, boxes, labels in zip(dets, scenes.boxes[:2], scenes.labels[:2]):
        order = torch.argsort(boxes[:, 0])
        got = torch.argsort(det["boxes"][:, 0])
        torch.testing.assert_close(det["boxes"][got], boxes[order], atol=1e-4, rtol=0)
        assert det["labels"][got].tolist() == labels[order].tolist()


# ---------------------------------------------------------------- two stages
def test_rpn_head_matches_the_anchor_order():
    head = D.RPNHead(8, 6)
    logits, deltas = head(torch.rand(2, 8, 5, 7))
    assert logits.shape == (2, 5 * 7 * 6) and deltas.shape == (2, 5 * 7 * 6, 4)
    assert len(anchor_grid((5, 7), 8, (16.0, 32.0), (0.5, 1.0, 2.0))) == 5 * 7 * 6
    # anchor k of cell (i, j) reads channel k of the objectness conv at (i, j)
    t = torch.relu(head.conv(torch.ones(1, 8, 5, 7)))
    direct = head.objectness(t)[0, 4, 2, 3]
    assert head(torch.ones(1, 8, 5, 7))[0][0, (2 * 7 + 3) * 6 + 4].item() == pytest.approx(direct.item(), abs=1e-6)


def test_rpn_targets_worked_example():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 20, 20], [30, 30, 40, 40], [100, 100, 110, 110]])
    gt = torch.tensor([[0.0, 0, 12, 12], [31, 31, 49, 49]])
    labels, matched = D.rpn_targets(anchors, gt)
    # anchor 0: IoU 100/144 = 0.69 with box 0 (< 0.7, but its best anchor: positive); anchor 1: 144/400
    # = 0.36 (between the thresholds: ignored); anchor 2: 81/424 = 0.19 with box 1, its best: positive;
    # anchor 3 overlaps nothing: background
    assert labels.tolist() == [1, -1, 1, 0]
    assert matched[[0, 2]].tolist() == [0, 1]
    assert D.rpn_targets(anchors, gt[:0])[0].tolist() == [0, 0, 0, 0]


def test_rpn_loss_is_zero_for_perfect_outputs():
    anchors = anchor_grid((4, 4), 8, (12.0,), (1.0,))
    gt = [torch.tensor([[4.0, 4, 16, 16]])]                      # exactly anchor 0
    labels, matched = D.rpn_targets(anchors, gt[0])
    logits = torch.where(labels == 1, 30.0, -30.0)[None]
    deltas = encode_boxes(gt[0][matched], anchors)[None]
    cls, reg = D.rpn_loss(logits, deltas, anchors, gt)
    assert cls.item() < 1e-9 and reg.item() == pytest.approx(0.0, abs=1e-9)
    cls, reg = D.rpn_loss(logits, deltas + 0.5, anchors, gt)   # only positives are regressed
    n_used = int((labels >= 0).sum())
    assert reg.item() == pytest.approx(4 * (0.5 - 0.5 / 9) / n_used, rel=1e-5)


def test_roi_targets_and_proposals(scenes):
    gt, lab = scenes.boxes[0], scenes.labels[0]
    props = torch.cat([gt + 1.0, torch.tensor([[0.0, 0, 3, 3]])])
    labels, regs = D.roi_targets(props, gt, lab)
    assert labels.tolist() == lab.tolist() + [0]
    assert (regs[-1] == 0).all() and regs[:-1].abs().max() < 10 * 2 / 10 + 1e-4   # a 1-pixel shift, weight 10
    anchors = anchor_grid((8, 8), 8, (12.0, 24.0), (1.0,))
    logits, deltas = torch.randn(1, len(anchors)), torch.randn(1, len(anchors), 4) * 0.1
    (p,) = D.propose(logits, deltas, anchors, 64, post_nms=20)
    assert len(p) <= 20 and p.min() >= 0 and p.max() <= 64


def test_two_stage_detector_returns_four_losses_and_learns_a_batch(scenes):
    torch.manual_seed(0)
    m = D.TwoStageDetector()
    images, targets = scenes.images[:4], _targets(scenes, range(4))
    losses = m(images, targets)
    assert set(losses) == {"rpn_objectness", "rpn_box", "roi_class", "roi_box"}
    total = sum(losses.values())
    total.backward()
    for name, part in (("rpn", m.rpn), ("roi_head", m.roi_head), ("backbone", m.backbone)):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters()), name
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    first = float(total.detach())
    for _ in range(8):
        loss = sum(m(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first, (first, float(loss.detach()))
    m.eval()
    dets = m(scenes.images[:2])
    assert len(dets) == 2 and all(set(d) == {"boxes", "scores", "labels"} for d in dets)
    with pytest.raises(ValueError, match="needs the targets"):
        m.train()(scenes.images)


def test_yolo_learns_a_batch(scenes):
    torch.manual_seed(0)
    m = D.YOLOGrid()
    t = D.yolo_targets(scenes.boxes[:4], scenes.labels[:4], 8, 3, 64)
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    first = None
    for _ in range(12):
        loss = D.yolo_loss(m(scenes.images[:4]), t)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.isfinite(float(loss.detach())) and float(loss.detach()) < 0.5 * first, (first, float(loss.detach()))
