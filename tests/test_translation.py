"""dlcourse.translation (chapter 13): the paired and unpaired image sets are what they say (the label
map's colours follow the masks, the photographs' objects carry their palette's colours lit from above,
the two domains hold different scenes), the generator is chapter 12's U-Net followed by tanh, and one
step of pix2pix and of CycleGAN moves every network exactly as a reference step written here from the
papers' objectives with PyTorch's own losses does."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import translation as T
from dlcourse.models import segmentation as S
from dlcourse.models.gan import PatchGAN


@pytest.fixture(scope="module")
def scenes():
    return T.shapes_scenes(12, 32, seed=3)


def test_label_map_paints_each_pixel_its_class_colour(scenes):
    maps = T.label_map(scenes)
    classes = scenes.semantic_masks()
    assert maps.shape == (12, 3, 32, 32) and maps.dtype == torch.float32
    for k, colour in enumerate(T.LABEL_COLOURS):
        want = torch.tensor(colour) * 2 - 1
        pixels = maps.permute(0, 2, 3, 1)[classes == k]
        assert len(pixels) and torch.equal(pixels, want.expand_as(pixels)), k


def test_photograph_colours_objects_by_class_lit_from_above_on_the_scene_background(scenes):
    photo = T.photograph(scenes, "warm", light=0.45)
    classes = scenes.semantic_masks()
    background = classes == 0
    assert torch.equal(photo.permute(0, 2, 3, 1)[background], (scenes.images * 2 - 1).permute(0, 2, 3, 1)[background])
    rgb = (photo + 1) / 2
    for img, boxes, labels, masks in zip(rgb, scenes.boxes, scenes.labels, scenes.masks):
        for (x0, y0, x1, y1), label, mask in zip(boxes.long().tolist(), labels.tolist(), masks):
            colour = torch.tensor(T.PALETTES["warm"][label - 1])
            rows = mask.nonzero()[:, 0]
            top, bottom = int(rows.min()), int(rows.max())
            pix_top = img[:, top][:, mask[top]].T            # (pixels, 3) of the top row of the object
            pix_bottom = img[:, bottom][:, mask[bottom]].T
            assert torch.allclose(pix_top, colour.expand_as(pix_top), atol=1e-6)          # brightness 1 at the top
            assert torch.allclose(pix_bottom, (0.55 * colour).expand_as(pix_bottom), atol=1e-6)  # 1 - light at the bottom
            assert (top, bottom) == (y0, y1 - 1)


def test_paired_sets_are_the_same_scenes_and_unpaired_domains_are_not(scenes):
    labels, photos = T.paired_shapes(12, 32, seed=3)
    assert torch.equal(labels, T.label_map(scenes)) and torch.equal(photos, T.photograph(scenes, "warm"))
    a, b = T.unpaired_shapes(12, 32, seed=3)
    assert torch.equal(a, T.photograph(scenes, "warm"))
    other = T.shapes_scenes(12, 32, seed=4)
    assert torch.equal(b, T.photograph(other, "cool"))
    same_layout = [torch.equal(x, y) for x, y in zip(scenes.semantic_masks(), other.semantic_masks())]
    assert not any(same_layout)


def test_palette_accuracy_scores_the_right_palette_one_and_a_swapped_one_lower(scenes):
    warm, cool = T.photograph(scenes, "warm"), T.photograph(scenes, "cool")
    assert T.palette_accuracy(warm, scenes, "warm") == 1.0 and T.palette_accuracy(cool, scenes, "cool") == 1.0
    assert T.palette_accuracy(warm, scenes, "cool") < 0.9
    # brute force: the nearest palette direction per object pixel, counted in a loop
    colours = [torch.tensor(c) / torch.tensor(c).norm() for c in T.PALETTES["cool"]]
    classes = scenes.semantic_masks()
    rgb = ((warm + 1) / 2).permute(0, 2, 3, 1)
    hits = total = 0
    for n, i, j in (classes > 0).nonzero().tolist():
        best = max(range(3), key=lambda k: float(rgb[n, i, j] @ colours[k]))
        hits += best + 1 == int(classes[n, i, j])
        total += 1
    assert T.palette_accuracy(warm, scenes, "cool") == pytest.approx(hits / total)


def test_generator_is_chapter_12s_unet_with_a_tanh():
    torch.manual_seed(0)
    gen = T.pix2pix_generator("unet_small")
    unet = S.unet(3, cfg="unet_small", in_channels=3)
    unet.load_state_dict(gen.unet.state_dict())
    x = torch.randn(2, 3, 32, 32)
    gen.eval(), unet.eval()
    out = gen(x)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() < 1
    torch.testing.assert_close(out, torch.tanh(unet(x)))
    assert T.pix2pix_generator("tiny")(torch.randn(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def _reference_pix2pix(G, D, opt_g, opt_d, x, y, lam):
    """pix2pix's step written from Isola et al.'s objective with PyTorch's losses."""
    fake = G(x)
    real_logits = D(torch.cat([x, y], 1))
    fake_logits = D(torch.cat([x, fake.detach()], 1))
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    logits = D(torch.cat([x, fake], 1))
    g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) + lam * F.l1_loss(fake, y)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item()


