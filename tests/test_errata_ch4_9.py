"""Chapters 4 to 9: the errata boxes quote their decks exactly, and the numbers the prose states
are the ones the models (or the papers' tables typed on the page) give.

Each entry of QUOTES is a slide's text as a box on the page quotes it, and the decks that the box
names as its source: the quote must be in the box, in every deck named, and in no other deck. The
slide text lives in ../shared/seeds beside a checkout; where it is missing, only the boxes are checked.
Issue 18 lists the sentences these tests keep from coming back.
"""
from __future__ import annotations

import pathlib
import re

import nbformat
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
DECKS = ROOT.parent / "shared" / "seeds"


def _markdown(page: str) -> str:
    path = BOOK / page
    if path.suffix == ".md":
        return path.read_text()
    nb = nbformat.read(str(path), as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _code(page: str) -> str:
    nb = nbformat.read(str(BOOK / page), as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _box(page: str, title: str) -> str:
    """The one admonition on the page whose title starts with `title`, flattened."""
    found = re.findall(r":::\{admonition\} " + re.escape(title) + r".*?\n:::", _markdown(page), re.S)
    assert len(found) == 1, f"{page}: expected one box titled {title!r}, found {len(found)}"
    return _flat(found[0])


def _deck(number: str) -> str:
    return _flat(next(DECKS.glob(f"{number}_*.txt")).read_text(encoding="utf-8"))


# (page, box title, quote, decks the box names): the quote is the slide's text, word for word
QUOTES = [
    ("04-alexnet/architecture.ipynb", 'Erratum: "First use of ReLU"', "First use of ReLU", {"000"}),
    ("04-alexnet/architecture.ipynb", 'Erratum: "First use of ReLU"', "first use of ReLU", {"000", "004"}),
    ("04-alexnet/architecture.ipynb", "Erratum: deck 001's AlexNet total", "Total Parameters: 27.55M", {"001"}),
    ("04-alexnet/architecture.ipynb", "Erratum: deck 000's \"7 CNN ensemble", "7 CNN ensemble: 18.2%", {"000"}),
    ("05-vgg/configurations.ipynb", 'Errata: "FC 4098"', "FC 4098", {"003"}),
    ("05-vgg/configurations.ipynb", 'Errata: "FC 4098"', "3x3 conv, 258", {"003"}),
    ("06-googlenet/nin-and-inception.ipynb", "Erratum: deck 003's \"Only 5 million",
     "Only 5 million parameters!12x less than AlexNet", {"003"}),
    ("06-googlenet/nin-and-inception.ipynb", "Erratum: deck 003's \"11.7%",
     "11.7% top 5 error in ILSVRC'13 (ZFNet)", {"003"}),
    ("08-resnet/degradation.ipynb", "Erratum: deck 001 on the cause",
     "a degradation problem occurs due to vanishing gradients", {"001"}),
    ("08-resnet/index.md", "Erratum: deck 001 on the cause",
     "a degradation problem occurs due to vanishing gradients", {"001"}),
]


@pytest.mark.parametrize("page, title, quote, decks", QUOTES, ids=[f"{q[0]}:{q[2][:20]}" for q in QUOTES])
def test_box_quotes_the_slide(page, title, quote, decks):
    box = _box(page, title)
    assert quote in box, f"{page}: {quote!r} is not quoted in the box {title!r}"
    for deck in decks:
        assert f"deck {deck}" in box.lower() or f"decks {deck}" in box.lower() or f"and {deck}" in box, (
            f"{page}: the box does not name deck {deck}")
    if DECKS.is_dir():
        # the decks write some figures in LaTeX ("Total Parameters: $27.55M$"); the dollars are markup
        holding = {p.name[:3] for p in DECKS.glob("*.txt")
                   if quote in _flat(p.read_text(encoding="utf-8").replace("$", ""))}
        assert holding == decks, f"{quote!r} is on decks {sorted(holding)}, the box names {sorted(decks)}"


def test_the_vgg_results_rows_are_quoted_as_the_deck_prints_them():
    box = _box("05-vgg/configurations.ipynb", "Erratum: deck 000's errors of VGG-11")
    rows = [("VGG-11", "133", "10.5"), ("VGG-11 (LRN)", "133", "10.4")]
    for row in rows:
        assert "| " + " | ".join(row) + " |" in box
    assert "A has a top-5 error of 10.4% and A-LRN 10.5%" in box     # the paper's Table 3
    if DECKS.is_dir():
        deck = next(DECKS.glob("000_*.txt")).read_text(encoding="utf-8").splitlines()
        for row in rows:
            assert "\t".join(row) in deck, row


def test_no_box_is_filed_under_errata_when_the_slide_is_right():
    index = _flat(_markdown("08-resnet/index.md"))
    assert ":::{admonition} Errata " not in index
    assert "Note: deck 003 on stochastic depth" in index
    note = _box("08-resnet/index.md", "Note: deck 003 on stochastic depth")
    assert "That is right" in note


# --- chapter 4 -----------------------------------------------------------------------------

def test_deck001_total_is_not_the_sum_of_its_figures():
    box = _box("04-alexnet/architecture.ipynb", "Erratum: deck 001's AlexNet total")
    figures = "34K, 0.6M, 0.8M, 1.327M, 0.8M, 4M, 16M, 4M"
    assert f"({figures})" in box
    value = {"K": 1e3, "M": 1e6}
    total = sum(float(f[:-1]) * value[f[-1]] for f in figures.split(", "))
    assert f"add up to {total / 1e6:.3f}M" in box and f"{total / 1e6:.3f}" == "27.561"
    assert "is the sum of its rounded" not in box
    code = _code("04-alexnet/architecture.ipynb")
    assert "rounded = [34e3, 0.6e6, 0.8e6, 1.327e6, 0.8e6, 4e6, 16e6, 4e6]" in code   # printed below the box
    assert f"{3 * 3 * 256 * 384:,}" in box                                             # CONV3's product
    if DECKS.is_dir():
        deck = _deck("001")
        for f in ("= 34K", "= 0.6M", "= 0.8M", "= 1.327M", "= 4M", "= 16M"):
            assert f in deck


def test_imagenet_context_and_the_comparison_sources():
    text = _flat(_markdown("04-alexnet/architecture.ipynb"))
    assert "about 1.2 million training images" in text and "reached 26.2%" in text
    assert "The paper's numbers are the source of the comparison figure" not in text
    assert "ZFNet from Zeiler and Fergus, VGG-16 from Simonyan and Zisserman, GoogLeNet from Szegedy" in text
    if DECKS.is_dir():
        deck = _deck("004")
        assert "1.2 million training images" in deck and "Best Non-ConvNet in 2012: 26.2%" in deck
    refs = _flat(_markdown("04-alexnet/index.md")).split("## References", 1)[1]
    assert "Nair and G. E. Hinton" in refs


# --- chapter 5 -----------------------------------------------------------------------------

def test_vgg_sentences():
    text = _flat(_markdown("05-vgg/configurations.ipynb") + _markdown("05-vgg/index.md"))
    assert "(NiN, GoogLeNet, ResNet) replaced" not in text          # NiN came first
    assert "Network in Network (Lin et al., December 2013), which appeared nine months before VGG" in text
    assert "differ only in how many convolutions" not in text       # C has 1x1 convolutions, A-LRN an LRN
    assert "decks 000 and 003 label" not in text


# --- chapter 6 -----------------------------------------------------------------------------

def _published(name: str) -> dict:
    code = _code("06-googlenet/nin-and-inception.ipynb")
    block = re.search(rf"{name} = (\{{.*?\n\}})", code, re.S).group(1)
    return eval(block)  # a literal dict of (float, str)


def test_googlenet_counts_in_the_prose_are_computed():
    from dlcourse.models.alexnet import alexnet_two_stream
    from dlcourse.models.googlenet import googlenet, googlenet_torchvision

    n = lambda m: sum(p.numel() for p in m.parameters())
    with torch.device("meta"):
        alex, paper, tv = n(alexnet_two_stream()), n(googlenet()), n(googlenet_torchvision())
    box = _box("06-googlenet/nin-and-inception.ipynb", "Erratum: deck 003's \"Only 5 million")
    summary = _flat(_markdown("06-googlenet/nin-and-inception.ipynb").split("## Summary", 1)[1].split("## Exercises")[0])
    for text in (box, summary):
        assert f"{paper / 1e6:.1f}M" in text and f"{alex / paper:.1f} times" in text
    assert f"{tv / 1e6:.1f}M" in box and f"{alex / tv:.1f} times fewer" in box


def test_comparison_errors_come_from_the_papers_and_the_prose_orders_them_rightly():
    top5, single = _published("PUBLISHED_TOP5"), _published("PUBLISHED_SINGLE")
    assert top5["ZFNet"][0] == 14.8 and "Zeiler and Fergus" in top5["ZFNet"][1]
    assert all("deck" not in source for _, source in top5.values())
    # the ensembles: GoogLeNet below VGG; single networks: VGG-16 below GoogLeNet
    assert top5["GoogLeNet"][0] < top5["VGG-16"][0]
    assert single["VGG-16"][0] < single["GoogLeNet"][0]
    text = _flat(_markdown("06-googlenet/nin-and-inception.ipynb"))
    assert "GoogLeNet reached a lower error than VGG-16" not in text
    assert "As *single* networks the order is reversed" in text
    assert "had weak gradients in its lower layers" not in text
    assert "act mainly as regularisers" in text
    assert "14.8%" in _box("06-googlenet/nin-and-inception.ipynb", "Erratum: deck 003's \"11.7%")


# --- chapter 7 -----------------------------------------------------------------------------

def test_fused_bias_keeps_the_convolution_bias():
    text = _markdown("07-batchnorm/batch-norm.ipynb")
    assert r"bias $\beta + \gamma(b - \hat\mu)/\sqrt{\hat\sigma^2+\epsilon}$" in text
    # and the formula is right: fold a trained batch norm into a convolution with a bias
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    x = torch.randn(2, 3, 6, 6)
    fused = torch.nn.functional.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1),
                                       bn.bias + scale * (conv.bias - bn.running_mean))
    assert torch.allclose(fused, bn(conv(x)), atol=1e-5)


