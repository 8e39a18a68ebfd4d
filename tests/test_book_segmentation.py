"""Chapter 12's prose against the code: what the pages say about the upsampling operations, the four
networks, the metrics, the mask head, the profiles and the papers is what the library does and what
the pages' own tables hold (the numbers the pages print are computed by their cells; the papers'
figures are checked here against a table typed from the papers)."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import pathlib
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import metrics as M
from dlcourse import tconv_explorer as tx
from dlcourse import upsample as U
from dlcourse.datasets import shapes
from dlcourse.flops import count_macs
from dlcourse.models import segmentation as S

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "12-segmentation"
PAGES = ["upsampling.ipynb", "architectures.ipynb", "metrics-and-instances.ipynb"]
DECKS = ROOT.parent / "shared" / "seeds"
BENCH = ROOT / "bench" / "segmentation" / "run.py"

# The papers' figures the pages quote, typed here from the papers (value in %, where they appear).
PAPERS = {
    ("FCN-32s", "PASCAL VOC 2011 val (subset)", "pixel accuracy"): (89.1, "Long et al. 2015, Table 2"),
    ("FCN-32s", "PASCAL VOC 2011 val (subset)", "mean IU"): (59.4, "Long et al. 2015, Table 2"),
    ("FCN-16s", "PASCAL VOC 2011 val (subset)", "pixel accuracy"): (90.0, "Long et al. 2015, Table 2"),
    ("FCN-16s", "PASCAL VOC 2011 val (subset)", "mean IU"): (62.4, "Long et al. 2015, Table 2"),
    ("FCN-8s", "PASCAL VOC 2011 val (subset)", "pixel accuracy"): (90.3, "Long et al. 2015, Table 2"),
    ("FCN-8s", "PASCAL VOC 2011 val (subset)", "mean IU"): (62.7, "Long et al. 2015, Table 2"),
    ("FCN-8s", "PASCAL VOC 2012 test", "mean IU"): (62.2, "Long et al. 2015, abstract and Table 3"),
    ("U-Net", "ISBI 2015 cell tracking, PhC-U373", "IoU"): (92.03, "Ronneberger et al. 2015, Table 2"),
    ("U-Net", "ISBI 2015 cell tracking, DIC-HeLa", "IoU"): (77.56, "Ronneberger et al. 2015, Table 2"),
    ("FC-DenseNet103", "CamVid test", "global accuracy"): (91.5, "Jégou et al. 2017, Table 3"),
    ("FC-DenseNet103", "CamVid test", "mean IoU"): (66.9, "Jégou et al. 2017, Table 3"),
}
MASK_RCNN = {  # COCO mask AP in %
    "ResNet-101-FPN": (35.7, "He et al. 2017, Table 1 (test-dev)"),
    "ResNeXt-101-FPN": (37.1, "He et al. 2017, Table 1 (test-dev)"),
    "ResNet-50-C4, softmax over classes in the mask head": (24.8, "He et al. 2017, Table 2b (minival)"),
    "ResNet-50-C4, a sigmoid per class (the paper's choice)": (30.3, "He et al. 2017, Table 2b (minival)"),
}
SEGNET_ENCODER = {"with fully connected layers": "134M", "without": "14.7M"}   # Badrinarayanan et al., section 3
TIRAMISU_103_PARAMETERS = "9.4M"                                                       # Jégou et al., Table 3


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _nb(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(BOOK / name), as_version=4)


def _markdown(name: str) -> str:
    return _flat("\n".join(c.source for c in _nb(name).cells if c.cell_type == "markdown"))


def _code(name: str) -> str:
    return "\n".join(c.source for c in _nb(name).cells if c.cell_type == "code")


def _literal(name: str, variable: str):
    """The value of a page's `variable = <literal>` (a table typed once on the page)."""
    for node in ast.walk(ast.parse(_code(name))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name}: no {variable} = ...")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_segmentation_run", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _admonition(text: str, title: str) -> str:
    return re.search(rf":::\{{admonition\}} {re.escape(title)}.*?:::", text).group(0)


