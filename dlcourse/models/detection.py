"""Small detectors for the shapes scenes (chapter 11): a YOLO-style single-shot grid detector, and
the parts of Faster R-CNN (region proposal network, RoI head, their four losses) put together
into a two-stage detector. Both train in the fast profile on a CPU; both use the box operations
of `dlcourse.boxes`.

YOLO (Redmon et al. 2016) reads detection as one regression: the image is cut into an S x S grid
and every cell predicts B boxes (x, y, w, h, confidence) and one set of C class probabilities,
an S x S x (B * 5 + C) tensor. (x, y) is the box centre as an offset within its cell, (w, h) its
size as a fraction of the image, and the confidence estimates IoU(box, object). The cell that
holds an object's centre is responsible for it, and of its B boxes the one that overlaps the
object most.

Faster R-CNN (Ren et al. 2015) first proposes regions: a small head slides over the shared
feature map and, for each of A anchors per position, scores "object or not" and regresses the
anchor towards the object (two losses). Proposals, pooled to a fixed size by RoI align, go
through a second head that classifies them into C + 1 classes (background included) and
refines their boxes per class (two more losses).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.boxes import anchor_grid, batched_nms, box_iou, decode_boxes, encode_boxes, nms, roi_align

__all__ = ["tiny_backbone", "YOLOGrid", "yolo_targets", "yolo_loss", "yolo_decode", "RPNHead", "rpn_targets",
           "rpn_loss", "propose", "RoIHead", "roi_targets", "roi_head_loss", "TwoStageDetector"]


def tiny_backbone(width: int = 16, stages: int = 3) -> nn.Sequential:
    """Conv-BN-ReLU pairs, each stage halving the resolution: (N, 3, H, W) -> (N, width * 2^(stages-1), H / 2^stages, W / 2^stages)."""
    layers, c_in = [], 3
    for i in range(stages):
        c_out = width * 2 ** i
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                   nn.Conv2d(c_out, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- YOLO-style single shot
class YOLOGrid(nn.Module):
    """Image (N, 3, H, W) to the grid tensor (N, S, S, B * 5 + C), S = H / 8 with the default backbone.

    Per cell: B boxes of (x, y, w, h, confidence), each squashed to (0, 1) by a sigmoid, then C
    class logits (softmax gives the class probabilities)."""

    def __init__(self, num_classes: int = 3, boxes_per_cell: int = 2, width: int = 16):
        super().__init__()
        self.num_classes, self.boxes_per_cell = num_classes, boxes_per_cell
        self.backbone = tiny_backbone(width)
        self.head = nn.Conv2d(width * 4, boxes_per_cell * 5 + num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(images)).permute(0, 2, 3, 1)          # (N, S, S, B*5 + C)
        b5 = self.boxes_per_cell * 5
        return torch.cat([torch.sigmoid(out[..., :b5]), out[..., b5:]], dim=-1)


def yolo_targets(boxes: list[torch.Tensor], labels: list[torch.Tensor], grid: int, num_classes: int,
                 image_size: int) -> torch.Tensor:
    """(N, S, S, 5 + C) targets: per cell an object flag, the responsible object's (x, y) offset in
    the cell, (w, h) as fractions of the image, and its one-hot class (labels 1..C). A cell holding
    the centres of several objects takes the first of them (YOLO's limit: one object per cell)."""
    out = torch.zeros(len(boxes), grid, grid, 5 + num_classes)
    cell = image_size / grid
    for n, (bx, lb) in enumerate(zip(boxes, labels)):
        for box, label in zip(bx.tolist(), lb.tolist()):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            j, i = min(int(cx // cell), grid - 1), min(int(cy // cell), grid - 1)
            if out[n, i, j, 0] > 0:
                continue
            out[n, i, j, :5] = torch.tensor([1.0, cx / cell - j, cy / cell - i, (box[2] - box[0]) / image_size,
                                             (box[3] - box[1]) / image_size])
            out[n, i, j, 5 + int(label) - 1] = 1.0
    return out


def _cell_boxes(xywh: torch.Tensor, grid: int) -> torch.Tensor:
    """(..., S, S, 4) cell-relative (x, y, w, h) to (x0, y0, x1, y1) in image fractions."""
    s = xywh.shape[-3]
    jj = torch.arange(s, dtype=xywh.dtype).view(1, s, 1)
    ii = torch.arange(s, dtype=xywh.dtype).view(s, 1, 1)
    cx, cy = (xywh[..., 0:1] + jj) / grid, (xywh[..., 1:2] + ii) / grid
    w, h = xywh[..., 2:3], xywh[..., 3:4]
    return torch.cat([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def yolo_loss(pred: torch.Tensor, target: torch.Tensor, lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> torch.Tensor:
    """YOLO's sum-squared error, summed over the grid and averaged over the batch:

    - for the responsible box (of the B in a cell with an object, the one with the highest IoU):
      lambda_coord * [(x - x*)^2 + (y - y*)^2 + (sqrt w - sqrt w*)^2 + (sqrt h - sqrt h*)^2]
      (square roots, so that an error of a few pixels costs a small box more than a large one),
      and (confidence - IoU)^2, the IoU taken as a constant;
    - every other box (in empty cells, and the non-responsible ones): lambda_noobj * confidence^2,
      down-weighted because most boxes see no object and would swamp the gradient;
    - in cells with an object: the squared error of the class probabilities against one-hot.
    """
    n, s = pred.shape[0], pred.shape[1]
    nb = (pred.shape[-1] - (target.shape[-1] - 5)) // 5
    boxes = pred[..., :nb * 5].reshape(n, s, s, nb, 5)                                # (N, S, S, B, 5)
    probs = F.softmax(pred[..., nb * 5:], dim=-1)                                     # (N, S, S, C)
    has_obj = target[..., 0] > 0                                                      # (N, S, S)
    with torch.no_grad():
        pb = _cell_boxes(boxes[..., :4].permute(3, 0, 1, 2, 4).reshape(nb * n, s, s, 4), s).reshape(nb, n, s, s, 4)  # (B, N, S, S, 4)
        tb = _cell_boxes(target[..., 1:5], s)                                         # (N, S, S, 4)
        inter_lt = torch.maximum(pb[..., :2], tb[None, ..., :2])
        inter_rb = torch.minimum(pb[..., 2:], tb[None, ..., 2:])
        inter = (inter_rb - inter_lt).clamp(min=0).prod(-1)
        area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)  # noqa: E731
        iou = (inter / (area(pb) + area(tb)[None] - inter).clamp(min=1e-9)).permute(1, 2, 3, 0)      # (N, S, S, B)
        best = iou.argmax(dim=-1)                                                     # (N, S, S)
        responsible = F.one_hot(best, nb).bool() & has_obj[..., None]                 # (N, S, S, B)
    resp = boxes[responsible]                                                         # (K, 5)
    tgt = target[..., 1:5][has_obj]                                                   # (K, 4): cells in the same order
    coord = ((resp[:, :2] - tgt[:, :2]) ** 2).sum() + ((resp[:, 2:4].sqrt() - tgt[:, 2:4].sqrt()) ** 2).sum()
    conf_obj = ((resp[:, 4] - iou[responsible]) ** 2).sum()
    conf_noobj = (boxes[..., 4][~responsible] ** 2).sum()
    cls = ((probs[has_obj] - target[..., 5:][has_obj]) ** 2).sum()
    return (lambda_coord * coord + conf_obj + lambda_noobj * conf_noobj + cls) / n


@torch.no_grad()
def yolo_decode(pred: torch.Tensor, boxes_per_cell: int, image_size: int, score_threshold: float = 0.2,
                iou_threshold: float = 0.5) -> list[dict]:
    """Per image: {"boxes" (D, 4) in pixels, "scores", "labels" (1..C)} after per-class NMS. A box's
    score is its confidence times its cell's probability of its most likely class."""
    n, s, nb = pred.shape[0], pred.shape[1], boxes_per_cell
    boxes = pred[..., :nb * 5].reshape(n, s, s, nb, 5)
    probs = F.softmax(pred[..., nb * 5:], dim=-1)                                     # (N, S, S, C)
    best_p, best_c = probs.max(dim=-1)                                                # (N, S, S)
    corners = torch.stack([_cell_boxes(boxes[..., b, :4], s) for b in range(nb)], dim=3) * image_size  # (N, S, S, B, 4)
    scores = boxes[..., 4] * best_p[..., None]                                        # (N, S, S, B)
    labels = (best_c + 1)[..., None].expand(-1, -1, -1, nb)
    out = []
    for k in range(n):
        sc, bx, lb = scores[k].reshape(-1), corners[k].reshape(-1, 4), labels[k].reshape(-1)
        keep = sc >= score_threshold
        sc, bx, lb = sc[keep], bx[keep].clamp(0, image_size), lb[keep]
        kept = batched_nms(bx, sc, lb, iou_threshold)
        out.append({"boxes": bx[kept], "scores": sc[kept], "labels": lb[kept]})
    return out


# ---------------------------------------------------------------- two stages: Faster R-CNN's parts
class RPNHead(nn.Module):
    """Region proposal head: a 3x3 conv over the shared features, then per position and anchor an
    objectness logit and four box deltas. Outputs (N, H * W * A) logits and (N, H * W * A, 4)
    deltas, in `anchor_grid`'s order (cells row-major, then the A anchors of a cell)."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.num_anchors = num_anchors
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness = nn.Conv2d(in_channels, num_anchors, 1)
        self.deltas = nn.Conv2d(in_channels, num_anchors * 4, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = F.relu(self.conv(features))
        n, _, h, w = t.shape
        logits = self.objectness(t).permute(0, 2, 3, 1).reshape(n, -1)                             # (N, H*W*A)
        deltas = self.deltas(t).view(n, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        return logits, deltas


def rpn_targets(anchors: torch.Tensor, gt_boxes: torch.Tensor, positive_iou: float = 0.7,
                negative_iou: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor (M,): label 1 (object), 0 (background) or -1 (ignored), and the index of the
    ground-truth box it is regressed to. Positive: IoU >= positive_iou with some box, or the
    anchor (or anchors, on a tie) that overlaps a box most, so every box has one; negative: IoU
    below negative_iou with every box; the rest is ignored (Ren et al. 2015, section 3.1.2)."""
    labels = torch.full((len(anchors),), -1, dtype=torch.int64)
    if len(gt_boxes) == 0:
        return labels.fill_(0), torch.zeros(len(anchors), dtype=torch.int64)
    iou = box_iou(anchors, gt_boxes)                                  # (M, G)
    best_iou, matched = iou.max(dim=1)
    labels[best_iou < negative_iou] = 0
    labels[best_iou >= positive_iou] = 1
    per_gt = iou.max(dim=0).values                                    # (G,)
    labels[((iou == per_gt[None]) & (per_gt[None] > 0)).any(dim=1)] = 1
    return labels, matched


def _smooth_l1(x: torch.Tensor, beta: float) -> torch.Tensor:
    return F.smooth_l1_loss(x, torch.zeros_like(x), beta=beta, reduction="sum")


def rpn_loss(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, gt_boxes: list[torch.Tensor],
             box_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The RPN's two losses over a batch: binary cross-entropy of objectness on every labelled
    anchor (mean), and smooth L1 (beta 1/9) of the positives' deltas against their encoded boxes,
    summed and divided by the number of labelled anchors."""
    cls, reg, count = logits.new_zeros(()), logits.new_zeros(()), 0
    for n, gt in enumerate(gt_boxes):
        labels, matched = rpn_targets(anchors, gt)
        used = labels >= 0
        cls = cls + F.binary_cross_entropy_with_logits(logits[n][used], labels[used].float(), reduction="sum")
        pos = labels == 1
        if pos.any():
            reg = reg + _smooth_l1(deltas[n][pos] - encode_boxes(gt[matched[pos]], anchors[pos]), 1 / 9)
        count += int(used.sum())
    count = max(count, 1)
    return cls / count, box_weight * reg / count


@torch.no_grad()
def propose(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, image_size: int, pre_nms: int = 300,
            post_nms: int = 60, iou_threshold: float = 0.7, min_size: float = 2.0) -> list[torch.Tensor]:
    """Per image, the proposals (P, 4): the pre_nms best-scored anchors, moved by their deltas,
    clipped to the image, without boxes smaller than min_size, NMS at iou_threshold, the best post_nms."""
    out = []
    for score, delta in zip(logits, deltas):
        top = torch.topk(score, min(pre_nms, len(score))).indices
        boxes = decode_boxes(delta[top], anchors[top]).clamp(0, image_size)
        sc = score[top]
        big = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
        boxes, sc = boxes[big], sc[big]
        out.append(boxes[nms(boxes, sc, iou_threshold)[:post_nms]])
    return out


class RoIHead(nn.Module):
    """Second stage: each region pooled by RoI align to pool x pool cells of the shared features,
    two fully connected layers, then C + 1 class logits (0 = background) and 4 deltas per class."""

    def __init__(self, in_channels: int, num_classes: int, pool: int = 4, hidden: int = 128, spatial_scale: float = 1 / 8):
        super().__init__()
        self.pool, self.spatial_scale, self.num_classes = pool, spatial_scale, num_classes
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * pool * pool, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.cls = nn.Linear(hidden, num_classes + 1)
        self.box = nn.Linear(hidden, 4 * (num_classes + 1))

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rois (R, 5): (batch index, x0, y0, x1, y1) in pixels -> logits (R, C + 1), deltas (R, C + 1, 4)."""
        t = self.fc(roi_align(features, rois, (self.pool, self.pool), self.spatial_scale, sampling_ratio=2))
        return self.cls(t), self.box(t).view(-1, self.num_classes + 1, 4)


ROI_WEIGHTS = (10.0, 10.0, 5.0, 5.0)   # Faster R-CNN's scaling of the second stage's regression targets


def roi_targets(proposals: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                foreground_iou: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per proposal: its class (the label of the box it overlaps most if IoU >= foreground_iou,
    else 0, background) and its regression targets (encoded with ROI_WEIGHTS; zeros for background)."""
    if len(gt_boxes) == 0:
        return torch.zeros(len(proposals), dtype=torch.int64), torch.zeros(len(proposals), 4)
    best_iou, matched = box_iou(proposals, gt_boxes).max(dim=1)
    labels = torch.where(best_iou >= foreground_iou, gt_labels[matched], torch.zeros_like(matched))
    targets = encode_boxes(gt_boxes[matched], proposals, ROI_WEIGHTS)
    return labels, torch.where(labels[:, None] > 0, targets, torch.zeros_like(targets))


def roi_head_loss(class_logits: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor,
                  reg_targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The second stage's two losses: cross-entropy over C + 1 classes (mean over regions), and
    smooth L1 (beta 1) of the true class's deltas on foreground regions, divided by the number of regions."""
    cls = F.cross_entropy(class_logits, labels)
    fg = labels > 0
    reg = _smooth_l1(deltas[fg, labels[fg]] - reg_targets[fg], 1.0) / max(len(labels), 1)
    return cls, reg


def _sample_rois(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the regions the second stage trains on: at most half of `count` foreground,
    the rest background, each in the order given (the true boxes first, then proposals by score,
    so that the backgrounds kept are the hardest). Faster R-CNN samples at random; this is
    deterministic, so that a run repeats exactly."""
    fg = torch.nonzero(labels > 0).flatten()[:count // 2]
    bg = torch.nonzero(labels == 0).flatten()[:count - len(fg)]
    return torch.cat([fg, bg])


class TwoStageDetector(nn.Module):
    """Faster R-CNN in miniature: a shared backbone (stride 8), a region proposal network over
    anchors of `sizes` x `ratios`, RoI align and a RoI head. In training mode, `forward(images,
    targets)` returns the four losses; in evaluation mode, `forward(images)` returns per image
    {"boxes", "scores", "labels"} after per-class NMS."""

    def __init__(self, num_classes: int = 3, width: int = 16, sizes: tuple[float, ...] = (12.0, 24.0, 40.0),
                 ratios: tuple[float, ...] = (0.5, 1.0, 2.0), image_size: int = 64, rois_per_image: int = 32):
        super().__init__()
        self.sizes, self.ratios, self.image_size, self.stride = sizes, ratios, image_size, 8
        self.rois_per_image = rois_per_image
        self.backbone = tiny_backbone(width)
        self.rpn = RPNHead(width * 4, len(sizes) * len(ratios))
        self.roi_head = RoIHead(width * 4, num_classes, spatial_scale=1 / self.stride)

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, score_threshold: float = 0.3,
                iou_threshold: float = 0.5):
        features = self.backbone(images)
        anchors = anchor_grid(tuple(features.shape[-2:]), self.stride, self.sizes, self.ratios)
        logits, deltas = self.rpn(features)
        proposals = propose(logits, deltas, anchors, self.image_size)
        if self.training:
            if targets is None:
                raise ValueError("in training mode the detector needs the targets (boxes and labels) to compute its losses")
            rpn_cls, rpn_box = rpn_loss(logits, deltas, anchors, [t["boxes"] for t in targets])
            rois, labels, regs = [], [], []
            for n, (props, t) in enumerate(zip(proposals, targets)):
                props = torch.cat([t["boxes"], props])          # the true boxes are regions too
                lab, reg = roi_targets(props, t["boxes"], t["labels"])
                props, lab, reg = (v[_sample_rois(lab, self.rois_per_image)] for v in (props, lab, reg))
                rois.append(torch.cat([torch.full((len(props), 1), float(n)), props], dim=1))
                labels.append(lab)
                regs.append(reg)
            class_logits, box_deltas = self.roi_head(features, torch.cat(rois))
            roi_cls, roi_box = roi_head_loss(class_logits, box_deltas, torch.cat(labels), torch.cat(regs))
            return {"rpn_objectness": rpn_cls, "rpn_box": rpn_box, "roi_class": roi_cls, "roi_box": roi_box}
        return self._detect(features, proposals, score_threshold, iou_threshold)

    @torch.no_grad()
    def _detect(self, features, proposals, score_threshold, iou_threshold) -> list[dict]:
        rois = torch.cat([torch.cat([torch.full((len(p), 1), float(n)), p], dim=1) for n, p in enumerate(proposals)])
        class_logits, box_deltas = self.roi_head(features, rois)
        probs = F.softmax(class_logits, dim=1)
        out, start = [], 0
        for props in proposals:
            end = start + len(props)
            p, d = probs[start:end, 1:], box_deltas[start:end, 1:]                 # (P, C), (P, C, 4): no background
            c = p.shape[1]
            boxes = decode_boxes(d.reshape(-1, 4), props.repeat_interleave(c, dim=0), ROI_WEIGHTS).clamp(0, self.image_size)
            scores, labels = p.reshape(-1), torch.arange(1, c + 1).repeat(len(props))
            keep = scores >= score_threshold
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            kept = batched_nms(boxes, scores, labels, iou_threshold)
            out.append({"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]})
            start = end
        return out
