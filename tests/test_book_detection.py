"""Chapter 11's prose against the code: what the pages say about the box operations, the detectors,
the profiles and the papers is what the library does and what the pages' own tables hold (the
numbers the pages print are computed by their cells)."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import pathlib
import re

import nbformat
import pytest
import torch

from dlcourse import boxes as B
from dlcourse import metrics as M
from dlcourse import nms_explorer as nx
from dlcourse.datasets import shapes
from dlcourse.models import detection as D

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "11-detection"
PAGES = ["boxes-and-metrics.ipynb", "two-stage.ipynb", "yolo.ipynb"]
DECKS = ROOT.parent / "shared" / "seeds"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _markdown(name: str) -> str:
    nb = nbformat.read(str(BOOK / name), as_version=4)
    return _flat("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))


def _code(name: str) -> str:
    nb = nbformat.read(str(BOOK / name), as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _literal(name: str, variable: str):
    """The value of a page's `variable = <literal>` (a table typed once on the page)."""
    for node in ast.walk(ast.parse(_code(name))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name}: no {variable} = ...")


def _bench_profiles() -> dict:
    spec = importlib.util.spec_from_file_location("bench_detection_run", ROOT / "bench/detection/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROFILES


# ---------------------------------------------------------------- the pages as files
def test_pages_are_stored_without_outputs_and_start_like_every_chapter():
    for name in PAGES:
        nb = nbformat.read(str(BOOK / name), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} is stored with outputs"
        assert "setup" in code[0].metadata.get("tags", []) and "parameters" in code[1].metadata.get("tags", [])
        assert all(f"{p} = " in code[1].source for p in ("PROFILE", "DEVICE", "SEED"))
        source = _code(name)
        assert "dlcourse.setup(PROFILE, DEVICE, SEED)" in source
        assert "torch.cuda.device_count()" in source and "torch.get_num_threads()" in source
        assert not nb.metadata.get("dlcourse", {}).get("prefetch"), f"{name}: the scenes are generated, not fetched"


def test_toc_lists_the_chapter_after_chapter_10():
    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("book/10-rnn/index") < toc.index("book/11-detection/index")
    for name in PAGES:
        assert f"- file: book/11-detection/{name.removesuffix('.ipynb')}" in toc


# ---------------------------------------------------------------- profiles
def test_the_page_trains_with_the_bench_s_profiles():
    page = _literal("yolo.ipynb", "PROFILES")
    bench = _bench_profiles()
    assert set(page) == set(bench) == {"fast", "full"}
    for profile in page:
        assert {k: v for k, v in page[profile].items() if k != "lr"} == bench[profile]
        assert page[profile]["lr"] == 2e-3
    assert "torch.optim.Adam(model.parameters(), 2e-3)" in (ROOT / "bench/detection/run.py").read_text()
    code = _code("yolo.ipynb")
    assert 'shapes_detection(P["train"], size=P["size"], max_objects=P["objects"], seed=SEED)' in code
    assert 'seed=10_000 + SEED)' in code and "seed=10_000 + seed)" in (ROOT / "bench/detection/run.py").read_text()
    assert 'torch.optim.Adam(model.parameters(), P["lr"])' in code
    # "more, larger and busier scenes and more epochs": every one of them grows
    fast, full = page["fast"], page["full"]
    assert all(full[k] > fast[k] for k in ("train", "size", "objects", "epochs"))
    index = _flat((BOOK / "index.md").read_text())
    for text in (index, _markdown("yolo.ipynb")):
        assert "more, larger and busier scenes and more epochs, for a GPU" in text
        assert "has not been run for the book yet, so the chapter quotes no result for it" in text


# ---------------------------------------------------------------- the first section
def test_the_box_sentences_match_the_library():
    text = _markdown("boxes-and-metrics.ipynb")
    assert "labels (1 square, 2 circle, 3 triangle; 0 is kept for the background)" in text
    assert shapes.CLASSES == ("background", "square", "circle", "triangle")
    # "A match at IoU 0.5 allows a shift of only a third of the side along one axis", and the other two
    s = 30.0
    box = torch.tensor([[0.0, 0.0, s, s]], dtype=torch.float64)
    iou = lambda other: float(B.box_iou(box, torch.tensor([other], dtype=torch.float64)))  # noqa: E731
    assert iou([s / 3, 0, s + s / 3, s]) == pytest.approx(0.5)
    d = s * (1 - math.sqrt(2 / 3))
    assert iou([d, d, s + d, s + d]) == pytest.approx(0.5)
    g = (math.sqrt(2) - 1) * s / 2
    assert iou([-g, -g, s + g, s + g]) == pytest.approx(0.5)
    assert iou([-s / 2, -s / 2, 1.5 * s, 1.5 * s]) == pytest.approx(0.25)       # "twice as wide and high: 1/4"
    assert "\\mathrm{IoU} = 0.5 \\iff d = s / 3" in text and "an IoU of only $1/4$" in text
    assert "$(s - d)^2 = \\tfrac{2}{3} s^2$" in text and "$w = \\sqrt{2}\\,s$" in text


def test_the_anchor_sentences_match_the_detector_s_settings():
    text = _markdown("boxes-and-metrics.ipynb")
    det = D.TwoStageDetector()
    assert "with 3 sizes and 3 aspect ratios, 9 anchors per position" in text
    assert len(det.sizes) == len(det.ratios) == 3
    assert "reads 64-pixel scenes through a backbone of stride 8, so its feature map has 8 x 8 positions" in text
    assert det.image_size == 64 and det.stride == 8
    assert det.backbone(torch.zeros(1, 3, 64, 64)).shape[-2:] == (8, 8)
    # "width s / sqrt(r) and height s sqrt(r)" with r = h / w
    a = B.anchor_grid((1, 1), 8, (16.0,), (4.0,))[0]
    assert float(a[2] - a[0]) == pytest.approx(8.0) and float(a[3] - a[1]) == pytest.approx(32.0)
    labels = inspect.signature(D.rpn_targets).parameters
    assert labels["positive_iou"].default == 0.7 and labels["negative_iou"].default == 0.3
    assert "positive when its IoU with an object is at least 0.7, and negative below 0.3" in text
    assert "*positive* if its IoU with some box is at least 0.7" in _markdown("two-stage.ipynb")
    assert "*negative* if its IoU is below 0.3" in _markdown("two-stage.ipynb")


def test_the_average_precision_sentences_match_the_metric():
    text = _markdown("boxes-and-metrics.ipynb")
    assert "averages it at the 101 recalls $0, 0.01, \\dots, 1$" in text
    assert len(M.RECALL_POINTS) == 101 and float(M.RECALL_POINTS[1]) == pytest.approx(0.01)
    assert "averages the mAP over the ten thresholds $0.50, 0.55, \\dots, 0.95$" in text
    assert M.COCO_IOUS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_the_erratum_quotes_deck_001():
    text = _markdown("boxes-and-metrics.ipynb")
    box = re.search(r":::\{admonition\} Erratum: deck 001's detection table.*?:::", text).group(0)
    heading = "Comparison with State-of-the-art Approaches (Object Detection) ILSVRC"
    assert heading in box and '"mAP@.5" and "mAP@[.5, .95]"' in box
    assert "(Table 7)" in box and "(Table 8)" in box
    # chapter 8's table: VOC from Table 7, COCO val from Table 8
    code8 = "\n".join(c.source for c in nbformat.read(str(ROOT / "book/08-resnet/architectures.ipynb"),
                                                           as_version=4).cells if c.cell_type == "code")
    assert '("COCO val", "mAP@[.5, .95]", 21.2, 27.2, "He et al. 2016, Table 8")' in code8
    if DECKS.is_dir():
        holding = {p.name[:3] for p in DECKS.glob("*.txt") if heading in p.read_text(encoding="utf-8")}
        assert holding == {"001"}
        deck = next(DECKS.glob("001_*.txt")).read_text(encoding="utf-8")
        assert "metric\tmAP@.5\tmAP@[.5, .95]" in deck and "VGG-16\t41.5\t21.2" in deck


# ---------------------------------------------------------------- the second section
def test_the_papers_settings_the_prose_quotes():
    papers = {k: v[0] for k, v in _literal("two-stage.ipynb", "PAPERS").items()}
    text = _markdown("two-stage.ipynb")
    assert f"into about {papers['R-CNN proposals per image']} candidate regions per image" in text
    assert f"about {papers['R-CNN proposals per image']} proposed regions per image" in text     # the summary
    r = papers["R-CNN input per region"]
    assert f"warped to the network's input of {r} x {r} pixels" in text
    assert f"whose cells lie {papers['VGG-16 feature stride']} pixels apart in VGG-16" in text
    g = papers["Fast R-CNN RoI pooling grid"]
    assert f"into a fixed grid of {g} x {g} cells by max pooling over a {g} x {g} division" in text
    assert f"({papers['Faster R-CNN proposals at test']} per image at test time in the paper)" in text
    assert "a cell is 16 pixels in VGG-16, 8 pixels here" in text and D.TwoStageDetector().stride == 8


def test_the_roi_sentences_are_what_the_ops_give():
    text = _markdown("two-stage.ipynb")
    fmap = torch.arange(64.0).view(1, 1, 8, 8)
    region = torch.tensor([[0.0, 13.0, 10.0, 43.0, 35.0]])
    assert "torch.tensor([[0.0, 13.0, 10.0, 43.0, 35.0]])" in _code("two-stage.ipynb")
    assert [v / 8 for v in region[0, 1:].tolist()] == [1.625, 1.25, 5.375, 4.375]
    assert "rounded the region $(1.625, 1.25, 5.375, 4.375)$ to the cells of columns 2 to 5 and rows 1 to 4" in text
    assert "took each bin's maximum, its bottom-right cell" in text
    pooled = B.roi_pool(fmap, region, (2, 2), 1 / 8)[0, 0]
    assert pooled.tolist() == [[8 * r + c for c in (3, 5)] for r in (2, 4)]      # bottom-right cells of 2 x 2 bins
    # "each output is the map's value at the centre of its bin" (aligned: minus half a cell)
    x0, y0, x1, y1 = (v / 8 - 0.5 for v in region[0, 1:].tolist())
    centres = [[8 * (y0 + (i + 0.5) * (y1 - y0) / 2) + x0 + (j + 0.5) * (x1 - x0) / 2 for j in range(2)]
               for i in range(2)]
    torch.testing.assert_close(B.roi_align(fmap, region, (2, 2), 1 / 8, sampling_ratio=2)[0, 0],
                               torch.tensor(centres))
    assert "sampled at a few regularly spaced points (here 2 x 2)" in text


def test_the_two_stage_detector_is_the_one_described():
    text = _markdown("two-stage.ipynb")
    det = D.TwoStageDetector()
    assert "a 3 x 3 convolution, then two 1 x 1 convolutions" in text
    assert det.rpn.conv.kernel_size == (3, 3) and det.rpn.objectness.kernel_size == det.rpn.deltas.kernel_size == (1, 1)
    assert "RoI align to 4 x 4 cells and a RoI head of two fully connected layers" in text
    assert det.roi_head.pool == 4 and sum(isinstance(m, torch.nn.Linear) for m in det.roi_head.fc) == 2
    assert "the chapter's two-stage detector uses RoI align" in text
    assert "roi_align(" in inspect.getsource(D.RoIHead.forward)
    data = shapes.shapes_detection(2, seed=1)
    losses = det.train()(data.images, [{"boxes": b, "labels": lab} for b, lab in zip(data.boxes, data.labels)])
    assert len(losses) == 4 and "*four losses*" in text
    # "the classification loss near ln(C + 1) = ln 4": three shapes and the background
    assert "$\\ln(C + 1) = \\ln 4$ (equal probabilities for the three shapes and the background)" in text
    assert det.roi_head.cls.out_features == 4


# ---------------------------------------------------------------- the third section
def test_the_grid_detector_sentences():
    text = _markdown("yolo.ipynb")
    paper = _literal("yolo.ipynb", "YOLO_PAPER")
    assert (f"The paper uses $S = {paper['S']}$, $B = {paper['B']}$ and the $C = {paper['C']}$ classes of PASCAL VOC "
            f"on {paper['input']} x {paper['input']} images") in text
    assert "$7 \\times 7 \\times 30$" in text and paper["S"] == 7 and 5 * paper["B"] + paper["C"] == 30
    assert "a 64-pixel scene gives an 8 x 8 grid, with $B = 2$ and the three shapes as classes" in text
    assert D.YOLOGrid()(torch.zeros(1, 3, 64, 64)).shape == (1, 8, 8, 2 * 5 + 3)
    # the loss's weights, the paper's
    defaults = inspect.signature(D.yolo_loss).parameters
    assert defaults["lambda_coord"].default == 5.0 and defaults["lambda_noobj"].default == 0.5
    assert "($\\lambda_{\\text{coord}} = 5$)" in text and "($\\lambda_{\\text{noobj}} = 0.5$)" in text
    # "objects are at least 10 pixels wide and never overlap, so no two centres share an 8-pixel cell"
    sig = inspect.signature(shapes.shapes_detection).parameters
    assert sig["min_size"].default == 10 and sig["size"].default == 64
    assert "objects are at least 10 pixels wide and never overlap, so no two centres share an 8-pixel cell" in text
    assert "on 64-pixel scenes with objects 10 to 32 pixels wide" in text
    assert sig["max_size"].default is None and "max_size = size // 2" in inspect.getsource(shapes._generate)


def test_the_explorer_prose_matches_its_settings():
    text = _markdown("yolo.ipynb")
    code = _code("yolo.ipynb")
    assert "At the IoU threshold 1, NMS suppresses nothing" in text and 1.0 in nx.IOU_THRESHOLDS
    assert "The explorer opens at `yolo_decode`'s defaults" in text
    assert 'start=(decode["score_threshold"], decode["iou_threshold"])' in code
    assert "score_threshold=0.0, iou_threshold=1.0)" in code               # the raw boxes, none suppressed
    assert "(IoU at least 0.5, matched as the mAP matches them)" in text
    assert inspect.signature(nx.nms_explorer).parameters["match_iou"].default == 0.5


def test_the_published_comparison_the_prose_quotes():
    text = _markdown("yolo.ipynb")
    to_ms = {"s": 1000.0, "ms": 1.0}
    table = {(c, name): (m, to_ms[unit] * v if unit in to_ms else 1000 / v)
             for c, name, m, (v, unit), _ in _literal("yolo.ipynb", "PUBLISHED")}
    by_name = lambda name, where: next(v for (c, n), v in table.items() if n == name and where in c)  # noqa: E731
    rcnn, fast = by_name("R-CNN", "not counted"), by_name("Fast R-CNN", "not counted")
    assert "about 150 times faster than R-CNN's (47 s against 0.32 s per image" in text
    assert (rcnn[1], fast[1]) == (47_000, 320) and round(rcnn[1] / fast[1], -1) == 150
    faster = by_name("Faster R-CNN", "proposals included")
    assert "brought the whole detector to 198 ms per image, with a higher mAP" in text
    assert faster[1] == 198 and faster[0] > by_name("selective search + Fast R-CNN", "proposals included")[0]
    yolo, faster12 = by_name("YOLO", "2007 + 2012"), by_name("Faster R-CNN (VGG-16)", "2007 + 2012")
    assert "at 45 images per second" in text and 1000 / yolo[1] == pytest.approx(45)
    assert "gives up about ten points of mAP against Faster R-CNN in the same comparison" in text
    assert round(faster12[0] - yolo[0]) == 10
    assert "several times faster again" in text and 1000 / faster12[1] * 3 < 1000 / yolo[1]


def test_the_index_lists_the_sections_and_the_code():
    index = _flat((BOOK / "index.md").read_text())
    for name in PAGES:
        assert f"]({name})" in index
    for module in ("dlcourse/boxes.py", "dlcourse/metrics.py", "dlcourse/models/detection.py",
                   "dlcourse/datasets/shapes.py", "dlcourse/nms_explorer.py"):
        assert f"`{module}`" in index and (ROOT / module).is_file()