# ---------------------------------------------------------------- the pages as files
def test_pages_are_stored_without_outputs_and_start_like_every_chapter():
    for name in PAGES:
        nb = _nb(name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} is stored with outputs"
        assert "setup" in code[0].metadata.get("tags", []) and "parameters" in code[1].metadata.get("tags", [])
        assert all(f"{p} = " in code[1].source for p in ("PROFILE", "DEVICE", "SEED"))
        source = _code(name)
        assert "dlcourse.setup(PROFILE, DEVICE, SEED)" in source
        assert "torch.cuda.device_count()" in source and "torch.get_num_threads()" in source
        assert not nb.metadata.get("dlcourse", {}).get("prefetch"), f"{name}: the scenes are generated, not fetched"
        for cell in code:                                     # every figure has alt text
            if "plt.show()" in cell.source:
                assert cell.metadata.get("mystnb", {}).get("image", {}).get("alt"), (name, cell.source[:60])


def test_toc_lists_the_chapter_after_chapter_11():
    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("book/11-detection/index") < toc.index("book/12-segmentation/index")
    for name in PAGES:
        assert f"- file: book/12-segmentation/{name.removesuffix('.ipynb')}" in toc


def test_the_index_lists_the_sections_the_code_and_the_references():
    index = _flat((BOOK / "index.md").read_text())
    for name in PAGES:
        assert f"]({name})" in index
    for module in ("dlcourse/upsample.py", "dlcourse/models/segmentation.py", "dlcourse/metrics.py",
                   "dlcourse/datasets/shapes.py", "dlcourse/tconv_explorer.py", "dlcourse/level_diagram.py"):
        assert f"`{module}`" in index and (ROOT / module).is_file()
    references = index.split("## References", 1)[1]
    for name in ("Long", "Badrinarayanan", "Ronneberger", "Jégou", "He, G. Gkioxari", "Dumoulin", "Odena"):
        assert name in references, name
    assert "{doc}`a12-segmentation <../assignments/a12-segmentation>`" in index


# ---------------------------------------------------------------- profiles
def test_the_page_trains_the_bench_s_networks_with_a_smaller_fast_profile_and_the_bench_s_full_one():
    page = _literal("architectures.ipynb", "PROFILES")
    bench = _bench()
    assert set(page) == set(bench.PROFILES) == {"fast", "full"}
    assert {k: v for k, v in page["full"].items() if k != "lr"} == bench.PROFILES["full"]
    assert page["full"]["lr"] == 2e-3 and "Adam([q for q in model.parameters() if q.requires_grad], 2e-3)" in \
        BENCH.read_text()
    # "fewer and smaller scenes than the fast profile of bench/segmentation/run.py, which trains ... longer"
    fast, bench_fast = page["fast"], bench.PROFILES["fast"]
    assert all(fast[k] < bench_fast[k] for k in ("train", "test", "size", "epochs"))
    assert fast["objects"] <= bench_fast["objects"]
    # "more, larger and busier scenes and more epochs"
    assert all(page["full"][k] > fast[k] for k in ("train", "size", "objects", "epochs"))
    # the same four builders as the bench
    code = _code("architectures.ipynb")
    bench_source = inspect.getsource(bench)
    for builder in ('"fcn8s": lambda k: S.fcn8s(k, cfg="small")', '"segnet": lambda k: S.segnet(k, cfg="small")',
                    '"unet": lambda k: S.unet(k, cfg="unet_small", in_channels=3)',
                    '"fc-densenet": lambda k: S.fc_densenet("small", k)'):
        assert builder in code and builder in bench_source, builder
    assert list(_literal_models(code)) == list(bench.MODELS)
    assert 'seed=10_000 + SEED)' in code and "seed=10_000 + seed)" in bench_source
    assert 'torch.optim.Adam(trainable, P["lr"])' in code and "F.cross_entropy(model(images), target)" in code
    index = _flat((BOOK / "index.md").read_text())
    for text in (index, _markdown("architectures.ipynb")):
        assert "more, larger and busier scenes and more epochs, for a GPU" in text
        assert "has not been run for the book yet, so the chapter quotes no result for it" in text
    assert "on fewer and smaller scenes than the fast profile of `bench/segmentation/run.py`" in index


def _literal_models(code: str) -> list[str]:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MODELS" for t in node.targets):
            return [ast.literal_eval(k) for k in node.value.keys]
    raise AssertionError("no MODELS = {...}")


