"""Segmentation metrics (dlcourse.metrics: confusion_matrix, pixel_accuracy, iou_per_class,
mean_iou) against worked examples, against versions written pixel by pixel here, and against
torchmetrics (a test-only dependency, requirements.txt) on generated predictions with classes
absent from both sides, classes in only one, and ignored pixels (a void label outside the
classes, and an ignored class inside them).

torchmetrics 1.9.0's conventions, read from its source (functional/classification/jaccard.py,
`_jaccard_index_reduce`, and confusion_matrix.py, `_multiclass_confusion_matrix_format`):
- pixels whose target is `ignore_index` are removed from preds and target before the
  confusion matrix is counted;
- average="macro" gives weight 0 to every class whose row and column of the confusion matrix
  are both empty (absent from the prediction and the target) and, when 0 <= ignore_index < C,
  to the ignored class; the others count equally. So absent classes are left out of the mean,
  not counted as IoU 0 or 1 (versions before 1.x counted them, with a different default): ours
  leaves them out too, and the comparison below is exact up to float32 rounding;
- MulticlassAccuracy(average="micro") is sum(TP) / number of non-ignored pixels, ours too.
When every pixel is ignored torchmetrics' accuracy is 0 (a safe division) where ours is NaN;
that case is not compared.
"""
from __future__ import annotations

import math

import pytest
import torch

from dlcourse import metrics as M
from dlcourse.datasets.shapes import shapes_segmentation


# ---------------------------------------------------------------- written pixel by pixel
def _brute_force(pred, target, num_classes, ignore_index=None):
    """(pixel accuracy, per-class IoU dict, mean IoU) from the sets of pixels of each class."""
    pixels = [(int(p), int(t)) for p, t in zip(pred.reshape(-1).tolist(), target.reshape(-1).tolist())
              if ignore_index is None or t != ignore_index]
    right = sum(p == t for p, t in pixels)
    accuracy = right / len(pixels) if pixels else math.nan
    ious = {}
    for c in range(num_classes):
        if c == ignore_index:
            continue
        predicted = {i for i, (p, _) in enumerate(pixels) if p == c}
        true = {i for i, (_, t) in enumerate(pixels) if t == c}
        if predicted or true:
            ious[c] = len(predicted & true) / len(predicted | true)
    miou = sum(ious.values()) / len(ious) if ious else math.nan
    return accuracy, ious, miou


def _case(seed, num_classes, ignore_index=None, shape=(2, 6, 7)):
    """Predictions and targets drawn from random subsets of the classes (so that some classes are
    in neither, some in one only), with about a fifth of the target pixels set to ignore_index."""
    g = torch.Generator().manual_seed(seed)
    used_t = torch.randperm(num_classes, generator=g)[:int(torch.randint(1, num_classes + 1, (1,), generator=g))]
    used_p = torch.randperm(num_classes, generator=g)[:int(torch.randint(1, num_classes + 1, (1,), generator=g))]
    target = used_t[torch.randint(len(used_t), shape, generator=g)]
    pred = used_p[torch.randint(len(used_p), shape, generator=g)]
    # about half of the pixels right, so that IoUs are neither all 0 nor all 1
    right = torch.rand(shape, generator=g) < 0.5
    pred = torch.where(right, target, pred)
    if ignore_index is not None:
        target = torch.where(torch.rand(shape, generator=g) < 0.2, torch.full_like(target, ignore_index), target)
    return pred, target


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12


# ---------------------------------------------------------------- worked examples
def test_worked_example():
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 0]]])
    pred = torch.tensor([[[0, 1, 1, 1], [0, 0, 1, 0], [2, 2, 0, 0]]])
    cm = M.confusion_matrix(pred, target, 4)
    assert cm.tolist() == [[4, 1, 0, 0],     # 5 background pixels: 4 right, 1 called class 1
                           [1, 3, 0, 0],     # 4 pixels of class 1: 3 right
                           [1, 0, 2, 0],     # 3 pixels of class 2: 2 right
                           [0, 0, 0, 0]]     # class 3 nowhere
    assert M.pixel_accuracy(pred, target) == pytest.approx(9 / 12)
    # IoU = TP / (row + column - TP): class 0 4 / (5 + 6 - 4), class 1 3 / (4 + 4 - 3), class 2 2 / 3
    iou = M.iou_per_class(pred, target, 4)
    torch.testing.assert_close(iou[:3], torch.tensor([4 / 7, 3 / 5, 2 / 3], dtype=torch.float64))
    assert math.isnan(iou[3])                                           # 0 / 0: left out of the mean
    assert M.mean_iou(pred, target, 4) == pytest.approx((4 / 7 + 3 / 5 + 2 / 3) / 3)
    # scores (N, C, H, W) are read by their argmax
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 3
    assert M.mean_iou(logits, target, 4) == M.mean_iou(pred, target, 4)