def test_batch_norm_page_discusses_covariate_shift_as_a_hypothesis():
    text = _flat(_markdown("07-batchnorm/batch-norm.ipynb"))
    assert "Deep networks are hard to train partly because every layer's input keeps changing" not in text
    assert "## Why does it help? A hypothesis and the evidence against it" in text
    assert "Santurkar et al. (2018)" in text and "GroupNorm" in text and "LayerNorm" in text


# --- chapter 8 -----------------------------------------------------------------------------

def _gradient_ratios(seed: int = 0) -> dict[str, float]:
    import torch.nn.functional as F

    import dlcourse
    from dlcourse.models.resnet import cifar_resnet

    gen = torch.Generator().manual_seed(seed)
    x, y = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    ratios = {}
    for name, depth, plain in [("plain-20", 20, True), ("plain-44", 44, True), ("residual-44", 44, False)]:
        dlcourse.seed_everything(seed)
        net = cifar_resnet(depth, in_channels=1, widths=(8, 16, 32), plain=plain)
        F.cross_entropy(net(x), y).backward()
        g = [p.grad.norm().item() for n, p in net.named_parameters() if p.dim() == 4 and "downsample" not in n]
        ratios[name] = g[0] / g[-1]
    return ratios


def test_plain_network_gradients_grow_towards_the_input():
    """What the degradation page says of its measurement: nothing vanishes, the gradient grows
    towards the input, by hundreds over 44 plain layers and of the order of ten otherwise."""
    ratios = _gradient_ratios()
    assert ratios["plain-44"] > 100
    assert 3 < ratios["plain-20"] < 50 and 3 < ratios["residual-44"] < 50
    assert ratios["plain-44"] > 5 * max(ratios["plain-20"], ratios["residual-44"])
    text = _flat(_markdown("08-resnet/degradation.ipynb"))
    assert "the backward gradients had healthy norms, and concluded" not in text
    assert "they grow towards the input" in text