# ---------------------------------------------------------------- downsampling and upsampling
def test_the_worked_transposed_convolution():
    text = _markdown("upsampling.ipynb")
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    out = U.conv_transpose2d(x, torch.ones(1, 1, 3, 3), stride=2)[0, 0]
    assert out.shape == (5, 5) and "the four stamps cover a 5 x 5 output" in text
    assert out[2, :2].tolist() == [4, 4] and out[2, 3:].tolist() == [6, 6]          # 1 + 3, 2 + 4
    assert out[:2, 2].tolist() == [3, 3] and out[3:, 2].tolist() == [7, 7]          # 1 + 2, 3 + 4
    assert out[2, 2] == 10
    assert "(1 + 3 = 4, 2 + 4 = 6, 1 + 2 = 3, 3 + 4 = 7), and the centre all four (10)" in text
    # "for a 4 x 4 input and a 3 x 3 kernel (stride 1, no padding) C has 4 rows ... and 16 columns"
    assert "$C$ has 4 rows, one per output pixel, and 16 columns" in text
    assert U.conv_output_size(4, 3) ** 2 == 4


def test_the_downsampling_and_size_sentences():
    text = _markdown("upsampling.ipynb")
    sizes = [64]
    for _ in range(5):
        sizes.append(U.conv_output_size(sizes[-1], 2, 2))
    assert sizes[-1] == 2 and "a 64-pixel scene ends as a 2 x 2 map" in text
    assert "(the network's *output stride*, 32)" in text
    assert len(S.cfgs["small"]) == 5 and "The chapter's small encoder pools five times, as VGG-16 does" in text
    assert U.conv_output_size(64, 3, 2, 1) == 32
    assert "n_{\\text{out}} = (n - 1)\\,s - 2p + k + o." in text
    assert all(U.conv_transpose_output_size(n, k, s, p, o) == (n - 1) * s - 2 * p + k + o
               for n in (1, 4, 7) for k in (1, 3, 4) for s in (1, 2, 3) for p in (0, 1) for o in range(s)
               if (n - 1) * s - 2 * p + k + o > 0)
    # "for every kernel from 1 to 7, stride from 1 to 4, padding from 0 to 2 and input from 1 to 8 pixels"
    assert ("for every kernel from 1 to 7, stride from 1 to 4, padding from 0 to 2 and input from 1 to 8 pixels"
            in text)
    code = _code("upsampling.ipynb")
    assert all(f"in range({r}):" in code for r in ("1, 8", "1, 5", "3", "1, 9"))
    assert {n: U.conv_output_size(n, 3, 2, 1) for n in (7, 8)} == {7: 4, 8: 4}
    assert "A 3 x 3 convolution with stride 2 and padding 1 turns both 7 and 8 pixels into 4" in text
    # "FCN upsamples with kernel 2f and stride f, and U-Net with kernel 2 and stride 2: even overlap. The tiramisu's
    # 3 x 3 transposed convolution with stride 2 overlaps unevenly" (the patterns: tests/test_tconv_explorer.py)
    assert "FCN upsamples with kernel $2f$ and stride $f$, and U-Net with kernel 2 and stride 2: even overlap" in text
    assert "The tiramisu's 3 x 3 transposed convolution with stride 2 overlaps unevenly" in text
    fcn, unet, fcd = S.fcn8s(4, cfg="small"), S.unet(4, cfg="unet_small", in_channels=3), S.fc_densenet("small", 4)
    assert all(m.kernel_size[0] == 2 * m.stride[0] for m in (*fcn.up2, fcn.up_final))
    assert unet.up[0].kernel_size == unet.up[0].stride == (2, 2)
    assert (fcd.up[0].kernel_size, fcd.up[0].stride) == ((3, 3), (2, 2))


def test_the_explorer_sentences():
    text = _markdown("upsampling.ipynb")
    assert "for a transposed convolution of a 6 x 6 input" in text and tx.INPUT == 6
    assert "from a 6 x 6 input of ones through a kernel of ones (`coverage`)" in text
    assert "Stride 2 with an odd kernel gives the checkerboard" in text
    assert all(tx.compute_view(k, 2, 0)["pattern"] == "checkerboard" for k in tx.KERNELS if k % 2 and k > 1)
    assert all(tx.compute_view(k, s, 0)["pattern"] == "even" for k in tx.KERNELS for s in tx.STRIDES if k % s == 0)
    assert all(tx.compute_view(k, s, 0)["pattern"] == "gaps" for k in tx.KERNELS for s in tx.STRIDES if s > k)
    assert "tconv_explorer()" in _code("upsampling.ipynb")
    assert inspect.signature(tx.tconv_explorer).parameters["start"].default[:2] == (3, 2)