def test_ignored_pixels_are_skipped_and_an_ignored_class_leaves_the_mean():
    target = torch.tensor([[0, 1, 255, 255], [1, 1, 2, 2]])
    pred = torch.tensor([[0, 1, 2, 2], [1, 0, 2, 0]])
    # the two void pixels (255) would be errors; skipped, 4 of 6 are right
    assert M.pixel_accuracy(pred, target, ignore_index=255) == pytest.approx(4 / 6)
    assert M.confusion_matrix(pred, target, 3, ignore_index=255).sum() == 6
    with pytest.raises(ValueError):                                     # 255 is not a class
        M.confusion_matrix(pred, target, 3)
    # ignoring class 0, one of the classes: its pixels are skipped, and it has no IoU
    t = torch.tensor([[0, 1, 1, 2]])
    p = torch.tensor([[1, 0, 1, 2]])
    iou = M.iou_per_class(p, t, 3, ignore_index=0)
    assert math.isnan(iou[0])
    # class 1: true at pixels 1 and 2, predicted at 2 (pixel 0's prediction is skipped with it);
    # calling pixel 1 "0", the ignored class, is still a miss
    assert iou[1] == pytest.approx(1 / 2) and iou[2] == 1.0
    assert M.mean_iou(p, t, 3, ignore_index=0) == pytest.approx(0.75)


def test_all_background_on_the_shapes_scenes_scores_as_the_module_says():
    target = shapes_segmentation(128, seed=0).semantic_masks()
    pred = torch.zeros_like(target)
    assert M.pixel_accuracy(pred, target) == pytest.approx(0.859, abs=1e-3)         # "86% background"
    assert M.mean_iou(pred, target, 4) == pytest.approx(M.pixel_accuracy(pred, target) / 4)


def test_mean_iou_is_over_the_whole_set_not_a_mean_of_images():
    # one image with a small object found, one with a large object missed: the set's IoU weighs pixels
    t1, p1 = torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 0, 1]])
    t2, p2 = torch.tensor([[1, 1, 1, 0]]), torch.tensor([[0, 0, 0, 0]])
    whole = M.mean_iou(torch.stack([p1, p2]), torch.stack([t1, t2]), 2)
    per_image = (M.mean_iou(p1, t1, 2) + M.mean_iou(p2, t2, 2)) / 2
    assert whole == pytest.approx((4 / 7 + 1 / 4) / 2) and per_image == pytest.approx((1 + 1 / 8) / 2)


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_the_pixel_by_pixel_version(seed):
    c = 2 + seed % 5
    ignore = (None, 255, 0, c - 1)[seed % 4]
    pred, target = _case(seed, c, ignore)
    accuracy, ious, miou = _brute_force(pred, target, c, ignore)
    assert _same(M.pixel_accuracy(pred, target, ignore), accuracy)
    got = M.iou_per_class(pred, target, c, ignore)
    assert {k for k in range(c) if not math.isnan(got[k])} == set(ious)
    for k, v in ious.items():
        assert float(got[k]) == pytest.approx(v, abs=1e-12)
    assert _same(M.mean_iou(pred, target, c, ignore), miou)      # NaN for both when no class is left


# ---------------------------------------------------------------- torchmetrics
@pytest.fixture(scope="module")
def tm():
    return pytest.importorskip("torchmetrics.classification",
                               reason="torchmetrics (requirements.txt, tests only) is the test's reference")


def test_agrees_with_torchmetrics_on_generated_predictions(tm):
    largest, compared, absent_seen = 0.0, 0, 0
    for seed in range(60):
        c = 2 + seed % 6
        ignore = (None, 255, 0, c - 1, None)[seed % 5]
        pred, target = _case(100 + seed, c, ignore, shape=(3, 5, 6))
        if ignore is not None and bool((target == ignore).all()):
            continue
        kwargs = {} if ignore is None else {"ignore_index": ignore}
        jaccard = tm.MulticlassJaccardIndex(num_classes=c, average="macro", **kwargs)
        accuracy = tm.MulticlassAccuracy(num_classes=c, average="micro", **kwargs)
        # two updates: torchmetrics sums the confusion matrices, as ours counts the whole set
        for k in (slice(0, 1), slice(1, 3)):
            jaccard.update(pred[k], target[k])
            accuracy.update(pred[k], target[k])
        ours_iou, ours_acc = M.mean_iou(pred, target, c, ignore), M.pixel_accuracy(pred, target, ignore)
        largest = max(largest, abs(ours_iou - float(jaccard.compute())), abs(ours_acc - float(accuracy.compute())))
        compared += 1
        absent_seen += int(M.iou_per_class(pred, target, c, ignore).isnan().sum()) - int(ignore is not None and ignore < c)
    assert compared >= 55 and absent_seen >= 10          # classes absent from both sides did occur
    assert largest <= 1e-6, largest                      # float32 (torchmetrics) against float64 (ours)


def test_absent_classes_are_left_out_by_both(tm):
    # 4 classes, only 0 and 1 anywhere: the mean is over 2 classes (1/3 each), not 4 (1/6)
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 0]])
    assert M.mean_iou(pred, target, 4) == pytest.approx(1 / 3)
    ref = tm.MulticlassJaccardIndex(num_classes=4, average="macro")(pred, target)
    assert float(ref) == pytest.approx(1 / 3)
    # a class only predicted counts, with IoU 0
    pred2 = torch.tensor([[0, 2, 1, 1]])
    assert M.mean_iou(pred2, target, 4) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert float(tm.MulticlassJaccardIndex(num_classes=4, average="macro")(pred2, target)) == pytest.approx((1 / 2 + 1 + 0) / 3)
