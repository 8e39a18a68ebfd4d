"""Box operations of object detection (chapter 11): overlap, anchors, box coding, suppression
and pooling of regions.

Conventions, the same as torchvision's and the shapes scenes' (`dlcourse.datasets.shapes`):
a box is (x0, y0, x1, y1) in continuous pixel coordinates, x1 and y1 exclusive, so its width is
x1 - x0 (no "+ 1"); a set of boxes is a float tensor (N, 4). A box with x1 <= x0 or y1 <= y0 is
degenerate: its area is 0 and it overlaps nothing.

- `box_iou`: intersection over union of every pair, the measure that decides whether a
  detection found an object (and that NMS suppresses by).
- `anchor_grid`: the reference boxes a region proposal network or a single-shot detector
  predicts from, centred on every cell of a feature map, one per scale and aspect ratio.
- `encode_boxes` / `decode_boxes`: Faster R-CNN's parameterisation of a box relative to an
  anchor (centre offsets in anchor widths, log size ratios), and its inverse.
- `nms`, `batched_nms`: greedy non-maximum suppression, per class in the batched form.
- `roi_pool` (Fast R-CNN) and `roi_align` (Mask R-CNN): a fixed-size feature map for every
  region of a shared feature map.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["box_area", "box_iou", "anchor_grid", "encode_boxes", "decode_boxes", "nms", "batched_nms",
           "roi_pool", "roi_align"]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N,) areas of (N, 4) boxes; 0 for degenerate boxes."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) intersection over union of boxes a (N, 4) and b (M, 4). A pair whose union is
    empty (two degenerate boxes) has IoU 0."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])          # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])      # (N, M, 2)
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)        # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def anchor_grid(feature_size: tuple[int, int], stride: float, sizes: tuple[float, ...],
                ratios: tuple[float, ...] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """(H * W * A, 4) anchors over an H x W feature map whose cells are `stride` pixels apart.

    Each cell (i, j) gets A = len(ratios) * len(sizes) anchors centred on the cell's centre,
    ((j + 0.5) * stride, (i + 0.5) * stride): for every aspect ratio r = height / width (outer
    loop) and size s (inner loop), a box of area s^2 with width s / sqrt(r) and height
    s * sqrt(r). Cells in row-major order, so anchor k of cell (i, j) is row (i * W + j) * A + k.
    """
    h, w = feature_size
    shapes = torch.tensor([(s / math.sqrt(r), s * math.sqrt(r)) for r in ratios for s in sizes],
                          dtype=torch.float32)                                            # (A, 2): width, height
    half = torch.cat([-shapes / 2, shapes / 2], dim=1)                                    # (A, 4)
    cy, cx = torch.meshgrid((torch.arange(h, dtype=torch.float32) + 0.5) * stride,
                            (torch.arange(w, dtype=torch.float32) + 0.5) * stride, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)                     # (H*W, 1, 4)
    return (centres + half[None]).reshape(-1, 4)


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """(N, 4) regression targets (tx, ty, tw, th) of boxes against their anchors (N, 4):

        tx = wx (x - xa) / wa,   ty = wy (y - ya) / ha,   tw = ww log(w / wa),   th = wh log(h / ha)

    with (x, y) a box's centre and (w, h) its size (Ren et al. 2015, eq. 2). Offsets in anchor
    widths and log ratios make the targets the same for a large and a small object that sit
    alike on their anchors. `weights` scale the four (Faster R-CNN's RoI head uses 10, 10, 5, 5).
    """
    x, y, w, h = _centre_size(boxes)
    xa, ya, wa, ha = _centre_size(anchors)
    wx, wy, ww, wh = weights
    return torch.stack([wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)], dim=1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 max_log_ratio: float = math.log(1000.0 / 16)) -> torch.Tensor:
    """(N, 4) boxes from regression outputs (N, 4) and their anchors (N, 4): the inverse of
    `encode_boxes`. The log size ratios are clamped at `max_log_ratio`, so that an untrained
    head cannot overflow exp()."""
    xa, ya, wa, ha = _centre_size(anchors)
    wx, wy, ww, wh = weights
    x = deltas[:, 0] / wx * wa + xa
    y = deltas[:, 1] / wy * ha + ya
    w = torch.exp((deltas[:, 2] / ww).clamp(max=max_log_ratio)) * wa
    h = torch.exp((deltas[:, 3] / wh).clamp(max=max_log_ratio)) * ha
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes greedy non-maximum suppression keeps, by decreasing score.

    Repeatedly keep the highest-scoring box left and drop every remaining box whose IoU with it
    exceeds `iou_threshold` (a box at exactly the threshold stays). Equal scores keep their
    input order (a stable sort), so the result is deterministic.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).numpy()     # (N, N) in score order
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):            # NumPy in the loop: a tensor op per box would dominate
        if removed[i]:
            continue
        keep.append(i)
        removed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.int64)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """`nms` within each class: a box suppresses only boxes of its own label (a cat does not hide
    the dog it overlaps). Indices of the kept boxes, by decreasing score."""
    keep = [idx[nms(boxes[idx], scores[idx], iou_threshold)] for idx in
            (torch.nonzero(labels == c).flatten() for c in torch.unique(labels))]
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    kept = torch.cat(keep)
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def _round_half_away(v: float) -> int:
    """C's round(): halves go away from zero (Python's round() goes to the even neighbour)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def roi_pool(features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int],
             spatial_scale: float = 1.0) -> torch.Tensor:
    """Fast R-CNN's RoI max pooling: (R, C, oh, ow) from features (N, C, H, W) and rois (R, 5)
    given as (batch index, x0, y0, x1, y1) in image pixels.

    Each region is scaled by `spatial_scale` (1 / the feature map's stride) and rounded to whole
    cells, at least one cell wide; its bins are cut at floor/ceil boundaries so that they cover
    the region and may overlap by a cell; each output is the maximum over its bin (0 for a bin
    wholly outside the map). These are the quantisations RoI align removes.
    """
    n, c, height, width = features.shape
    oh, ow = output_size
    out = features.new_zeros(len(rois), c, oh, ow)
    for r, (b, x0, y0, x1, y1) in enumerate(rois.tolist()):
        x0, y0, x1, y1 = (_round_half_away(v * spatial_scale) for v in (x0, y0, x1, y1))
        rw, rh = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)          # inclusive cell ends, at least one cell
        for i in range(oh):
            ys = min(max(y0 + math.floor(i * rh / oh), 0), height)
            ye = min(max(y0 + math.ceil((i + 1) * rh / oh), 0), height)
            for j in range(ow):
                xs = min(max(x0 + math.floor(j * rw / ow), 0), width)
                xe = min(max(x0 + math.ceil((j + 1) * rw / ow), 0), width)
                if ye > ys and xe > xs:
                    out[r, :, i, j] = features[int(b), :, ys:ye, xs:xe].amax(dim=(1, 2))
    return out