def test_the_unpooling_and_bilinear_sentences():
    text = _markdown("upsampling.ipynb")
    # "A position in a 2 x 2 window takes 2 bits"; "4 * 32 / 2 = 64"; the ratio "a little above it"
    assert "$4 \\cdot 32 / 2 = 64$" in text
    assert "the last row of the 45-row map falls outside every 2 x 2 window" in text
    with torch.device("meta"):
        model = S.segnet()
    shapes_seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes_seen.append(tuple(o.shape[1:]))) for b in model.encoder]
    model(torch.empty(1, 3, 360, 480, device="meta"))
    for h in hooks:
        h.remove()
    assert [h for _, h, _ in shapes_seen] == [360, 180, 90, 45, 22]
    ratio = sum(32 * c * h * w for c, h, w in shapes_seen) / sum(2 * c * (h // 2) * (w // 2) for c, h, w in shapes_seen)
    assert 64 < ratio < 64.5
    assert ("$\\tfrac14, \\tfrac34, \\tfrac34, \\tfrac14$ along each axis, so a 4 x 4 kernel with stride 2 "
            "and padding 1") in text
    assert U.bilinear_kernel(1, 2)[0, 0, 0].tolist() == [0.0625, 0.1875, 0.1875, 0.0625]     # 1/4 times the tent
    assert "FCN's paper fixes the last upsampling to interpolation and learns the others from that start" in text
    fcn = S.fcn8s(4, cfg="small")
    assert not fcn.up_final.weight.requires_grad and fcn.up2[0].weight.requires_grad
    # "Each output channel reads only its own input channel"
    w = U.bilinear_kernel(3, 2)
    assert w[0, 1].abs().sum() == 0 and w[1, 1].abs().sum() > 0


# ---------------------------------------------------------------- the four networks
def test_the_network_sentences_match_the_models():
    text = _markdown("architectures.ipynb")
    # FCN's fc6/fc7 and its skips
    fcn = S.fcn8s(4, cfg="small")
    assert isinstance(fcn.head[0], nn.Conv2d) and fcn.head[0].kernel_size == (3, 3)
    assert fcn.head[2].kernel_size == (1, 1)
    assert "fc6 and fc7, here a 3 x 3 and a 1 x 1 convolution" in text
    assert S.fcn8s().head[0].out_channels == 1024 and "by a 3 x 3 convolution with 1024" in text
    assert [S.fcn32s(4, cfg="small").up_final.stride[0], S.fcn16s(4, cfg="small").up_final.stride[0],
            fcn.up_final.stride[0]] == [32, 16, 8]
    # SegNet: VGG-16's 13 convolutions; U-Net: four stages and a bottom of 1024; the tiramisu's configurations
    assert "SegNet's encoder is VGG-16's 13 convolutions" in text
    assert sum(n for _, n in S.cfgs["vgg16"]) == 13
    assert "four stages of two 3 x 3 convolutions and a pooling, its bottom a fifth stage with 1024 channels" in text
    assert len(S.cfgs["unet"]) == 5 and all(n == 2 for _, n in S.cfgs["unet"]) and S.cfgs["unet"][-1][0] == 1024
    assert "2 x 2 transposed convolutions that halve the channels" in text
    assert "The small U-Net trained here has three levels" in text and len(S.cfgs["unet_small"]) - 1 == 3
    k, down, bottleneck = S.dense_cfgs["fc_densenet103"]
    assert (k, down, bottleneck) == (16, (4, 5, 7, 10, 12), 15)
    assert ("growth rate $k = 16$, dense blocks of 4, 5, 7, 10 and 12 layers on the way down, 15 at the bottleneck"
            in text)
    k, down, _ = S.dense_cfgs["small"]
    assert "The small network trained here has three levels and growth rate 6" in text and (k, len(down)) == (6, 3)
    # "the FC-DenseNet's steps cost the most multiply-adds" at the page's size
    size = _literal("architectures.ipynb", "PROFILES")["fast"]["size"]
    macs = {name: count_macs(build(4), (3, size, size)) for name, build in _bench().MODELS.items()}
    assert max(macs, key=macs.get) == "fc-densenet"
    assert "the FC-DenseNet's steps cost the most multiply-adds" in text


def test_the_paper_sized_networks_have_the_papers_classes():
    text = _markdown("architectures.ipynb")
    assert ("with each paper's classes: 21 for FCN (PASCAL VOC), 12 for SegNet and the tiramisu (CamVid's 11 and "
            "\"void\"), 2 and one input channel for U-Net (cell images)") in text
    defaults = {f: {k: v.default for k, v in inspect.signature(f).parameters.items()}
                for f in (S.fcn8s, S.segnet, S.fc_densenet, S.unet)}
    assert defaults[S.fcn8s]["num_classes"] == 21 and defaults[S.segnet]["num_classes"] == 12
    assert defaults[S.fc_densenet]["num_classes"] == 12
    assert defaults[S.unet]["num_classes"] == 2 and defaults[S.unet]["in_channels"] == 1
    assert '"U-Net": (S.unet, 1)' in _code("architectures.ipynb")


def test_the_tiramisu_s_count_and_the_notes_on_the_slides():
    text = _markdown("architectures.ipynb")
    assert f"The paper counts {TIRAMISU_103_PARAMETERS} parameters for FC-DenseNet103; the library's has fewer" in text
    with torch.device("meta"):
        count = sum(p.numel() for p in S.fc_densenet("fc_densenet103").parameters())
    assert count < 9_400_000
    segnet_note = _admonition(text, "A note on deck 004's SegNet slide")
    assert '"Drop the FC layers, get better results"' in segnet_note
    assert (f"shrinks the encoder from {SEGNET_ENCODER['with fully connected layers']} to "
            f"{SEGNET_ENCODER['without']} parameters") in segnet_note
    dense_note = _admonition(text, "A note on deck 000's fully convolutional DenseNet slide")
    quotes = ["Encoder path of the network is based on DenseNets",
              "Each layer is directly connected to all other layers"]
    assert all(f'"{q}"' in dense_note for q in quotes)
    if DECKS.is_dir():
        deck000 = next(DECKS.glob("000_*.txt")).read_text(encoding="utf-8")
        deck004 = _flat(next(DECKS.glob("004_*.txt")).read_text(encoding="utf-8"))
        assert all(q in deck000 for q in quotes)
        assert "Drop the FC layers, get better results" in deck004


def test_the_published_results_the_page_quotes():
    rows = _literal("architectures.ipynb", "PUBLISHED")
    assert {(n, d, m): (v, s) for n, d, m, v, s in rows} == PAPERS
    text = _markdown("architectures.ipynb")
    voc = {(n, m): v for (n, d, m), (v, _) in PAPERS.items() if "2011" in d}
    assert "raise its mean IU by 3.3 points from FCN-32s to FCN-8s, and its pixel accuracy by only 1.2" in text
    assert round(voc["FCN-8s", "mean IU"] - voc["FCN-32s", "mean IU"], 1) == 3.3
    assert round(voc["FCN-8s", "pixel accuracy"] - voc["FCN-32s", "pixel accuracy"], 1) == 1.2


# ---------------------------------------------------------------- metrics and Mask R-CNN
def test_the_worked_metric_example():
    text = _markdown("metrics-and-instances.ipynb")
    code = _code("metrics-and-instances.ipynb")
    truth = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 2]])
    guess = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0]])
    assert "truth = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 2]])" in code
    assert "guess = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0]])" in code
    assert M.pixel_accuracy(guess, truth) == 14 / 16 and "$14/16 = 0.875$" in text
    iou = M.iou_per_class(guess, truth, 3).tolist()
    assert iou == pytest.approx([10 / 12, 4 / 5, 0.0])
    assert "($4 / 5 = 0.8$) and the background a false negative ($10 / 12$)" in text
    assert round(M.mean_iou(guess, truth, 3), 3) == 0.544 and "\\approx 0.544$" in text


