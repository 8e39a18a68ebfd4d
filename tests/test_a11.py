"""Assignment a11 (object detection): the hidden tests reject subtly wrong solutions (each mutant
below is a plausible student mistake) and keep full marks for correct answers written other
valid ways.

Thresholds (fast profile: TinyYOLO, 3 classes, 2 boxes per cell, 73,149 parameters; 4 epochs of 512
scenes of 64x64 pixels in minibatches of 16, 128 Adam updates at learning rate 0.002, one CPU
thread), measured with the reference solution:

The notebook's own run, mAP@0.5 on 128 held-out shapes scenes (generated from 10,000 + SEED),
SEED = 0..4 (13.7 to 17.1 s per run of the whole notebook):
    0.918, 0.899, 0.863, 0.943, 0.871      worst 0.863 against TARGET = 0.7 (a margin of 0.163)
The notebook generates its scenes, so a student offline runs the same notebook with the same TARGET.

The grader's run (`bench/convergence/run.py --only a11-detection`): the student's train_detector
trains a fresh TinyYOLO on 512 scenes drawn from the secret seed (`autograder.scenes.glyph_scenes`:
three classes of glyphs no network has seen, painted like the shapes); the grader loads the trained
weights into `dlcourse.models.detection.YOLOGrid` and computes mAP@0.5 with
`dlcourse.metrics.mean_average_precision` (equal to pycocotools', tests/test_detection_metrics.py)
on 256 held-out scenes. Secret seeds 101, 202, ..., 1515 (SEED = 0), 23.9 to 34.2 s per grading of
the whole notebook with two gradings side by side:
    0.908 0.919 0.953 0.897 0.947 0.948 0.814 0.841 0.918 0.953 0.885 0.923 0.854 0.840 0.967
worst 0.814, mean 0.905 against _MAP50 = 0.6 (a margin of 0.214).

Weights brought from elsewhere earn nothing: a train_detector that trains on the notebook's own
shapes scenes whatever scenes it is given (the mutant `trained_on_the_notebooks_scenes` below)
brings the grader a detector of squares, circles and triangles: matched to the grader's glyph
classes as well as it can be (the best of the six matchings), it scored 0.21 and 0.34 on seed 1101
in two runs (one thread and two), far below _MAP50 (tests/test_scenes.py).
"""
import pathlib

import pytest

from mutation_helpers import grade_group, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a11-detection"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a11")]

