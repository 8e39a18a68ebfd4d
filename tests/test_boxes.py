"""dlcourse.boxes against worked examples computed by hand here, against second implementations
written here the slow, obvious way, and (only where torchvision's compiled ops load, e.g. Colab or
a GPU machine; the CUDA wheel the index serves here does not load with CPU torch) against
torchvision.ops."""
from __future__ import annotations

import math

import pytest
import torch

from dlcourse import boxes as B


def _random_boxes(n: int, g: torch.Generator, size: float = 50.0, degenerate: bool = True) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 2
    if degenerate:   # some boxes with zero or negative width or height
        wh[::7, 0] = 0.0
        wh[3::11, 1] = -2.0
    return torch.cat([xy, xy + wh], dim=1)


def _iou_by_hand(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    area = lambda r: max(r[2] - r[0], 0) * max(r[3] - r[1], 0)  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------- IoU
def test_iou_worked_examples():
    a = torch.tensor([[0.0, 0, 2, 2]])
    cases = {(1.0, 1, 3, 3): 1 / 7,      # one unit square shared, 4 + 4 - 1 = 7 covered
             (0.0, 0, 2, 2): 1.0,        # the same box
             (2.0, 0, 4, 2): 0.0,        # touching along an edge: no area in common
             (0.0, 0, 1, 2): 0.5,        # half of it
             (5.0, 5, 5, 9): 0.0}        # a box of zero width
    got = B.box_iou(a, torch.tensor(list(cases)))[0]
    assert torch.allclose(got, torch.tensor(list(cases.values())), atol=1e-7)
    assert B.box_iou(torch.tensor([[1.0, 1, 1, 1]]), torch.tensor([[1.0, 1, 1, 1]])).item() == 0.0  # empty union


def test_iou_agrees_with_the_pairwise_loop():
    g = torch.Generator().manual_seed(0)
    a, b = _random_boxes(23, g), _random_boxes(31, g)
    got = B.box_iou(a, b)
    want = torch.tensor([[_iou_by_hand(x.tolist(), y.tolist()) for y in b] for x in a], dtype=torch.float64)
    assert got.shape == (23, 31)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert B.box_iou(a[:0], b).shape == (0, 31)


# ---------------------------------------------------------------- anchors
def test_anchor_grid_worked_example():
    anchors = B.anchor_grid((2, 3), stride=16, sizes=(32.0,), ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (2 * 3 * 3, 4)
    s2 = math.sqrt(2)
    # cell (0, 0), centred at (8, 8): ratio 0.5 (wide), 1, 2 (tall), each of area 32^2
    want = torch.tensor([[8 - 16 * s2, 8 - 8 * s2, 8 + 16 * s2, 8 + 8 * s2],
                         [-8.0, -8, 24, 24],
                         [8 - 8 * s2, 8 - 16 * s2, 8 + 8 * s2, 8 + 16 * s2]])
    torch.testing.assert_close(anchors[:3], want)
    # cell (1, 2) is row-major cell 5, centred at (2.5 * 16, 1.5 * 16) = (40, 24)
    torch.testing.assert_close(anchors[5 * 3 + 1], torch.tensor([24.0, 8, 56, 40]))
    torch.testing.assert_close(B.box_area(anchors), torch.full((18,), 32.0 ** 2), rtol=1e-5, atol=1e-3)


def test_anchor_order_is_ratio_then_size():
    anchors = B.anchor_grid((1, 1), stride=8, sizes=(16.0, 32.0), ratios=(1.0, 4.0))
    w, h = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(w, torch.tensor([16.0, 32, 8, 16]))
    torch.testing.assert_close(h, torch.tensor([16.0, 32, 32, 64]))


# ---------------------------------------------------------------- box coding
def test_encoding_worked_example_and_round_trip():
    anchor = torch.tensor([[0.0, 0, 10, 10]])            # centre (5, 5), 10 x 10
    box = torch.tensor([[5.0, 5, 25, 15]])               # centre (15, 10), 20 x 10
    torch.testing.assert_close(B.encode_boxes(box, anchor), torch.tensor([[1.0, 0.5, math.log(2), 0.0]]))
    torch.testing.assert_close(B.encode_boxes(box, anchor, (10, 10, 5, 5)), torch.tensor([[10.0, 5, 5 * math.log(2), 0]]))
    g = torch.Generator().manual_seed(1)
    def sized(n):  # sizes 5 to 25: ratios within the decoder's clamp (62.5)
        xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
        return torch.cat([xy, xy + 5 + 20 * torch.rand(n, 2, generator=g, dtype=torch.float64)], dim=1)

    targets, anchors = sized(40), sized(40)
    for weights in ((1.0, 1, 1, 1), (10.0, 10, 5, 5)):
        back = B.decode_boxes(B.encode_boxes(targets, anchors, weights), anchors, weights)
        torch.testing.assert_close(back, targets, rtol=1e-9, atol=1e-9)


def test_decoding_clamps_the_size_ratio():
    anchor = torch.tensor([[0.0, 0, 16, 16]])
    huge = B.decode_boxes(torch.tensor([[0.0, 0, 100.0, 100.0]]), anchor)
    assert torch.isfinite(huge).all() and (huge[0, 2] - huge[0, 0]).item() == pytest.approx(1000.0)


# ---------------------------------------------------------------- NMS
def _nms_by_hand(boxes, scores, thr) -> list[int]:
    """Pick the best remaining box, remove what overlaps it more than thr, repeat."""
    left = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i))
    kept = []
    while left:
        best = left.pop(0)
        kept.append(best)
        left = [i for i in left if _iou_by_hand(boxes[best].tolist(), boxes[i].tolist()) <= thr]
    return kept