def _erode(labels: torch.Tensor, k: int) -> torch.Tensor:
    """A pixel keeps class c when all 9 pixels of its 3 x 3 neighbourhood (outside the image: none) are c."""
    out = torch.zeros_like(labels)
    for c in range(1, k):
        windows = F.pad((labels == c).float()[:, None], (1, 1, 1, 1)).unfold(2, 3, 1).unfold(3, 3, 1)
        out[windows.amin(dim=(-1, -2))[:, 0] > 0] = c
    return out


def test_the_class_imbalance_sentences():
    """"All background" scores the background's share, and a mean IoU of the background's IoU over four;
    circles called squares lose exactly the circles' share of accuracy and two classes of IoU; the outline
    errors cost a few points of accuracy and much more of the shapes' IoU."""
    text = _markdown("metrics-and-instances.ipynb")
    assert "shapes_segmentation(128, seed=10_000 + SEED)" in _code("metrics-and-instances.ipynb")
    data = shapes.shapes_segmentation(128, seed=10_000)
    truth = data.semantic_masks()
    k = len(shapes.CLASSES)
    share = torch.bincount(truth.flatten(), minlength=k).double() / truth.numel()
    zeros = torch.zeros_like(truth)
    assert M.pixel_accuracy(zeros, truth) == pytest.approx(float(share[0]))
    assert M.mean_iou(zeros, truth, k) == pytest.approx(float(M.iou_per_class(zeros, truth, k)[0]) / 4)
    assert "its mean IoU is the background's IoU divided by four" in text
    circles = torch.where(truth == 2, torch.ones_like(truth), truth)
    assert M.pixel_accuracy(circles, truth) == pytest.approx(1 - float(share[2]))
    iou = M.iou_per_class(circles, truth, k)
    assert iou[2] == 0 and iou[1] < 1 and "the circles are missed (IoU 0) and the squares gain false positives" in text
    boxes = torch.zeros_like(truth)
    for n, (bxs, lbs) in enumerate(zip(data.boxes, data.labels)):
        for (x0, y0, x1, y1), c in zip(bxs.long().tolist(), lbs.tolist()):
            boxes[n, y0:y1, x0:x1] = c
    for pred in (_erode(truth, k), boxes):
        lost_accuracy = 1 - M.pixel_accuracy(pred, truth)
        lost_iou = 1 - float(M.iou_per_class(pred, truth, k)[1:].mean())
        assert lost_accuracy < 0.05 and lost_iou > 3 * lost_accuracy, (lost_accuracy, lost_iou)
    assert "cost a few points of pixel accuracy" in text and "but much more of the shapes' IoU" in text


