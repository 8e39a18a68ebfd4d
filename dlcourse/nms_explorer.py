"""The NMS explorer (chapter 11): what a score threshold and non-maximum suppression leave of a
detector's candidate boxes.

A detector's raw output is many boxes per object (YOLO's grid gives S x S x B of them, each with
a score). Decoding keeps the boxes whose score reaches a threshold, then runs per-class NMS
(`dlcourse.boxes.batched_nms`): a box is dropped when a better-scored box of its class overlaps it
by more than the IoU threshold. This explorer shows, for a few scenes, every combination of the
two thresholds: the boxes kept, drawn over the scene, and how they fare against the true boxes
(a kept box is a true positive when COCO's matching, `dlcourse.metrics.precision_recall`, pairs it
with an object at IoU >= 0.5; every other kept box is a false positive).

Why it is built this way (as `dlcourse.sampling_explorer` and `dlcourse.arch_explorer` are): the
book is static HTML without a Python kernel, so every view is computed in advance, one
`widgets.HTML` per (scene, score threshold, IoU threshold), nested in `widgets.Stack`s, one level
per control, and each control is joined to its level's Stacks with `widgets.jslink`, which the
browser resolves from the embedded widget state on its own (in a live notebook too). A view is an
SVG of the boxes over the scene; the scene itself is a small palette PNG (a few kilobytes), put
once into the explorer's style sheet as the background of a CSS class that its views name, so
that sixty views do not carry sixty copies of it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import torch

from dlcourse.boxes import batched_nms
from dlcourse.datasets.shapes import CLASSES
from dlcourse.metrics import precision_recall

__all__ = ["SCORE_THRESHOLDS", "IOU_THRESHOLDS", "CLASS_COLOURS", "FALSE_POSITIVE_DASH", "true_positives",
           "compute_view", "image_uri", "scene_style", "render_view", "nms_explorer"]

SCORE_THRESHOLDS = (0.05, 0.1, 0.2, 0.4, 0.6)
IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)       # 1.0 suppresses nothing: no IoU exceeds 1
CLASS_COLOURS = ("#ffffff", "#4c9be8", "#f2a93b", "#e8607a", "#7ad07a", "#b48ce8")   # by label; 0 unused
FALSE_POSITIVE_DASH = "1.6 1"                       # SVG dash pattern of a false positive's box


def true_positives(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, gt_boxes: torch.Tensor,
                   gt_labels: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """(D,) bool: which detections of one image COCO's matching counts as true positives.

    `precision_recall` ranks a class's detections by score (a stable sort) and gives the recall
    after each; a detection is a hit exactly where the recall rises. The same stable sort here
    maps the ranks back to the detections."""
    hit = torch.zeros(len(scores), dtype=torch.bool)
    pred = {"boxes": boxes, "scores": scores, "labels": labels}
    target = {"boxes": gt_boxes, "labels": gt_labels}
    for c in torch.unique(labels).tolist():
        n_gt = int((gt_labels == c).sum())
        if n_gt == 0:
            continue                                               # nothing to find: all false positives
        mine = torch.nonzero(labels == c).flatten()
        ranked = mine[torch.sort(scores[mine].double(), descending=True, stable=True).indices]
        _, recall, _ = precision_recall([pred], [target], c, iou_threshold, max_dets=len(scores))
        found = torch.round(recall * n_gt)                         # true positives so far, at each rank
        hit[ranked] = torch.diff(found, prepend=found.new_zeros(1)) > 0
    return hit


def compute_view(scene: dict, score_threshold: float, iou_threshold: float, match_iou: float = 0.5) -> dict:
    """One view: the candidates at or above `score_threshold`, those per-class NMS keeps at
    `iou_threshold` (indices into the scene's boxes, best score first), which of them are true
    positives at `match_iou`, and the counts."""
    boxes, scores, labels = scene["boxes"], scene["scores"], scene["labels"]
    above = torch.nonzero(scores >= score_threshold).flatten()
    kept = above[batched_nms(boxes[above], scores[above], labels[above], iou_threshold)]
    hits = true_positives(boxes[kept], scores[kept], labels[kept], scene["gt_boxes"], scene["gt_labels"], match_iou)
    tp = int(hits.sum())
    return {"score_threshold": score_threshold, "iou_threshold": iou_threshold, "match_iou": match_iou,
            "candidates": len(above), "kept": kept.tolist(), "hits": hits.tolist(), "tp": tp,
            "fp": len(kept) - tp, "objects": len(scene["gt_boxes"]), "missed": len(scene["gt_boxes"]) - tp}


def image_uri(image: torch.Tensor, colours: int = 32) -> str:
    """A (3, H, W) image in [0, 1] as a data URI of a palette PNG (`colours` colours: the shapes
    keep theirs, the noisy background is quantised, and the file stays a few kilobytes)."""
    from PIL import Image

    pixels = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)   # (H, W, 3)
    buf = io.BytesIO()
    Image.fromarray(pixels).quantize(colours).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rect(box, colour: str, width: float, dash: str | None = None) -> str:
    x0, y0, x1, y1 = (float(v) for v in box)
    dashed = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<rect x='{x0:.2f}' y='{y0:.2f}' width='{max(x1 - x0, 0):.2f}' height='{max(y1 - y0, 0):.2f}' "
            f"fill='none' stroke='{colour}' stroke-width='{width}'{dashed}/>")


def render_view(view: dict, scene: dict, background: str, class_names: Sequence[str] = CLASSES) -> str:
    """HTML for one view: an SVG with the true boxes (white, dotted) and the kept boxes (coloured
    by class; solid when a true positive, dashed when a false positive, with their scores), then
    the counts. `background` is the CSS class whose background image is the scene (`scene_style`)."""
    _, h, w = scene["image"].shape
    parts = [_rect(b, "#ffffff", 0.35, "0.8 0.8") for b in scene["gt_boxes"]]
    for k, hit in zip(view["kept"], view["hits"]):
        colour = CLASS_COLOURS[int(scene["labels"][k]) % len(CLASS_COLOURS)]
        box = scene["boxes"][k]
        parts.append(_rect(box, colour, 0.5, None if hit else FALSE_POSITIVE_DASH))
        x, y = max(float(box[0]), 0.0) + 0.5, max(float(box[1]), 3.0) - 0.5
        parts.append(f"<text x='{x:.2f}' y='{y:.2f}' font-size='2.8' fill='{colour}'>"
                     f"{float(scene['scores'][k]):.2f}</text>")
    iou = view["iou_threshold"]
    nms_text = "no suppression (IoU threshold 1)" if iou >= 1 else f"NMS at IoU {iou:g}"
    counts = (f"{view['candidates']} candidates score at least {view['score_threshold']:g}; {nms_text} keeps "
              f"{len(view['kept'])}. Against the {view['objects']} true boxes (IoU &ge; {view['match_iou']:g}): "
              f"{view['tp']} true positives, {view['fp']} false positives, {view['missed']} objects missed.")
    legend = " ".join(f"<span style='color:{CLASS_COLOURS[c % len(CLASS_COLOURS)]}'>&#9632;</span>&nbsp;"
                      f"{html.escape(class_names[c])}" for c in range(1, len(class_names)))
    alt = (f"A scene with {view['objects']} objects and the {len(view['kept'])} boxes kept at score "
           f"{view['score_threshold']:g} and IoU threshold {iou:g}")
    return (f"<div class='nx'><svg viewBox='0 0 {w} {h}' role='img' aria-label='{html.escape(alt)}' "
            f"class='nx-scene {background}'>{''.join(parts)}</svg>"
            f"<p>{counts}</p><p class='nx-legend'>{legend}; solid: true positive, dashed: false positive, "
            f"white dots: the true boxes</p></div>")


STYLE = ("<style>.nx p{margin:0.3em 0;max-width:40em}.nx .nx-legend{font-size:0.85em}"
         ".nx svg text{font-family:sans-serif}.nx-scene{width:100%;max-width:300px;display:block;"
         "background-color:#000;background-size:100% 100%;image-rendering:pixelated}</style>")


def scene_style(images: Sequence[torch.Tensor]) -> tuple[str, list[str]]:
    """(a <style> element, the CSS class of each image): class k has image k as its background.
    The class names derive from the images' content, so two explorers on a page do not clash and
    a rebuilt page is the same."""
    uris = [image_uri(im) for im in images]
    uid = hashlib.sha1("".join(uris).encode()).hexdigest()[:8]
    names = [f"nx-{uid}-{k}" for k in range(len(uris))]
    rules = "".join(f".{n}{{background-image:url('{u}')}}" for n, u in zip(names, uris))
    return f"<style>{rules}</style>", names


def _nearest(values: Sequence[float], target: float) -> int:
    return min(range(len(values)), key=lambda k: abs(values[k] - target))


def nms_explorer(scenes: Sequence[dict], score_thresholds: Sequence[float] = SCORE_THRESHOLDS,
                 iou_thresholds: Sequence[float] = IOU_THRESHOLDS, class_names: Sequence[str] = CLASSES,
                 match_iou: float = 0.5, start: tuple[float, float] = (0.2, 0.5)) -> widgets.VBox:
    """Build the explorer (use it as the last expression of a notebook cell).

    Each scene is a dict of `image` (3, H, W) in [0, 1], the candidates' `boxes` (N, 4), `scores`
    (N,) and `labels` (N,), and the true `gt_boxes` and `gt_labels`. Controls: a drop-down for
    the scene (when there are several), a slider for the score threshold and one for NMS's IoU
    threshold; len(scenes) x len(score_thresholds) x len(iou_thresholds) precomputed views. Opens
    on the first scene at the thresholds nearest `start` (yolo_decode's defaults)."""
    scenes, score_thresholds, iou_thresholds = list(scenes), list(score_thresholds), list(iou_thresholds)
    if not scenes or not score_thresholds or not iou_thresholds:
        raise ValueError("the explorer needs at least one scene, one score threshold and one IoU threshold")
    at = (_nearest(score_thresholds, start[0]), _nearest(iou_thresholds, start[1]))
    slider = dict(continuous_update=True, style={"description_width": "initial"},
                  layout=widgets.Layout(flex="1 1 14em", width="auto", max_width="24em", min_width="0"))
    controls = [widgets.Dropdown(options=[f"scene {k + 1}" for k in range(len(scenes))], index=0,
                                 description="scene", layout=widgets.Layout(width="auto", max_width="12em")),
                widgets.SelectionSlider(options=[f"{t:g}" for t in score_thresholds], index=at[0],
                                        description="score at least", **slider),
                widgets.SelectionSlider(options=[f"{t:g}" for t in iou_thresholds], index=at[1],
                                        description="NMS IoU threshold", **slider)]
    stacks_by_level: list[list[widgets.Stack]] = [[], [], []]
    views: list[dict] = []
    roots = []
    backgrounds, classes = scene_style([scene["image"] for scene in scenes])     # each image once
    for scene, background in zip(scenes, classes):
        rows = []
        for s in score_thresholds:
            leaves = []
            for t in iou_thresholds:
                view = compute_view(scene, s, t, match_iou)
                views.append(view)
                leaves.append(widgets.HTML(value=render_view(view, scene, background, class_names)))
            row = widgets.Stack(children=leaves, selected_index=at[1])
            stacks_by_level[2].append(row)
            rows.append(row)
        per_scene = widgets.Stack(children=rows, selected_index=at[0])
        stacks_by_level[1].append(per_scene)
        roots.append(per_scene)
    root = widgets.Stack(children=roots, selected_index=0)
    stacks_by_level[0].append(root)
    if len(scenes) == 1:                                 # no drop-down for a single scene
        controls, stacks_by_level = controls[1:], stacks_by_level[1:]
    links = [widgets.jslink((control, "index"), (stack, "selected_index"))
             for control, stacks in zip(controls, stacks_by_level) for stack in stacks]
    row = widgets.HBox(controls, layout=widgets.Layout(flex_flow="row wrap"))
    box = widgets.VBox([widgets.HTML(STYLE + backgrounds), row, root])
    # keep references: the links must outlive this call; tests inspect the views
    box._dlcourse_controls, box._dlcourse_links, box._dlcourse_views = controls, links, views
    return box