# the matching, mAP and detection helpers call the student's functions: they live in the kernel
WELL_FORMED = dict(kernel_only=("matching", "train_helpers"))  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail[, message fragment]). Each group
# runs as one notebook; within a group the mutants target different tests. nms calls the student's
# box_iou, so a wrong IoU also fails the suppression test.
BOXES_METRICS_MODEL = {
    "iou_with_inclusive_pixel_ends": (   # the "+ 1" of pixel-index conventions, on boxes with exclusive ends
        "    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)        # (N, M)\n"
        "    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)\n"
        "    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)\n",
        "    inter = (bottom_right - top_left + 1).clamp(min=0).prod(dim=2)        # (N, M)\n"
        "    area_a = (a[:, 2] - a[:, 0] + 1).clamp(min=0) * (a[:, 3] - a[:, 1] + 1).clamp(min=0)\n"
        "    area_b = (b[:, 2] - b[:, 0] + 1).clamp(min=0) * (b[:, 3] - b[:, 1] + 1).clamp(min=0)\n",
        "test_box_iou", "overlap in 1 of 7"),
    "anchors_on_the_cell_corner": (
        "    cy, cx = torch.meshgrid((torch.arange(h) + 0.5) * stride, (torch.arange(w) + 0.5) * stride, indexing=\"ij\")\n",
        "    cy, cx = torch.meshgrid(torch.arange(h) * stride, torch.arange(w) * stride, indexing=\"ij\")\n",
        "test_anchors"),
    "ap_without_the_precision_envelope": (
        "    envelope = precision.double().flip(0).cummax(0).values.flip(0)     # best precision at this rank or later\n",
        "    envelope = precision.double()\n",
        "test_average_precision", "the envelope is 2/3"),
    "yolo_loss_without_the_no_object_weight": (
        "    return (lambda_coord * coord + conf_obj + lambda_noobj * conf_noobj + classes) / n\n",
        "    return (lambda_coord * coord + conf_obj + conf_noobj + classes) / n\n",
        "test_yolo_loss", "lambda_noobj"),
    "class_scores_squashed_too": (   # the sigmoid on every channel, class logits included
        "        return torch.cat([torch.sigmoid(out[..., :nb]), out[..., nb:]], dim=-1)\n",
        "        return torch.sigmoid(out)\n",
        "test_tiny_yolo", "the output differs"),
}
SUPPRESSION_CODING = {
    "nms_across_classes": (   # per-class suppression written as one suppression over every box
        "    kept = [idx[nms(boxes[idx], scores[idx], iou_threshold)]\n"
        "            for idx in (torch.nonzero(labels == c).flatten() for c in torch.unique(labels))]\n",
        "    kept = [nms(boxes, scores, iou_threshold)] if len(boxes) else []\n",
        "test_nms", "of other classes"),
    "decoding_with_width_and_height_swapped": (
        "    w, h = torch.exp(deltas[:, 2]) * wa, torch.exp(deltas[:, 3]) * ha\n",
        "    w, h = torch.exp(deltas[:, 2]) * ha, torch.exp(deltas[:, 3]) * wa\n",
        "test_box_coding", "decode_boxes"),
}
# a box at exactly the threshold suppressed (>= where the task says greater than), and a training
# loop that shuffles the images but builds the targets of the unshuffled scenes: it trains on
# images paired with another scene's boxes, which the grader's own run must catch
THRESHOLD_SHUFFLE = {
    "nms_suppresses_at_the_threshold": (
        "    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold        # (N, N), in score order\n",
        "    overlaps = box_iou(boxes[order], boxes[order]) >= iou_threshold       # (N, N), in score order\n",
        "test_nms", "exactly the threshold"),
    "targets_of_other_scenes": (
        "            target = yolo_targets([boxes[k] for k in idx], [labels[k] for k in idx], size // 8, model.num_classes, size)\n",
        "            target = yolo_targets(boxes[start:start + batch_size], labels[start:start + batch_size], size // 8,\n"
        "                                  model.num_classes, size)\n",
        "test_convergence", "reaches a held-out mAP@0.5"),
}
# weights that know other scenes earn nothing: a train_detector that trains on the notebook's own
# shapes scenes (the kernel's train_set) whatever scenes it is given brings the grader a detector of
# squares, circles and triangles, which cannot tell the grader's glyph classes apart
ELSEWHERE = {
    "trained_on_the_notebooks_scenes": (
        "    size = images.shape[-1]\n",
        "    images, boxes, labels = train_set.images, train_set.boxes, train_set.labels\n    size = images.shape[-1]\n",
        "test_convergence", "reaches a held-out mAP@0.5"),
}
GROUPS = {
    "boxes-metrics-model": (BOXES_METRICS_MODEL, {"test_nms"}),
    "suppression-coding": (SUPPRESSION_CODING, set()),
    "threshold-shuffle": (THRESHOLD_SHUFFLE, set()),
    "elsewhere": (ELSEWHERE, set()),
}


@pytest.mark.mutation
@pytest.mark.parametrize("group", list(GROUPS))
def test_wrong_solutions_fail_their_graded_cell(tmp_path, group):
    grade_group(SOURCE, tmp_path, GROUPS[group])