def test_the_scenes_keep_objects_apart_as_the_page_says():
    text = _markdown("metrics-and-instances.ipynb")
    assert "objects never touch (the generator keeps a pixel of background between them)" in text
    data = shapes.shapes_segmentation(64, seed=10_000)
    for masks in data.masks:
        grown = F.max_pool2d(masks.float()[:, None], 3, stride=1, padding=1)[:, 0] > 0   # each object, one pixel wider
        for i in range(len(masks)):
            for j in range(len(masks)):
                if i != j:
                    assert not (grown[i] & masks[j]).any()


def test_the_mask_head_sentences():
    text = _markdown("metrics-and-instances.ipynb")
    head = S.MaskHead(256, num_classes=80)
    sig = inspect.signature(S.MaskHead).parameters
    assert (sig["pool"].default, sig["width"].default, sig["convs"].default) == (14, 256, 4)
    assert head.mask_size == 28 and "turn the region's 14 x 14 features into a 28 x 28 mask" in text
    assert "(the ResNet-FPN version: 256 input channels, four 256-channel convolutions, the 80 COCO classes)" in text
    convs = [m for m in head.net if isinstance(m, nn.Conv2d)]
    ups = [m for m in head.net if isinstance(m, nn.ConvTranspose2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 4 + [(1, 1)]
    assert len(ups) == 1 and ups[0].kernel_size == (2, 2) and ups[0].stride == (2, 2)
    assert "a few 3 x 3 convolutions, a 2 x 2 transposed convolution with stride 2 and a 1 x 1 convolution" in text
    # the loss reads the true class's mask only, for positive regions; the targets threshold RoI align at 1/2
    assert "fg = labels > 0" in inspect.getsource(S.mask_loss) and "binary_cross_entropy_with_logits" in \
        inspect.getsource(S.mask_loss)
    assert ">= 0.5" in inspect.getsource(S.mask_targets) and "thresholded at 1/2" in text
    assert "threshold: float = 0.5" in inspect.getsource(S.paste_masks) and "thresholds it at 1/2" in text
    assert _literal("metrics-and-instances.ipynb", "MASKS")["pool"] == 7 and "$14 \\times 14$ here" in text


def test_the_mask_r_cnn_figures_the_page_quotes():
    rows = _literal("metrics-and-instances.ipynb", "PUBLISHED")
    assert {name: (ap, source) for name, ap, source in rows} == MASK_RCNN
    text = _markdown("metrics-and-instances.ipynb")
    assert "improved mask accuracy by 10% to 50% relative" in text        # He et al. 2017, section 1
    assert "the whole system ran at 5 frames per second" in text          # He et al. 2017, abstract
    if DECKS.is_dir():
        assert "running at 5 fps" in next(DECKS.glob("004_*.txt")).read_text(encoding="utf-8")
    assert "The paper's ablation (Table 2b) found the per-class sigmoid decisively better" in text
    assert MASK_RCNN["ResNet-50-C4, a sigmoid per class (the paper's choice)"][0] - \
        MASK_RCNN["ResNet-50-C4, softmax over classes in the mask head"][0] > 5
