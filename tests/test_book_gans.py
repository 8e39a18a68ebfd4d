"""Chapter 13's prose against the code and the papers: the papers' figures the pages quote (typed here
from the papers), the identities and gradients the first page states, the ring runs it describes,
DCGAN's rules on the course's models, the data the translation page describes, and the shapes of the
PatchGAN it computes. The numbers the pages print are computed by their own cells; this file checks
the sentences around them."""
from __future__ import annotations

import math
import pathlib
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import gan
from dlcourse import translation as T
from dlcourse.models.gan import PATCHGAN_70, DCGANDiscriminator, DCGANGenerator, PatchGAN

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "13-gans"
PAGES = ["the-game.ipynb", "dcgan.ipynb", "translation.ipynb"]

# The papers' figures the pages quote, typed from the papers: (the text on the page, where it comes from)
PAPERS = {
    "patch": ("sees **70 x 70** pixels per output", "Isola et al. 2017, section 3.2.2 and 4.4: the 70 x 70 PatchGAN"),
    "patch sizes": ("compares 1 x 1, 16 x 16, 70 x 70 and 286 x 286", "Isola et al. 2017, Table 3"),
    "pix2pix lambda": (r"\lambda = 100 \text{ in the paper}", "Isola et al. 2017, section 4.2 (lambda = 100)"),
    "cyclegan lambda": (r"with $\lambda = 10$ in the paper", "Zhu et al. 2017, section 4 / 7 (lambda = 10)"),
    "identity weight": (r"with weight $0.5\lambda$", "Zhu et al. 2017, section 5.2 and appendix 7.1"),
    "dcgan batch": ("mini-batches of 128", "Radford et al. 2016, section 4"),
    "dcgan init": ("standard deviation 0.02", "Radford et al. 2016, section 4"),
    "dcgan adam": (r"Adam with learning rate 0.0002 and $\beta_1 = 0.5$", "Radford et al. 2016, section 4"),
    "dcgan slope": ("**LeakyReLU** (slope 0.2)", "Radford et al. 2016, section 4"),
    "dcgan figure 1": ("100-dimensional $z$ to a 4 x 4 x 1024 stack and doubles\nit four times to 64 x 64 x 3",
                       "Radford et al. 2016, Figure 1"),
    "non-saturating": ("(section 3)", "Goodfellow et al. 2014, section 3"),
}


def _nb(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(BOOK / name), as_version=4)


def _markdown(name: str) -> str:
    return "\n\n".join(c.source for c in _nb(name).cells if c.cell_type == "markdown")


def _code(name: str) -> str:
    return "\n\n".join(c.source for c in _nb(name).cells if c.cell_type == "code")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


ALL_TEXT = _flat("\n".join(_markdown(p) for p in PAGES))


@pytest.mark.parametrize("key", sorted(PAPERS))
def test_the_pages_quote_the_papers_figures(key):
    assert _flat(PAPERS[key][0]) in ALL_TEXT, (key, PAPERS[key][1])


def test_the_library_uses_the_figures_the_pages_quote():
    assert gan.receptive_field(PATCHGAN_70) == 70 == gan.receptive_field(PatchGAN().layers())
    assert PatchGAN().layers() == list(PATCHGAN_70)
    with torch.device("meta"):
        assert PatchGAN()(torch.empty(1, 6, 256, 256)).shape[-2:] == (30, 30)      # "a 30 x 30 map"
    # the other patch sizes the paper compares come from fewer or more layers of the same kind
    assert gan.receptive_field([(4, 2), (4, 1), (4, 1)]) == 16
    assert gan.receptive_field([(4, 2)] * 5 + [(4, 1), (4, 1)]) == 286             # C64-C128-C256-C512-C512-C512
    assert gan.receptive_field([(1, 1), (1, 1), (1, 1)]) == 1
    slopes = {m.negative_slope for m in DCGANDiscriminator().modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    fake, gen, target = torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 4, 4) + 0.01, torch.zeros(1, 3, 4, 4)
    assert gan.pix2pix_generator_loss(fake, gen, target).item() == pytest.approx(math.log(2) + 1.0, rel=1e-5)


