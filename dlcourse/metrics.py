"""Evaluation metrics the chapters teach, each next to the baselines it is read against.

Perplexity (chapter 10) is the exponential of the mean negative log-likelihood per token,

    PPL = exp( -(1/N) * sum_t log p(x_t | x_<t) ),

the number of equally likely choices the model is as unsure as. A model that spreads its
probability evenly over a vocabulary of V tokens has perplexity exactly V; a model that is
always certain and right has perplexity 1. It is the exponential of the *mean* loss, never of
the summed one (which grows with the length of the text). Two baselines put a language
model's number in context: the uniform model (V) and the unigram model, which predicts every
character by its frequency in the training text and ignores the context.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["perplexity", "perplexity_from_nll", "unigram_perplexity", "precision_recall", "average_precision",
           "mean_average_precision", "confusion_matrix", "pixel_accuracy", "iou_per_class", "mean_iou"]


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean cross-entropy) of logits (..., V) against int64 targets (...), over every position."""
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="mean")
    return math.exp(float(nll))


def perplexity_from_nll(total_nll: float, count: int) -> float:
    """Perplexity from a summed negative log-likelihood (nats) over `count` tokens, for running totals."""
    if count <= 0:
        raise ValueError("perplexity needs at least one token")
    return math.exp(total_nll / count)


def unigram_perplexity(train: torch.Tensor, test: torch.Tensor, vocab_size: int, smoothing: float = 1.0) -> float:
    """Perplexity on `test` of the model p(c) = (count of c in `train` + smoothing) / (N + V * smoothing).

    Token ids in `train` and `test` are int64 in [0, vocab_size). Add-`smoothing` (Laplace)
    keeps a character unseen in training from costing an infinite loss; smoothing=0 gives the
    plain frequencies (then the perplexity on the training text is exp of its entropy).
    """
    counts = torch.bincount(train.reshape(-1), minlength=vocab_size).double() + smoothing   # (V,)
    log_p = counts.log() - counts.sum().log()                                               # (V,)
    return math.exp(-float(log_p[test.reshape(-1)].mean()))


# ---------------------------------------------------------------- detection (chapter 11)
# Average precision as COCO computes it (Lin et al. 2014; the reference implementation is
# pycocotools' COCOeval, which tests/test_detection_metrics.py compares with to 1e-6):
# - per image and class, detections are taken by decreasing score (the first `max_dets`), and
#   each is matched to the not yet matched ground-truth box it overlaps most, if that IoU is at
#   least the threshold; a detection matched is a true positive, any other a false positive;
# - per class, the detections of all images are ranked by score; precision and recall are
#   taken at every rank; the precision is made monotone (each value replaced by the best
#   precision at any higher recall: the envelope), and read at the 101 recalls 0, 0.01, ..., 1
#   (0 where the recall is never reached); AP is their mean;
# - mAP is the mean over the classes that have ground truth; COCO's AP@[.5:.95] averages it
#   over the IoU thresholds 0.50, 0.55, ..., 0.95; AP@0.5 is PASCAL VOC's threshold.
# numpy's linspace, as COCOeval takes them: torch.linspace rounds 10 of the 101 points the other
# way, and a recall of exactly k/n can fall on either side of one
RECALL_POINTS = torch.from_numpy(np.linspace(0.0, 1.0, 101))
COCO_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _match(boxes, scores, gt_boxes, iou_threshold: float, max_dets: int):
    """(scores of the first max_dets detections by score, True where each matched a ground truth)."""
    from dlcourse.boxes import box_iou

    order = torch.sort(scores, descending=True, stable=True).indices[:max_dets]
    boxes, scores = boxes[order], scores[order]
    matched = torch.zeros(len(order), dtype=torch.bool)
    if len(gt_boxes) and len(boxes):
        iou = box_iou(boxes.double(), gt_boxes.double())          # (D, G)
        taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
        for d in range(len(boxes)):
            best, best_iou = -1, min(iou_threshold, 1 - 1e-10)
            for g in range(len(gt_boxes)):    # the highest IoU wins; of equal ones, the later box (as COCOeval)
                if not taken[g] and iou[d, g] >= best_iou:
                    best, best_iou = g, float(iou[d, g])
            if best >= 0:
                taken[best], matched[d] = True, True
    return scores, matched