def test_resnet_shortcut_options_and_detection_match_deck_001():
    code = _code("08-resnet/architectures.ipynb")
    rows = {"A": ("25.03", "7.76"), "B": ("24.52", "7.46"), "C": ("24.19", "7.40")}
    for option, (top1, top5) in rows.items():
        assert f'("ResNet-34 (option {option})", {top1}, {top5},' in code
    detection = [("73.2", "76.4"), ("70.4", "73.8"), ("41.5", "48.4"), ("21.2", "27.2")]
    for vgg, res in detection:
        assert f"{vgg}, {res}," in code
    if DECKS.is_dir():
        deck = next(DECKS.glob("001_*.txt")).read_text(encoding="utf-8")
        for option, (top1, top5) in rows.items():
            assert f"ResNet-34 {option}\t{top1}\t{top5}" in deck
        for vgg, res in detection:
            assert vgg in deck and res in deck


# --- the data the training pages use, and the front page -------------------------------------

@pytest.mark.parametrize("page", ["04-alexnet/training.ipynb", "05-vgg/training.ipynb",
                                  "06-googlenet/training.ipynb", "08-resnet/degradation.ipynb"])
def test_training_pages_say_they_train_on_mnist_test_set(page):
    text = _flat(_markdown(page))
    assert "MNIST's official **test set** of 10,000 images" in text
    assert "not comparable with published results on MNIST's test set" in text
    assert 'source="auto"' in _code(page)