def test_the_translation_page_trains_with_the_weights_it_names():
    code = _code("translation.ipynb")
    assert "cycle_weight=10.0, identity_weight=5.0" in code and "train_out[idx].to(cfg.device), 100.0)" in code
    text = _flat(_markdown("translation.ipynb"))
    assert "with $\\lambda = 10$ and the identity term at $0.5\\lambda = 5$" in text
    assert "`pix2pix_generator_loss` with $\\lambda = 100$" in text
    # "twenty times the paper's 0.0002" and "ten times" for pix2pix's generator
    assert "4e-3, betas=(0.5, 0.999))" in code and "twenty times the paper's 0.0002" in text
    assert "G.parameters(), 2e-3" in code and "ten times the paper's 0.0002" in text
    assert "two convolutions of 16 and 32 channels" in text and "see 16 x 16 pixels" in text
    assert gan.receptive_field(PatchGAN(6, widths=(16, 32)).layers()) == 16


def test_optimal_discriminator_identity_and_its_maximum_by_brute_force():
    """V(D*, G) = -log 4 + 2 JSD, and D* = p / (p + q) maximises V pointwise (grid search)."""
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        p = torch.rand(6, generator=g, dtype=torch.float64)
        q = torch.rand(6, generator=g, dtype=torch.float64)
        p, q = p / p.sum(), q / q.sum()
        d = p / (p + q)
        value = (p * d.log() + q * (1 - d).log()).sum()
        m = (p + q) / 2
        jsd = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
        assert value.item() == pytest.approx(-math.log(4) + 2 * jsd.item(), abs=1e-12)
        grid = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
        best = grid[(p[:, None] * grid.log() + q[:, None] * (1 - grid).log()).argmax(dim=1)]
        assert torch.allclose(best, d, atol=1e-4)


