"""Detection metrics (dlcourse.metrics) against worked examples and against pycocotools' COCOeval,
the COCO reference implementation (a test-only dependency), to 1e-6 on generated scenes with
duplicates, misses, false positives, tied scores, classes without ground truth and images
without any."""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from dlcourse import metrics as M


def _one_image(boxes, scores, labels, gt_boxes, gt_labels):
    pred = {"boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.int64)}
    target = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32).view(-1, 4), "labels": torch.tensor(gt_labels, dtype=torch.int64)}
    return pred, target


def test_average_precision_worked_example_uses_the_monotone_envelope():
    # three objects; detections by score: hit, miss, hit, hit
    gt = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    pred, target = _one_image([[0, 0, 10, 10], [60, 60, 70, 70], [20, 0, 30, 10], [40, 0, 50, 10]],
                              [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1], gt, [1, 1, 1])
    p, r, s = M.precision_recall([pred], [target], label=1)
    torch.testing.assert_close(p, torch.tensor([1, 1 / 2, 2 / 3, 3 / 4], dtype=torch.float64))
    torch.testing.assert_close(r, torch.tensor([1 / 3, 1 / 3, 2 / 3, 1], dtype=torch.float64))
    # recalls 0..0.33 read precision 1 (34 points); 0.34..0.66 read the envelope's 3/4, not the
    # raw 2/3 of rank 3 (33 points); 0.67..1 read 3/4 (34 points)
    assert M.average_precision(p, r) == pytest.approx((34 * 1 + 67 * 0.75) / 101, abs=1e-12)
    # a class never detected has AP 0; one never reaching full recall reads 0 beyond its last
    assert M.average_precision(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)) == 0.0
    half = M.average_precision(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))
    assert half == pytest.approx(51 / 101)


def test_matching_is_greedy_by_score_and_one_to_one():
    gt = [[0, 0, 10, 10]]
    # a duplicate of the hit is a false positive; a box of another class matches nothing of class 1
    pred, target = _one_image([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8, 0.95], [1, 1, 2], gt, [1])
    p, r, _ = M.precision_recall([pred], [target], label=1)
    assert p.tolist() == [1.0, 0.5] and r.tolist() == [1.0, 1.0]
    # IoU 0.5 exactly counts at threshold 0.5 (">="), not at 0.55
    pred, target = _one_image([[0, 0, 10, 5]], [0.9], [1], gt, [1])
    assert M.precision_recall([pred], [target], 1, 0.5)[0].tolist() == [1.0]
    assert M.precision_recall([pred], [target], 1, 0.55)[0].tolist() == [0.0]
    scores = M.mean_average_precision([pred], [target])
    assert scores["map_50"] == pytest.approx(1.0) and scores["map"] == pytest.approx(0.1)   # 1 of 10 thresholds


def _scenes(seed: int, n_images: int = 12, n_classes: int = 4):
    """Generated scenes: ground truth, and predictions with jitter, duplicates, misses, false
    positives and tied scores. Class 4 has no ground truth anywhere; image 0 has none at all."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n_images):
        k = 0 if i == 0 else int(torch.randint(1, 6, (1,), generator=g))
        xy = torch.rand(k, 2, generator=g) * 80
        gt = torch.cat([xy, xy + 4 + torch.rand(k, 2, generator=g) * 30], dim=1)
        labels = torch.randint(1, n_classes, (k,), generator=g)
        found = torch.rand(k, generator=g) > 0.2                                      # about 20% missed
        boxes = gt[found] + torch.randn(int(found.sum()), 4, generator=g) * 3          # jittered hits
        # kept valid (x1 > x0): COCOeval gives boxes of negative size negative areas and odd overlaps
        # (our degenerate boxes, of area 0 and IoU 0, are tested with worked examples above)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        lab = labels[found]
        dup = torch.rand(len(boxes), generator=g) < 0.3                                # duplicates
        boxes, lab = torch.cat([boxes, boxes[dup] + 1.5]), torch.cat([lab, lab[dup]])
        nfp = int(torch.randint(0, 4, (1,), generator=g))                              # false positives
        fxy = torch.rand(nfp, 2, generator=g) * 80
        boxes = torch.cat([boxes, torch.cat([fxy, fxy + 10], dim=1)])
        lab = torch.cat([lab, torch.randint(1, n_classes + 1, (nfp,), generator=g)])
        scores = (torch.rand(len(boxes), generator=g) * 10).floor() / 10               # many ties
        preds.append({"boxes": boxes, "scores": scores, "labels": lab})
        targets.append({"boxes": gt, "labels": labels})
    return preds, targets


def _cocoeval(preds, targets, n_classes: int = 4):
    pytest.importorskip("pycocotools", reason="pycocotools (requirements.txt) is the test's reference")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns = [{"id": len_ + 1, "image_id": i + 1, "category_id": int(c), "bbox": xywh(b), "area": xywh(b)[2] * xywh(b)[3],
             "iscrowd": 0}
            for len_, (i, b, c) in enumerate((i, b, c) for i, t in enumerate(targets) for b, c in zip(t["boxes"], t["labels"]))]
    gt = COCO()
    gt.dataset = {"images": [{"id": i + 1} for i in range(len(targets))], "annotations": anns,
                  "categories": [{"id": c} for c in range(1, n_classes + 1)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [{"image_id": i + 1, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
                for i, p in enumerate(preds) for b, s, c in zip(p["boxes"], p["scores"], p["labels"])]
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 14])  # 5 and 14 reach recalls exactly on a recall point
def test_map_agrees_with_pycocotools(seed):
    preds, targets = _scenes(seed)
    ev = _cocoeval(preds, targets)
    ours = M.mean_average_precision(preds, targets)
    assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert ours["map_50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert ours["map_75"] == pytest.approx(ev.stats[2], abs=1e-6)
    # per class: COCOeval's precision table (T, R, K, area, maxDets), area "all", 100 detections
    table = ev.eval["precision"][:, :, :, 0, -1]
    for k, label in enumerate(ev.params.catIds):
        if (table[:, :, k] > -1).any():
            assert ours["per_class"][label] == pytest.approx(table[:, :, k].mean(), abs=1e-6), label
        else:
            assert label not in ours["per_class"]   # no ground truth anywhere: left out, as COCOeval does
    assert 0.2 < ours["map_50"] < 0.95          # the scenes are neither trivial nor hopeless


def test_max_dets_keeps_the_best_detections_of_each_image_and_class():
    preds, targets = _scenes(5)
    few = M.mean_average_precision(preds, targets, max_dets=1)
    ev = _cocoeval(preds, targets)
    # COCOeval's AP@[.5:.95] with at most one detection per image and class
    table = ev.eval["precision"][:, :, :, 0, 0]
    assert few["map"] == pytest.approx(table[table > -1].mean(), abs=1e-6)