def test_front_page_promises_what_the_chapters_have():
    text = _flat((BOOK / "intro.md").read_text())
    chapters = sorted({p.parent.name for p in BOOK.glob("[0-9][0-9]-*/*.ipynb")})
    with_explorers = sorted({p.parent.name for p in BOOK.glob("[0-9][0-9]-*/*.ipynb")
                             if re.search(r"_explorer\(", "".join(c.source for c in nbformat.read(str(p), as_version=4).cells))})
    assert {"01-convolution", "04-alexnet", "05-vgg", "06-googlenet", "07-batchnorm", "08-resnet",
            "09-densenet"} <= set(with_explorers)
    assert "most chapters also have small interactive explorers" in text
    assert len(with_explorers) > len(chapters) / 2, (with_explorers, chapters)
    assert "open its assignment in Colab" not in text
    assert "Once the course is published" in text


# --- chapter 9 -----------------------------------------------------------------------------

def test_densenet_published_results_sit_beside_counts_our_models_reproduce():
    from dlcourse.models import densenet as D
    from dlcourse.models.resnet import cifar_resnet

    n = lambda m: sum(p.numel() for p in m.parameters())
    code = _code("09-densenet/densenet.ipynb")
    rows = re.findall(r'\("([^"]+)", lambda: (.*?), ([\d.]+), ([\d.]+),\s*\n?\s*"', code)
    assert [r[0] for r in rows] == ["ResNet-110", "DenseNet-BC L=100, k=12", "DenseNet-BC L=250, k=24",
                                    "DenseNet-BC L=190, k=40"]
    counts = {}
    for name, build, params, error in rows:
        with torch.device("meta"):
            counts[name] = n(eval(build, {"D": D, "cifar_resnet": cifar_resnet}))
        assert round(counts[name] / 1e6, 1) == float(params), (name, counts[name])
    # the prose: "the smallest DenseNet-BC, with under half of ResNet-110's parameters, has a clearly lower error"
    assert counts["DenseNet-BC L=100, k=12"] < counts["ResNet-110"] / 2
    errors = {name: float(error) for name, _, _, error in rows}
    assert errors["DenseNet-BC L=100, k=12"] < errors["ResNet-110"] - 1
    text = _flat(_markdown("09-densenet/densenet.ipynb"))
    assert "with under half of ResNet-110's parameters" in text
    assert "Implicit deep supervision" in text and "Taylor expansion" in text
    with torch.device("meta"):
        assert round(n(D.densenet201()) / 1e6) == 20 and "DenseNet-201, with 20M parameters" in text


def test_ilsvrc_timeline_agrees_with_the_other_chapters_and_the_decks():
    code = _code("08-resnet/architectures.ipynb")
    timeline = eval(re.search(r"ILSVRC_TOP5 = (\[.*?\n\])", code, re.S).group(1))
    human = eval(re.search(r"HUMAN_TOP5 = (\(.*?\))\n", code).group(1))
    errors = {entry: e for _, entry, e, _ in timeline}
    top5 = _published("PUBLISHED_TOP5")                                  # chapter 6's figure
    assert errors["AlexNet"] == top5["AlexNet"][0] and errors["GoogLeNet"] == top5["GoogLeNet"][0]
    assert errors["ResNet"] == 3.57 and human[0] == 5.1
    assert [e for e in errors if errors[e] < human[0]] == ["ResNet"]
    if DECKS.is_dir():
        assert "Best Non-ConvNet in 2012: 26.2%" in _deck("004") and errors["no ConvNet"] == 26.2


def test_the_nested_function_class_cell_computes_what_the_page_says():
    """The degradation page's claim: a 44-layer residual network computes exactly what a 20-layer
    one computes, with the 20-layer weights in its first blocks and zero last batch norms elsewhere."""
    nb = nbformat.read(str(BOOK / "08-resnet/degradation.ipynb"), as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "shallow, deep = " in c.source)
    from dlcourse.models.resnet import cifar_resnet

    ns = {"torch": torch, "cifar_resnet": cifar_resnet, "SEED": 0}
    exec(cell.replace("print(", "_printed = ("), ns)
    assert torch.equal(ns["shallow"](ns["x"]), ns["deep"](ns["x"]))
    assert "computes exactly what a 20-layer one" in _flat(_markdown("08-resnet/degradation.ipynb"))


