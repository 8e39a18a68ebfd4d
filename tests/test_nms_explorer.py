"""The NMS explorer (chapter 11): its views keep what the score threshold and `batched_nms` keep, its
true positives are the ones COCO's matching counts, and its controls are wired with jslinks so that
it responds in the static book."""
import pytest
import torch
from ipywidgets.widgets.widget_link import Link

from dlcourse import nms_explorer as nx
from dlcourse.boxes import batched_nms
from dlcourse.datasets.shapes import shapes_detection
from dlcourse.metrics import precision_recall


def _scene(k: int = 0) -> dict:
    """A shapes scene with candidates around its objects: the true box itself, a shifted copy, a
    copy of another class, and one box far from everything."""
    data = shapes_detection(2, seed=5)
    gt, labels = data.boxes[k], data.labels[k]
    shifted = gt + torch.tensor([2.0, 1.0, 2.0, 1.0])
    other = (labels % 3) + 1                                         # a different class, same box
    stray = torch.tensor([[0.0, 0.0, 6.0, 6.0]])
    boxes = torch.cat([gt, shifted, gt, stray])
    scores = torch.cat([torch.full((len(gt),), 0.9), torch.full((len(gt),), 0.6), torch.full((len(gt),), 0.3),
                        torch.tensor([0.15])])
    return {"image": data.images[k], "boxes": boxes, "scores": scores,
            "labels": torch.cat([labels, labels, other, labels[:1]]), "gt_boxes": gt, "gt_labels": labels}


def test_views_keep_what_the_score_threshold_and_batched_nms_keep():
    scene = _scene()
    n = len(scene["gt_boxes"])
    for s in (0.1, 0.2, 0.5):
        for t in (0.1, 0.5, 1.0):
            view = nx.compute_view(scene, s, t)
            above = torch.nonzero(scene["scores"] >= s).flatten()
            want = above[batched_nms(scene["boxes"][above], scene["scores"][above], scene["labels"][above], t)]
            assert view["kept"] == want.tolist() and view["candidates"] == len(above)
            assert view["tp"] + view["fp"] == len(view["kept"]) and view["tp"] + view["missed"] == n
    # at IoU 1 nothing is suppressed; at 0.5 the shifted copies (IoU > 0.5 with their object) go
    assert nx.compute_view(scene, 0.1, 1.0)["kept"] == sorted(range(3 * n + 1), key=lambda k: -scene["scores"][k])
    view = nx.compute_view(scene, 0.1, 0.5)
    assert sorted(view["kept"]) == [*range(n), *range(2 * n, 3 * n + 1)]
    # the true boxes are the true positives; the other class's copies and the stray box are not
    assert view["tp"] == n and view["fp"] == n + 1 and view["missed"] == 0
    assert [view["hits"][view["kept"].index(k)] for k in range(n)] == [True] * n


def test_true_positives_are_those_of_coco_matching():
    """A duplicate of a matched object is a false positive; the recall's steps are the hits."""
    scene = _scene()
    boxes, scores, labels = scene["boxes"], scene["scores"], scene["labels"]
    hits = nx.true_positives(boxes, scores, labels, scene["gt_boxes"], scene["gt_labels"], 0.5)
    n = len(scene["gt_boxes"])
    assert hits[:n].all() and not hits[n:].any()                     # shifted copies come second: duplicates
    for c in torch.unique(labels).tolist():
        _, recall, _ = precision_recall([{"boxes": boxes, "scores": scores, "labels": labels}],
                                        [{"boxes": scene["gt_boxes"], "labels": scene["gt_labels"]}], c, 0.5,
                                        max_dets=len(scores))
        n_gt = int((scene["gt_labels"] == c).sum())
        if n_gt:
            assert int(hits[labels == c].sum()) == round(float(recall[-1]) * n_gt)
    # no true boxes of a class: all of its detections are false positives
    none = nx.true_positives(boxes[:1], scores[:1], labels[:1], torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert none.tolist() == [False]


def test_rendered_view_draws_each_kept_box_and_states_the_counts():
    scene = _scene()
    view = nx.compute_view(scene, 0.1, 0.5)
    style, classes = nx.scene_style([scene["image"]])
    assert f".{classes[0]}{{background-image:url('data:image/png;base64," in style
    html = nx.render_view(view, scene, classes[0])
    n = len(scene["gt_boxes"])
    assert html.count("<rect") == len(view["kept"]) + n               # kept boxes and the true boxes
    assert html.count(f"stroke-dasharray='{nx.FALSE_POSITIVE_DASH}'") == view["fp"]   # false positives dashed
    assert f"{view['tp']} true positives, {view['fp']} false positives, 0 objects missed" in html
    assert classes[0] in html and "role='img'" in html
    assert "no suppression" in nx.render_view(nx.compute_view(scene, 0.1, 1.0), scene, classes[0])
    assert len(nx.image_uri(scene["image"])) < 8000                    # a palette PNG of a few kilobytes


def test_explorer_precomputes_every_view_and_links_its_controls():
    scenes = [_scene(0), _scene(1)]
    box = nx.nms_explorer(scenes, score_thresholds=(0.1, 0.5), iou_thresholds=(0.3, 0.5, 1.0))
    assert len(box._dlcourse_views) == 2 * 2 * 3
    assert [(v["score_threshold"], v["iou_threshold"]) for v in box._dlcourse_views[:6]] == \
        [(s, t) for s in (0.1, 0.5) for t in (0.3, 0.5, 1.0)]
    # one link for the scene's stack, two for the score stacks, 2 x 2 for the IoU stacks
    assert all(type(link) is Link for link in box._dlcourse_links) and len(box._dlcourse_links) == 1 + 2 + 4
    scene, score, iou = box._dlcourse_controls
    assert scene.index == 0 and score.value == "0.1" and iou.value == "0.5"   # nearest to 0.2 and 0.5
    single = nx.nms_explorer(scenes[:1], score_thresholds=(0.1,), iou_thresholds=(0.5,))
    assert len(single._dlcourse_controls) == 2 and len(single._dlcourse_links) == 2   # no drop-down for one scene
    with pytest.raises(ValueError):
        nx.nms_explorer([])


def test_a_view_over_yolo_decode_s_raw_boxes_keeps_what_yolo_decode_keeps():
    """The chapter's explorer starts from every box of the grid (score 0, no suppression); its view at
    the decoder's thresholds must be the decoder's own output."""
    from dlcourse.models.detection import YOLOGrid, yolo_decode

    torch.manual_seed(0)
    data = shapes_detection(2, seed=7)
    with torch.no_grad():
        pred = YOLOGrid()(data.images)
    raw = yolo_decode(pred, 2, 64, score_threshold=0.0, iou_threshold=1.0)
    assert all(len(r["scores"]) == 8 * 8 * 2 for r in raw)
    for s, t in [(0.1, 0.5), (0.15, 0.3), (0.05, 0.7)]:
        decoded = yolo_decode(pred, 2, 64, score_threshold=s, iou_threshold=t)
        for k in range(2):
            scene = {"image": data.images[k], **raw[k], "gt_boxes": data.boxes[k], "gt_labels": data.labels[k]}
            view = nx.compute_view(scene, s, t)
            assert len(view["kept"]) == len(decoded[k]["scores"]) > 0
            torch.testing.assert_close(raw[k]["boxes"][view["kept"]], decoded[k]["boxes"])
            torch.testing.assert_close(raw[k]["scores"][view["kept"]], decoded[k]["scores"])
