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
           "mean_average_precision"]


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