def test_dense_evaluation_cell_gives_the_shapes_the_prose_states():
    nb = nbformat.read(str(BOOK / "05-vgg/configurations.ipynb"), as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "def fc_to_conv" in c.source)
    from torch import nn

    from dlcourse.models.vgg import VGG, cfgs

    ns = {"torch": torch, "nn": nn, "VGG": VGG, "cfgs": cfgs, "SEED": 0}
    exec(cell.replace("print(", "_printed = ("), ns)
    assert torch.allclose(ns["small"](ns["x28"]), ns["dense"](ns["x28"]).flatten(1), atol=1e-6)
    assert tuple(ns["scores"].shape[2:]) == (3, 3)
    with torch.device("meta"):
        assert tuple(ns["vgg16_dense"](torch.zeros(1, 3, 384, 384)).shape[2:]) == (6, 6)
    text = _flat(_markdown("05-vgg/configurations.ipynb"))
    assert "a 3x3 map of scores on a 44x44 one" in text and "a 384x384 image gives a 6x6 map" in text


# --- the explorers of chapters 4, 5, 7, 8 and 9 --------------------------------------------------

def test_grid_explorer_precomputes_every_view_and_links_the_sliders_in_the_browser():
    from ipywidgets.widgets.widget_link import Link

    from dlcourse.grid_explorer import grid_explorer, table

    seen = []
    box = grid_explorer([("a", ["1", "2", "3"]), ("b", ["x", "y"])],
                        lambda chosen: seen.append(chosen) or table(["a", "b"], [chosen]))
    assert sorted(seen) == [(i, j) for i in range(3) for j in range(2)] and box._dlcourse_views == 6
    # one jslink per Stack: 1 for the first slider's Stack, 3 for the second's
    assert len(box._dlcourse_links) == 4 and all(type(l) is Link for l in box._dlcourse_links)
    assert box.children[1].layout.flex_flow == "row wrap"       # the sliders wrap on a phone
    assert "1,234" in table(["n"], [(1234,)])


@pytest.mark.parametrize("page", ["04-alexnet/architecture.ipynb", "05-vgg/configurations.ipynb",
                                  "07-batchnorm/batch-norm.ipynb", "08-resnet/architectures.ipynb",
                                  "09-densenet/densenet.ipynb"])
def test_each_chapter_has_an_explorer_that_says_it_works_in_the_static_page(page):
    assert "grid_explorer([" in _code(page)
    text = _flat(_markdown(page))
    assert "### Explorer:" in text and "computed when the page was built" in text


def test_the_small_networks_are_compared_under_identical_conditions():
    """Chapter 9 trains every chapter's small network on the same digits: one loop, one seed per
    network, the same loaders and optimiser; the costs it calls two orders of magnitude apart are."""
    code = _code("09-densenet/densenet.ipynb")
    cell = code.split("small_networks = {", 1)[1]
    for chapter in ("ch. 3", "ch. 4", "ch. 5", "ch. 6", "ch. 8", "ch. 9"):
        assert chapter in cell
    loop = cell.split("for name, build in small_networks.items():", 1)[1]
    assert "dlcourse.seed_everything(SEED)" in loop and "datasets.dataloaders(cmp_splits" in loop
    assert "fit(net, *loaders, epochs=CMP_EPOCHS" in loop
    from dlcourse.flops import count_macs
    from dlcourse.models import densenet as D
    from dlcourse.models.lenet import lenet5
    from dlcourse.models.resnet import cifar_resnet

    with torch.device("meta"):
        macs = [count_macs(m, (1, 28, 28)) for m in (lenet5(), D.densenet_small(),
                                                      cifar_resnet(20, in_channels=1, widths=(16, 32, 64)))]
    assert 30 < max(macs) / min(macs) < 300
    assert "differ by two orders of magnitude in cost" in _flat(_markdown("09-densenet/densenet.ipynb"))
    nb = nbformat.read(str(BOOK / "09-densenet/densenet.ipynb"), as_version=4)
    assert nb.metadata["dlcourse"]["prefetch"] == ["mnist-test-images", "mnist-test-labels"]