def precision_recall(predictions: list[dict], targets: list[dict], label: int, iou_threshold: float = 0.5,
                     max_dets: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(precision, recall, score) at every rank of class `label`'s detections over all images,
    best score first; precision is the raw one (not yet made monotone). Each prediction is a dict
    of `boxes` (D, 4), `scores` (D,) and `labels` (D,); each target of `boxes` and `labels`."""
    scores, hits, n_gt = [], [], 0
    for pred, target in zip(predictions, targets):
        gt = target["boxes"][target["labels"] == label]
        mine = pred["labels"] == label
        s, m = _match(pred["boxes"][mine], pred["scores"][mine].double(), gt, iou_threshold, max_dets)
        scores.append(s)
        hits.append(m)
        n_gt += len(gt)
    scores, hits = torch.cat(scores), torch.cat(hits)
    order = torch.sort(scores, descending=True, stable=True).indices
    scores, hits = scores[order], hits[order]
    tp = torch.cumsum(hits.double(), 0)
    fp = torch.cumsum((~hits).double(), 0)
    recall = tp / n_gt if n_gt else torch.zeros_like(tp)
    return tp / (tp + fp).clamp(min=1e-300), recall, scores


def average_precision(precision: torch.Tensor, recall: torch.Tensor) -> float:
    """COCO's 101-point interpolated AP of one class from its precision/recall at every rank."""
    envelope = precision.clone()
    for i in range(len(envelope) - 2, -1, -1):          # the best precision at this recall or any higher one
        envelope[i] = max(envelope[i], envelope[i + 1])
    at = torch.searchsorted(recall.double().contiguous(), RECALL_POINTS, side="left")   # first rank reaching each recall
    read = torch.zeros(len(RECALL_POINTS), dtype=torch.float64)                        # 0 where never reached
    reached = at < len(envelope)
    read[reached] = envelope[at[reached]].double()
    return float(read.mean())


def mean_average_precision(predictions: list[dict], targets: list[dict], iou_thresholds=COCO_IOUS,
                           max_dets: int = 100) -> dict:
    """COCO-style detection scores over images: {"map": AP@[.5:.95] (the mean over
    `iou_thresholds` and classes), "map_50", "map_75" (when those thresholds are among them),
    "per_class": {label: AP averaged over the thresholds}}. Classes without ground truth in any
    image are left out, as COCOeval leaves them out."""
    labels = sorted({int(c) for t in targets for c in t["labels"].tolist()})
    table = torch.zeros(len(iou_thresholds), len(labels), dtype=torch.float64)     # (T, K)
    for k, label in enumerate(labels):
        for t, thr in enumerate(iou_thresholds):
            p, r, _ = precision_recall(predictions, targets, label, thr, max_dets)
            table[t, k] = average_precision(p, r)
    out = {"map": float(table.mean()) if labels else 0.0,
           "per_class": {label: float(table[:, k].mean()) for k, label in enumerate(labels)}}
    for name, thr in (("map_50", 0.5), ("map_75", 0.75)):
        if thr in iou_thresholds and labels:
            out[name] = float(table[list(iou_thresholds).index(thr)].mean())
    return out


# ---------------------------------------------------------------- semantic segmentation (chapter 12)
# Every pixel is one classification, and the scores are read from the confusion matrix M over
# all pixels of all images (M[t, p]: pixels of true class t predicted as p):
# - pixel accuracy: trace(M) / sum(M), the fraction of pixels right. Dominated by the commonest
#   class: on the shapes scenes (`shapes_segmentation(128)`: 86% background) a network that
#   says "background" everywhere scores 0.86, and its mean IoU is 0.86 / 4 = 0.21.
# - IoU of class c: M[c, c] / (row c + column c - M[c, c]) = TP / (TP + FP + FN), the overlap of
#   the predicted and the true regions of c. Mean IoU averages it over the classes, each class
#   counting the same however few pixels it has (FCN, SegNet and U-Net all report it).
# - A class absent from both the prediction and the target has 0 / 0: it is left out of the
#   mean (not counted as 1, nor as 0). A class in only one of them has IoU 0.
# - `ignore_index`: pixels whose target is that value (255 in PASCAL VOC's masks: object
#   borders and "void") are skipped, in the prediction as in the target. If it is one of the
#   classes [0, C), that class is also left out of the mean IoU; its column may still hold
#   predictions, which are errors of the pixels' true classes.
# These are torchmetrics' MulticlassJaccardIndex(average="macro") and MulticlassAccuracy(
# average="micro") with the same ignore_index (compared in tests/test_segmentation_metrics.py).


def _labels(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class indices (N, H, W) from either class indices or scores (N, C, H, W) (argmax over C)."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} do not match")
    return pred


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """(C, C) int64 pixel counts, rows the true class, columns the predicted one.

    pred: class indices (N, H, W) or scores (N, C, H, W); target: class indices (N, H, W) in
    [0, C), or `ignore_index` for pixels left out."""
    pred = _labels(pred, target).reshape(-1).long()
    target = target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, v in (("target", target), ("prediction", pred)):
        if len(v) and (int(v.min()) < 0 or int(v.max()) >= num_classes):
            raise ValueError(f"{name} holds classes outside [0, {num_classes}): {sorted(set(v.unique().tolist()))}")
    # pixel (t, p) -> bin t * C + p: one bincount for the whole matrix
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes).cpu()


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> float:
    """Fraction of the (not ignored) pixels whose predicted class is the true one; NaN when none is left."""
    pred = _labels(pred, target)
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    total = int(keep.sum())
    return float((pred == target)[keep].sum()) / total if total else float("nan")


def iou_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                  ignore_index: int | None = None) -> torch.Tensor:
    """(C,) float64 IoU = TP / (TP + FP + FN) of every class; NaN for a class absent from both
    the prediction and the target (0 / 0) and for the ignored class when it is one of the C."""
    m = confusion_matrix(pred, target, num_classes, ignore_index).double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp                          # predicted + true - both
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        iou[ignore_index] = float("nan")
    return iou


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    """Mean of `iou_per_class` over the classes that are present (in the prediction or the target)
    and not ignored; NaN when there is none."""
    iou = iou_per_class(pred, target, num_classes, ignore_index)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else float("nan")