def test_nms_worked_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.9])
    # boxes 0 and 1 overlap with IoU 81 / 119 = 0.68; box 3 is box 0 again, with the same score
    assert B.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert B.nms(boxes, scores, 0.7).tolist() == [0, 1, 2]           # 0.68 is not above 0.7
    assert B.nms(boxes, scores, 1.0).tolist() == [0, 3, 1, 2]        # ties keep their order
    assert B.nms(boxes, scores, 81 / 119).tolist() == [0, 1, 2]      # exactly at the threshold: kept
    assert B.nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_nms_agrees_with_the_obvious_loop_and_is_per_class_when_batched():
    g = torch.Generator().manual_seed(2)
    for trial in range(5):
        boxes = _random_boxes(60, g, size=30.0)
        scores = torch.randint(0, 8, (60,), generator=g).double() / 8      # many equal scores
        for thr in (0.3, 0.5, 0.7):
            assert B.nms(boxes, scores, thr).tolist() == _nms_by_hand(boxes, scores, thr), (trial, thr)
    labels = torch.randint(0, 3, (60,), generator=g)
    kept = B.batched_nms(boxes, scores, labels, 0.5)
    want = sorted((i for c in range(3) for i in (torch.nonzero(labels == c).flatten()[
        _nms_by_hand(boxes[labels == c], scores[labels == c], 0.5)]).tolist()),
        key=lambda i: -float(scores[i]))
    assert sorted(kept.tolist()) == sorted(want)
    assert all(scores[kept][:-1] >= scores[kept][1:])
    # two boxes that overlap completely, of different classes, both stay
    same = torch.tensor([[0.0, 0, 10, 10]] * 2)
    assert B.batched_nms(same, torch.tensor([0.9, 0.8]), torch.tensor([1, 2]), 0.5).tolist() == [0, 1]
    assert B.batched_nms(same, torch.tensor([0.9, 0.8]), torch.tensor([1, 1]), 0.5).tolist() == [0]


# ---------------------------------------------------------------- RoI pooling
def test_roi_pool_worked_example():
    fmap = torch.arange(16.0).view(1, 1, 4, 4)
    # the whole map into 2 x 2 bins of 2 x 2 cells: each bin's maximum
    out = B.roi_pool(fmap, torch.tensor([[0.0, 0, 0, 3, 3]]), (2, 2))
    assert out.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
    # a region in image pixels with a stride-2 map: (2, 2, 5, 5) -> cells (1, 1)..(3, 3) (2.5 rounds up)
    out = B.roi_pool(fmap, torch.tensor([[0.0, 2, 2, 5, 5]]), (1, 1), spatial_scale=0.5)
    assert out.item() == 15.0
    # a 3-cell region into 2 bins: floor/ceil boundaries, so the bins overlap by a cell
    out = B.roi_pool(fmap, torch.tensor([[0.0, 0, 0, 2, 0]]), (1, 2))
    assert out.tolist() == [[[[1.0, 2.0]]]]