# Correct answers written other valid ways keep full marks: IoU pair by pair in Python loops, anchors
# from loops, box coding in float64 through a centre-size helper, suppression that breaks ties the
# other way (an unstable sort) and removes boxes with a shrinking tensor, the precision envelope and
# the 101 levels written as loops and arange / 100, the detector's stages as a ModuleList of
# Sequentials with functional ReLUs, the loss with the responsible box picked by gather, and a
# training loop with a while loop, gradients set to None by hand and float(loss).
OTHER_WAYS = {
    "box_iou": (
        """    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])          # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])      # (N, M, 2)
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)        # (N, M)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(inter))""",
        """    out = torch.zeros(len(a), len(b), dtype=a.dtype)
    for i in range(len(a)):
        for j in range(len(b)):
            ax0, ay0, ax1, ay1 = a[i].tolist()
            bx0, by0, bx1, by1 = b[j].tolist()
            iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
            ih = max(0.0, min(ay1, by1) - max(ay0, by0))
            union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - iw * ih
            out[i, j] = iw * ih / union if union > 0 else 0.0
    return out""",
        None),
    "anchor_grid": (
        """    h, w = feature_size
    shapes = torch.tensor([(s / math.sqrt(r), s * math.sqrt(r)) for r in ratios for s in sizes])   # (A, 2): w, h
    half = torch.cat([-shapes / 2, shapes / 2], dim=1)                                           # (A, 4)
    cy, cx = torch.meshgrid((torch.arange(h) + 0.5) * stride, (torch.arange(w) + 0.5) * stride, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)                            # (H*W, 1, 4)
    return (centres + half[None]).reshape(-1, 4)""",
        """    rows = []
    for i in range(feature_size[0]):
        for j in range(feature_size[1]):
            cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
            for r in ratios:
                for s in sizes:
                    bw, bh = s / r ** 0.5, s * r ** 0.5
                    rows.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return torch.tensor(rows, dtype=torch.float32)""",
        None),
    "encode": (
        """    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    x, y = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    xa, ya = anchors[:, 0] + wa / 2, anchors[:, 1] + ha / 2
    return torch.stack([(x - xa) / wa, (y - ya) / ha, torch.log(w / wa), torch.log(h / ha)], dim=1)""",
        """    def centre_size(b):
        b = b.double()
        return (b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]
    c, s = centre_size(boxes)
    ca, sa = centre_size(anchors)
    return torch.cat([(c - ca) / sa, (s / sa).log()], dim=1)""",
        None),
    "decode": (
        """    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    xa, ya = anchors[:, 0] + wa / 2, anchors[:, 1] + ha / 2
    x, y = deltas[:, 0] * wa + xa, deltas[:, 1] * ha + ya
    w, h = torch.exp(deltas[:, 2]) * wa, torch.exp(deltas[:, 3]) * ha
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=1)""",
        """    ca, sa = (anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2:] - anchors[:, :2]
    centre = ca + deltas[:, :2] * sa
    size = sa * deltas[:, 2:].exp()
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)""",
        None),
    "nms": (
        """    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold        # (N, N), in score order
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.int64)]""",
        """    remaining = torch.argsort(scores, descending=True)          # ties in any order
    keep = []
    while remaining.numel() > 0:
        best = remaining[0]
        keep.append(int(best))
        rest = remaining[1:]
        ious = box_iou(boxes[best].unsqueeze(0), boxes[rest])[0]
        remaining = rest[ious <= iou_threshold]
    return torch.as_tensor(keep, dtype=torch.long)""",
        None),
    "average_precision": (
        """    envelope = precision.double().flip(0).cummax(0).values.flip(0)     # best precision at this rank or later
    levels = torch.linspace(0, 1, 101, dtype=torch.float64)
    first = torch.searchsorted(recall.double().contiguous(), levels, side="left")   # first rank reaching each level
    reached = first < len(envelope)
    values = torch.zeros(101, dtype=torch.float64)
    values[reached] = envelope[first[reached]]
    return float(values.mean())""",
        """    p = precision.tolist()
    for k in range(len(p) - 2, -1, -1):
        p[k] = max(p[k], p[k + 1])
    r = recall.tolist()
    total = 0.0
    for level in (torch.arange(101, dtype=torch.float64) / 100).tolist():
        total += next((p[k] for k in range(len(r)) if r[k] >= level), 0.0)
    return total / 101""",
        None),
    "tiny_yolo": (
        """        layers, c_in = [], 3
        for c in (16, 32, 64):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(64, 5 * boxes_per_cell + num_classes, 1)
        ### END SOLUTION

    def forward(self, images):
        ### BEGIN SOLUTION
        out = self.head(self.backbone(images)).permute(0, 2, 3, 1)        # (N, S, S, 5B + C)""",
        """        self.stages = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o),
                           nn.Conv2d(o, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o)])
            for i, o in ((3, 16), (16, 32), (32, 64)))
        self.predict = nn.Conv2d(64, boxes_per_cell * 5 + num_classes, kernel_size=1)
        ### END SOLUTION

    def forward(self, images):
        ### BEGIN SOLUTION
        x = images
        for conv1, bn1, conv2, bn2 in self.stages:
            x = F.relu(bn2(conv2(F.relu(bn1(conv1(x))))))
        out = self.predict(x).movedim(1, -1)""",
        None),
    "yolo_loss": (
        """    with torch.no_grad():
        pb = corners(boxes[..., :4])                                      # (N, S, S, B, 4)
        tb = corners(target[..., 1:5])[..., None, :]                      # (N, S, S, 1, 4)
        inter = (torch.minimum(pb[..., 2:], tb[..., 2:]) - torch.maximum(pb[..., :2], tb[..., :2])).clamp(min=0).prod(-1)
        area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
        iou = inter / (area(pb) + area(tb) - inter).clamp(min=1e-9)        # (N, S, S, B)
        responsible = F.one_hot(iou.argmax(dim=-1), nb).bool() & has_obj[..., None]
    resp = boxes[responsible]                                             # (K, 5)
    tgt = target[..., 1:5][has_obj]                                       # (K, 4), the same cells in the same order
    coord = ((resp[:, :2] - tgt[:, :2]) ** 2).sum() + ((resp[:, 2:4].sqrt() - tgt[:, 2:4].sqrt()) ** 2).sum()
    conf_obj = ((resp[:, 4] - iou[responsible]) ** 2).sum()
    conf_noobj = (boxes[..., 4][~responsible] ** 2).sum()
    classes = ((probs[has_obj] - target[..., 5:][has_obj]) ** 2).sum()
    return (lambda_coord * coord + conf_obj + lambda_noobj * conf_noobj + classes) / n""",
        """    pb = corners(boxes[..., :4]).detach()
    tb = corners(target[..., 1:5]).unsqueeze(3)
    wh = (torch.min(pb[..., 2:], tb[..., 2:]) - torch.max(pb[..., :2], tb[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    size = lambda b: (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    iou = inter / (size(pb) + size(tb) - inter).clamp(min=1e-9)             # (N, S, S, B)
    best = iou.argmax(-1, keepdim=True)                                     # (N, S, S, 1)
    chosen = boxes.gather(3, best[..., None].expand(-1, -1, -1, 1, 5)).squeeze(3)   # (N, S, S, 5)
    obj = has_obj.to(pred.dtype)
    err_xy = ((chosen[..., :2] - target[..., 1:3]) ** 2).sum(-1)
    err_wh = ((chosen[..., 2:4].sqrt() - target[..., 3:5].sqrt()) ** 2).sum(-1)
    err_conf = (chosen[..., 4] - iou.gather(-1, best).squeeze(-1)) ** 2
    err_cls = ((probs - target[..., 5:]) ** 2).sum(-1)
    is_resp = torch.zeros_like(iou).scatter(-1, best, 1.0) * obj[..., None]
    noobj = ((1 - is_resp) * boxes[..., 4] ** 2).sum()
    total = (obj * (lambda_coord * (err_xy + err_wh) + err_conf + err_cls)).sum() + lambda_noobj * noobj
    return total / pred.shape[0]""",
        None),
    "train_detector": (
        """    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    size = images.shape[-1]
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=g)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size].tolist()
            target = yolo_targets([boxes[k] for k in idx], [labels[k] for k in idx], size // 8, model.num_classes, size)
            loss = yolo_loss(model(images[idx].to(device)), target.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses""",
        """    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator()
    gen.manual_seed(seed)
    H = images.size(-1)
    losses, epoch = [], 0
    while epoch < epochs:
        model.train()
        perm = torch.randperm(images.size(0), generator=gen)
        for batch in perm.split(batch_size):
            t = yolo_targets([boxes[i] for i in batch], [labels[i] for i in batch], H // 8, model.num_classes, H)
            loss = yolo_loss(model(images[batch].to(params[0].device)), t.to(params[0].device))
            for p in params:
                p.grad = None
            loss.backward()
            opt.step()
            losses.append(float(loss))
        epoch += 1
    return losses""",
        None),
}


@pytest.mark.variants
def test_other_valid_answers_keep_full_marks(tmp_path):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, OTHER_WAYS, messages, train=True)
    assert not any(failed.values()), {gid: messages[gid] for gid, err in failed.items() if err}