def _pair(models, lr=0.05):
    return [torch.optim.SGD(m.parameters() if isinstance(m, nn.Module) else m, lr=lr) for m in models]


def test_pix2pix_step_moves_both_players_as_the_reference_step():
    torch.manual_seed(0)
    G, D = T.pix2pix_generator("tiny"), PatchGAN(6, widths=(8, 16))
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    G.eval(), D.eval()                                    # the step must put both in training mode
    opt_g, opt_d = _pair([G, D])
    out = T.pix2pix_step(G, D, opt_g, opt_d, x, y, l1_weight=100.0)
    ref_opt_g, ref_opt_d = _pair([G2, D2])
    ref_d = _reference_pix2pix(G2, D2, ref_opt_g, ref_opt_d, x, y, 100.0)
    assert out["d_loss"] == pytest.approx(ref_d, rel=1e-5)
    for a, b in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert G.training and D.training


def test_pix2pix_step_changes_g_only_through_its_own_step():
    """With D's learning rate 0, D keeps its weights; with G's 0, G keeps its weights (G's output is
    detached in D's step and D's gradients from G's step are discarded)."""
    torch.manual_seed(1)
    G, D = T.pix2pix_generator("tiny"), PatchGAN(6, widths=(8, 16))
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    g0, d0 = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    T.pix2pix_step(G, D, torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.1), x, y)
    assert all(torch.equal(G.state_dict()[k], v) for k, v in g0.items() if "running" not in k and "num_batches" not in k)
    assert not all(torch.equal(D.state_dict()[k], v) for k, v in d0.items())


def _reference_cycle(Gab, Gba, Da, Db, opt_g, opt_d, a, b, lam, lam_id):
    """CycleGAN's step from Zhu et al.'s objective (log adversarial loss), PyTorch's losses."""
    bce = F.binary_cross_entropy_with_logits
    fb, fa = Gab(a), Gba(b)
    la, lb = Da(fa), Db(fb)
    adv = bce(lb, torch.ones_like(lb)) + bce(la, torch.ones_like(la))
    cyc = F.l1_loss(Gba(fb), a) + F.l1_loss(Gab(fa), b)
    ident = F.l1_loss(Gab(b), b) + F.l1_loss(Gba(a), a)
    opt_g.zero_grad()
    (adv + lam * cyc + lam_id * ident).backward()
    opt_g.step()
    d = 0
    for D, real, fake in ((Da, a, fa), (Db, b, fb)):
        r, f = D(real), D(fake.detach())
        d = d + bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
    opt_d.zero_grad()
    d.backward()
    opt_d.step()
    return {"cycle": cyc.item(), "identity": ident.item(), "d_loss": d.item()}


def test_cyclegan_step_moves_all_four_networks_as_the_reference_step():
    torch.manual_seed(0)
    nets = [T.pix2pix_generator("tiny"), T.pix2pix_generator("tiny"), PatchGAN(3, widths=(8, 16)), PatchGAN(3, widths=(8, 16))]
    ref = copy.deepcopy(nets)
    a, b = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1

    def opts(n):
        return (torch.optim.SGD([*n[0].parameters(), *n[1].parameters()], lr=0.05),
                torch.optim.SGD([*n[2].parameters(), *n[3].parameters()], lr=0.05))

    for m in nets:
        m.eval()
    out = T.cyclegan_step(*nets, *opts(nets), a, b, cycle_weight=10.0, identity_weight=5.0)
    want = _reference_cycle(*ref, *opts(ref), a, b, 10.0, 5.0)
    for key in want:
        assert out[key] == pytest.approx(want[key], rel=1e-5), key
    for m, r in zip(nets, ref):
        assert m.training
        for p, q in zip(m.parameters(), r.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_cyclegan_defaults_are_the_papers_weights_and_identity_generators_have_no_cycle_loss():
    import inspect

    sig = inspect.signature(T.cyclegan_step).parameters
    assert sig["cycle_weight"].default == 10.0                                    # Zhu et al., section 4: lambda = 10
    assert sig["identity_weight"].default == 0.5 * sig["cycle_weight"].default    # 0.5 lambda (appendix)
    assert inspect.signature(T.pix2pix_step).parameters["l1_weight"].default == 100.0   # Isola et al.: lambda = 100
    nets = [nn.Identity(), nn.Identity(), PatchGAN(3, widths=(8,)), PatchGAN(3, widths=(8,))]
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    opt_g = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    opt_d = torch.optim.SGD([*nets[2].parameters(), *nets[3].parameters()], lr=0.1)
    out = T.cyclegan_step(*nets, opt_g, opt_d, a, b)
    assert out["cycle"] == 0.0 and out["identity"] == 0.0