def _bilinear_by_hand(fmap, y, x):
    h, w = fmap.shape[-2:]
    if y < -1 or y > h or x < -1 or x > w:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * fmap[:, y0, x0] + (1 - dy) * dx * fmap[:, y0, x1]
            + dy * (1 - dx) * fmap[:, y1, x0] + dy * dx * fmap[:, y1, x1])


def _roi_align_by_hand(fmap, roi, out, scale, s, aligned):
    b, x0, y0, x1, y1 = roi
    off = 0.5 if aligned else 0.0
    x0, y0, x1, y1 = x0 * scale - off, y0 * scale - off, x1 * scale - off, y1 * scale - off
    rw, rh = (x1 - x0, y1 - y0) if aligned else (max(x1 - x0, 1.0), max(y1 - y0, 1.0))
    res = torch.zeros(fmap.shape[1], *out, dtype=fmap.dtype)
    for i in range(out[0]):
        for j in range(out[1]):
            for a in range(s):
                for c in range(s):
                    y = y0 + i * rh / out[0] + (a + 0.5) * rh / out[0] / s
                    x = x0 + j * rw / out[1] + (c + 0.5) * rw / out[1] / s
                    res[:, i, j] += _bilinear_by_hand(fmap[int(b)], y, x) / s ** 2
    return res


def test_roi_align_worked_example_and_the_sampling_loop():
    ramp = torch.arange(4.0).repeat(4, 1).view(1, 1, 4, 4)           # value = the column index
    # aligned: samples at x = 0, 1, 2, 3 exactly (pixel centres), bins average pairs of them
    out = B.roi_align(ramp, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), sampling_ratio=2)
    torch.testing.assert_close(out, torch.tensor([[[[0.5, 2.5], [0.5, 2.5]]]]))
    g = torch.Generator().manual_seed(3)
    fmap = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 3.2, 1.7, 15.9, 12.4], [1, -4.0, -3.0, 6.0, 5.5], [1, 18.0, 14.0, 25.0, 19.0],
                         [0, 5.0, 5.0, 5.5, 5.2]], dtype=torch.float64)
    for aligned in (True, False):
        got = B.roi_align(fmap, rois, (3, 4), spatial_scale=0.5, sampling_ratio=2, aligned=aligned)
        want = torch.stack([_roi_align_by_hand(fmap, r.tolist(), (3, 4), 0.5, 2, aligned) for r in rois])
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        B.roi_align(fmap, rois, (2, 2), sampling_ratio=0)


# ---------------------------------------------------------------- torchvision, where its ops load
def _torchvision_ops():
    try:
        from torchvision import ops
        ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4))
        ops.nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), 0.5)
        return ops
    except Exception as exc:  # noqa: BLE001 - any import or kernel-loading failure
        pytest.skip(f"torchvision's ops do not load here ({type(exc).__name__}); the tests above stand in")


def test_against_torchvision_ops():
    ops = _torchvision_ops()
    g = torch.Generator().manual_seed(4)
    a, b = _random_boxes(40, g, degenerate=False), _random_boxes(30, g, degenerate=False)
    torch.testing.assert_close(B.box_iou(a, b), ops.box_iou(a, b))
    scores = torch.rand(40, generator=g, dtype=torch.float64)
    assert B.nms(a, scores, 0.5).tolist() == ops.nms(a, scores, 0.5).tolist()
    labels = torch.randint(0, 3, (40,), generator=g)
    assert sorted(B.batched_nms(a, scores, labels, 0.5).tolist()) == sorted(ops.batched_nms(a, scores, labels, 0.5).tolist())
    fmap = torch.randn(2, 3, 9, 11, generator=g)
    rois = torch.tensor([[0, 3.2, 1.7, 15.9, 12.4], [1, 0.0, 0.0, 6.0, 5.5], [1, 2.5, 2.5, 9.5, 7.5]])
    torch.testing.assert_close(B.roi_pool(fmap, rois, (3, 4), 0.5), ops.roi_pool(fmap, rois, (3, 4), 0.5))
    for aligned in (True, False):
        torch.testing.assert_close(B.roi_align(fmap, rois, (3, 4), 0.5, 2, aligned),
                                   ops.roi_align(fmap, rois, (3, 4), 0.5, 2, aligned), rtol=1e-5, atol=1e-5)