def test_the_gradient_statements_hold():
    """-sigma(l) and -(1 - sigma(l)); equal at l = 0; the ratio at l = -5 is e^5 (printed as 148)."""
    l = torch.tensor([-10.0, -5.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    (g_mm,) = torch.autograd.grad(gan.generator_loss_minimax(l) * 4, l)
    (g_ns,) = torch.autograd.grad(gan.generator_loss_nonsaturating(l) * 4, l)
    torch.testing.assert_close(g_mm, -torch.sigmoid(l.detach()))
    torch.testing.assert_close(g_ns, -(1 - torch.sigmoid(l.detach())))
    assert g_mm[2] == g_ns[2] == -0.5
    assert round((g_ns[1] / g_mm[1]).item()) == round(math.exp(5)) == 148
    assert "cross at $l = 0$" in ALL_TEXT


def test_the_three_sigma_fraction_of_a_2d_gaussian():
    """The page's 1 - e^{-9/2}: the chi-square (2 degrees of freedom) tail, checked by sampling."""
    x = torch.randn(400_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inside = (x.norm(dim=1) <= 3).double().mean().item()
    assert inside == pytest.approx(1 - math.exp(-4.5), abs=1e-3)
    assert "1 - e^{-9/2}" in ALL_TEXT


def test_the_ring_runs_behave_as_the_page_says():
    """The page's settings (seed 0, 2,000 steps): the healthy run ends on all eight modes, the run
    whose generator learns ten times faster covers few of them at every snapshot."""
    from dlcourse.ring_explorer import ring_run

    torch.set_num_threads(1)
    code = _code("the-game.ipynb")
    assert 'ring_run("healthy: both lr 1e-3", steps=STEPS, lr_g=1e-3, lr_d=1e-3, seed=SEED)' in code
    assert """ring_run("G's lr 10x D's: 1e-2 vs 1e-3", steps=STEPS, lr_g=1e-2, lr_d=1e-3, seed=SEED)""" in code
    assert "STEPS = 2000 if cfg.fast" in code and "SEED = 0" in code
    healthy = ring_run("h", steps=2000, lr_g=1e-3, lr_d=1e-3, seed=0)
    fast_g = ring_run("f", steps=2000, lr_g=1e-2, lr_d=1e-3, seed=0)
    assert healthy.last.modes == 8 and healthy.last.high_quality > 0.5
    assert max(s.modes for s in fast_g.snapshots) <= 3 and fast_g.last.high_quality < 0.2
    text = _flat(_markdown("the-game.ipynb"))
    assert "covering few of the modes" in text and "concentrates its points on the eight centres" in text
    assert "Adam with $\\beta_1 = 0.5$" in text and "batches of 128" in text and "every 250 steps" in text
    assert healthy.settings["betas"] == (0.5, 0.999) and healthy.settings["batch"] == 128
    assert healthy.settings["every"] == 250 and healthy.settings["std"] == 0.05
    assert "two hidden layers of 64 ReLU units" in text and healthy.settings["hidden"] == 64


def test_dcgan_rules_hold_on_the_default_models_too():
    """The page checks the rules on width 32; they hold at the default width and latent size."""
    G, D = DCGANGenerator(), DCGANDiscriminator()
    kinds = [type(m) for m in G.net]
    assert kinds == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU,
                     nn.ConvTranspose2d, nn.Tanh]
    dk = [type(m) for m in D.net]
    assert dk == [nn.Conv2d, nn.LeakyReLU, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Conv2d]
    shapes = []
    x = torch.zeros(2, 64)
    for m in G.eval().net:
        x = m(x.view(2, 64, 1, 1) if x.dim() == 2 else x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[0] == (128, 7, 7) and shapes[3] == (64, 14, 14) and shapes[-1] == (1, 28, 28)
    assert "28 = 7 x 2 x 2" in ALL_TEXT


def test_the_translation_data_is_what_the_page_says():
    text = _flat(_markdown("translation.ipynb"))
    assert "squares red, circles green, triangles blue, background black" in text
    assert T.LABEL_COLOURS == ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    assert "no scene appears in both" in text
    a_scenes, b_scenes = T.shapes_scenes(256, 32, 100), T.shapes_scenes(256, 32, 101)   # the page's SEED + 100
    same = sum(torch.equal(x, y) for x, y in zip(a_scenes.semantic_masks(), b_scenes.semantic_masks()))
    assert same == 0
    a, b = T.unpaired_shapes(256, 32, seed=100)
    assert torch.equal(a, T.photograph(a_scenes, "warm")) and torch.equal(b, T.photograph(b_scenes, "cool"))
    assert "lit from above (brighter at its top)" in text


def test_the_pages_print_their_time_and_threads_and_type_no_hardware():
    for page in PAGES:
        code = _code(page)
        assert "get_num_threads()" in code, page
        assert "dlcourse.setup(PROFILE, DEVICE, SEED)" in code, page
    # the DCGAN page says which data it trained on, from the split itself
    assert "splits.description" in _code("dcgan.ipynb") and '"prefetch"' not in _code("dcgan.ipynb")
    assert _nb("dcgan.ipynb").metadata["dlcourse"]["prefetch"] == ["mnist-test-images", "mnist-test-labels"]


def test_the_note_on_the_patchgans_strides():
    """The appendix's "stride 2" everywhere would not give 70 x 70: the note says so, and the cell
    after it computes the field and the map of that chain."""
    assert gan.receptive_field([(4, 2)] * 5) == 94 > 70
    with torch.device("meta"):
        chain = nn.Sequential(*[nn.Conv2d(6, 6, 4, 2, 1) for _ in range(5)])
        assert chain(torch.empty(1, 6, 256, 256)).shape[-1] == 8 < 30
    text = _flat(_markdown("translation.ipynb"))
    assert '"applied with stride 2"' in text and "the last two convolutions have stride 1" in text
    assert [s for _, s in PATCHGAN_70][-2:] == [1, 1]


def test_the_chapter_links_its_assignment_and_the_toc_lists_both():
    index = (ROOT / "book" / "13-gans" / "index.md").read_text()
    assert "{doc}`a13-gans <../assignments/a13-gans>`" in index
    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("book/12-segmentation/index") < toc.index("book/13-gans/index")
    assert toc.index("book/assignments/a12-segmentation") < toc.index("book/assignments/a13-gans")
    page = (ROOT / "book" / "assignments" / "a13-gans.md").read_text()
    assert "assignments/a13-gans/a13-gans.ipynb" in page and (ROOT / "assignments" / "a13-gans" / "a13-gans.ipynb").exists()