def _bilinear(features: torch.Tensor, batch: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """features (N, C, H, W) sampled by bilinear interpolation at points (R, P) of the maps
    `batch` (R,): (R, C, P). Points more than one cell outside the map give 0; within that
    margin they are clamped onto its border."""
    _, _, height, width = features.shape
    outside = (y < -1) | (y > height) | (x < -1) | (x > width)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y0, x0 = y.floor().long().clamp(max=height - 1), x.floor().long().clamp(max=width - 1)
    y1, x1 = (y0 + 1).clamp(max=height - 1), (x0 + 1).clamp(max=width - 1)
    y = torch.where(y0 >= height - 1, y0.to(y.dtype), y)
    x = torch.where(x0 >= width - 1, x0.to(x.dtype), x)
    ly, lx = (y - y0)[:, None], (x - x0)[:, None]                               # (R, 1, P)
    b = batch[:, None].expand_as(y0)                                            # (R, P)
    at = lambda yy, xx: features[b, :, yy, xx].permute(0, 2, 1)                 # (R, C, P)  # noqa: E731
    val = ((1 - ly) * (1 - lx) * at(y0, x0) + (1 - ly) * lx * at(y0, x1)
           + ly * (1 - lx) * at(y1, x0) + ly * lx * at(y1, x1))
    return torch.where(outside[:, None], torch.zeros_like(val), val)


def roi_align(features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float = 1.0,
              sampling_ratio: int = 2, aligned: bool = True) -> torch.Tensor:
    """Mask R-CNN's RoI align: (R, C, oh, ow), each output the mean of sampling_ratio^2 bilinear
    samples spread evenly over its bin, with no rounding of the region or of its bins.

    rois (R, 5) are (batch index, x0, y0, x1, y1) in image pixels. With `aligned`, coordinates
    are shifted by half a cell, so that a pixel's centre samples that pixel's value exactly
    (the "aligned=True" of torchvision, the correct form; the original had no shift and made
    regions at least one cell large). `sampling_ratio` must be positive here (torchvision's
    adaptive 0 is not offered).
    """
    if sampling_ratio <= 0:
        raise ValueError("sampling_ratio must be a positive number of samples per bin side")
    oh, ow = output_size
    if len(rois) == 0:
        return features.new_zeros(0, features.shape[1], oh, ow)
    rois = rois.to(features.dtype)
    corners = rois[:, 1:] * spatial_scale - (0.5 if aligned else 0.0)              # (R, 4)
    x0, y0 = corners[:, 0:1], corners[:, 1:2]
    rw, rh = corners[:, 2:3] - x0, corners[:, 3:4] - y0
    if not aligned:
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    # each bin's s x s samples at the centres of a regular sub-grid: (R, oh * s) rows, (R, ow * s) columns
    ys = y0 + (torch.arange(oh * sampling_ratio, dtype=features.dtype) + 0.5) * rh / (oh * sampling_ratio)
    xs = x0 + (torch.arange(ow * sampling_ratio, dtype=features.dtype) + 0.5) * rw / (ow * sampling_ratio)
    r, hs, ws = len(rois), oh * sampling_ratio, ow * sampling_ratio
    yy = ys[:, :, None].expand(r, hs, ws).reshape(r, -1)
    xx = xs[:, None, :].expand(r, hs, ws).reshape(r, -1)
    vals = _bilinear(features, rois[:, 0].long(), yy, xx)                           # (R, C, hs * ws)
    return vals.view(r, -1, oh, sampling_ratio, ow, sampling_ratio).mean(dim=(3, 5))
