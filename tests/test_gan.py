"""dlcourse.gan: the players' losses against their binary cross-entropy formulations, the gradient
that makes the non-saturating loss the practical one, one alternating step, mode coverage on the
ring, a discriminator's receptive field against the gradient footprint of a real network, and
CycleGAN's L1 terms."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import gan
from dlcourse.datasets.gaussians import ring_centers, ring_of_gaussians


def _logits(n=64, seed=0, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) * scale


def test_losses_equal_their_binary_cross_entropy_formulations():
    real, fake = _logits(seed=1), _logits(seed=2)
    ones, zeros = torch.ones_like(real), torch.zeros_like(real)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(gan.discriminator_loss(real, fake), bce(real, ones) + bce(fake, zeros))
    torch.testing.assert_close(gan.generator_loss_nonsaturating(fake), bce(fake, ones))
    torch.testing.assert_close(gan.generator_loss_minimax(fake), -bce(fake, zeros))
    # and from the value function with probabilities, where they are not saturated
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    torch.testing.assert_close(gan.discriminator_loss(real, fake), -(d_real.log().mean() + (1 - d_fake).log().mean()))


def test_losses_stay_finite_where_the_discriminator_is_certain():
    extreme = torch.tensor([-200.0, -50.0, 0.0, 50.0, 200.0], dtype=torch.float64)
    for value in (gan.discriminator_loss(extreme, extreme), gan.generator_loss_minimax(extreme),
                  gan.generator_loss_nonsaturating(extreme)):
        assert math.isfinite(float(value))


def test_the_minimax_gradient_vanishes_where_the_generator_starts_and_the_nonsaturating_one_does_not():
    # D rejects G's samples with confidence: D(G(z)) = sigmoid(-8), about 3e-4
    logit = torch.tensor([-8.0], dtype=torch.float64, requires_grad=True)
    (g_minimax,) = torch.autograd.grad(gan.generator_loss_minimax(logit), logit)
    (g_nonsat,) = torch.autograd.grad(gan.generator_loss_nonsaturating(logit), logit)
    assert math.isclose(abs(float(g_minimax)), math.exp(-8) / (1 + math.exp(-8)), rel_tol=1e-12)   # |d/dl -softplus(l)| = sigmoid(l)
    assert abs(float(g_nonsat)) > 0.999 and abs(float(g_nonsat)) / abs(float(g_minimax)) > 2000


def test_train_step_moves_each_player_only_in_its_own_step():
    torch.manual_seed(0)
    gen, disc = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    opt_g, opt_d = torch.optim.SGD(gen.parameters(), 0.1), torch.optim.SGD(disc.parameters(), 0.1)
    real, z = ring_of_gaussians(32, seed=3).points, torch.randn(32, 2)
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in disc.parameters()]
    # what D's step alone should do: plain SGD on the discriminator loss with G fixed
    d_copy = [p.detach().clone().requires_grad_(True) for p in disc.parameters()]
    disc_fn = lambda x: torch.func.functional_call(disc, dict(zip([n for n, _ in disc.named_parameters()], d_copy)), (x,))  # noqa: E731
    loss = gan.discriminator_loss(disc_fn(real), disc_fn(gen(z).detach()))
    grads = torch.autograd.grad(loss, d_copy)
    out = gan.train_step(gen, disc, opt_g, opt_d, real, z)
    assert set(out) == {"d_loss", "g_loss"} and abs(out["d_loss"] - loss.item()) < 1e-6
    for p, p0, gr in zip(disc.parameters(), d0, grads):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * gr)                   # D took exactly its own step
    assert any(not torch.equal(p.detach(), p0) for p, p0 in zip(gen.parameters(), g0))     # and G moved


def test_mode_coverage_on_the_ring():
    centers, std = ring_centers(8, 2.0), 0.02
    full = ring_of_gaussians(4000, modes=8, std=std, seed=5)
    every = gan.mode_coverage(full.points, centers, std)
    assert every["modes"] == 8 and every["high_quality"] > 0.98         # 3 std holds 98.9% of a 2-D Gaussian
    collapsed = centers[3] + std * torch.randn(500, 2, generator=torch.Generator().manual_seed(6))
    one = gan.mode_coverage(collapsed, centers, std)
    assert one["modes"] == 1 and one["high_quality"] > 0.98
    between = (centers[0] + centers[1]) / 2 + torch.zeros(10, 2)          # far from every mode
    assert gan.mode_coverage(between, centers, std) == {"modes": 0, "high_quality": 0.0}
    assert gan.mode_coverage(full.points, centers, std, min_samples=10_000)["modes"] == 0


def _footprint(net: nn.Module, size: int) -> int:
    """Side of the input region whose pixels change one central output unit: its receptive field, measured."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    out = net(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], x)
    rows = grad[0, 0].abs().sum(1).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_receptive_field_is_pix2pix_s_70_and_what_a_network_of_those_layers_sees():
    patch = ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))
    assert gan.receptive_field(patch) == 70
    assert gan.receptive_field([(3, 1)] * 3) == 7 and gan.receptive_field([(2, 2)] * 4) == 16
    torch.manual_seed(0)
    for layers in (patch, ((3, 1), (3, 2), (5, 1)), ((4, 2), (4, 2), (4, 1))):
        convs = []
        for k, s in layers:
            conv = nn.Conv2d(1, 1, k, s, padding=k // 2)
            nn.init.uniform_(conv.weight, 0.5, 1.0)                        # positive: no tap cancels
            convs.append(conv)
        assert _footprint(nn.Sequential(*convs), 160) == gan.receptive_field(layers), layers


def test_cycle_and_identity_losses_are_means_of_absolute_differences():
    g = torch.Generator().manual_seed(7)
    a, ra, b, rb = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(4))
    torch.testing.assert_close(gan.cycle_consistency_loss(a, ra, b, rb), F.l1_loss(ra, a) + F.l1_loss(rb, b))
    torch.testing.assert_close(gan.identity_loss(a, ra, b, rb), F.l1_loss(ra, a) + F.l1_loss(rb, b))
    assert float(gan.cycle_consistency_loss(a, a, b, b)) == 0.0


# ---------------------------------------------------------------- DCGAN and PatchGAN
def _stage_shapes(net: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for layer in net:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            shapes.append(tuple(x.shape))
    return shapes


def test_dcgan_shapes_at_every_stage_and_its_rules():
    from dlcourse.models import DCGANDiscriminator, DCGANGenerator

    g, d = DCGANGenerator(latent=16, width=8), DCGANDiscriminator(width=8)
    z = torch.randn(5, 16)
    assert _stage_shapes(g.net, z.view(5, 16, 1, 1)) == [(5, 16, 7, 7), (5, 8, 14, 14), (5, 1, 28, 28)]
    images = g(z)
    assert images.shape == (5, 1, 28, 28) and images.abs().max().item() < 1        # tanh
    assert _stage_shapes(d.net, images) == [(5, 8, 14, 14), (5, 16, 7, 7), (5, 1, 1, 1)]
    assert d(images).shape == (5,)
    for net in (g, d):   # no pooling, no fully connected layer: only (transposed) convolutions carry weights
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in net.modules())
    # batch norm everywhere but G's output layer and D's input layer
    assert [type(m).__name__ for m in g.net][-2:] == ["ConvTranspose2d", "Tanh"]
    assert [type(m).__name__ for m in d.net][:2] == ["Conv2d", "LeakyReLU"]


def test_patchgan_sees_70_pixels_and_gives_a_map_of_patch_logits():
    from dlcourse.models import PatchGAN
    from dlcourse.models.gan import PATCHGAN_70

    net = PatchGAN(in_channels=6)
    assert net.layers() == list(PATCHGAN_70) and gan.receptive_field(net.layers()) == 70
    assert net(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)        # pix2pix's 30 x 30 patches on 256 x 256
    small = PatchGAN(in_channels=1, widths=(4, 8, 8, 8)).eval()
    for m in small.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.5, 1.0)
    assert _footprint(small, 160) == 70                                   # what one logit really depends on


def test_pix2pix_objective_is_the_adversarial_term_plus_weighted_l1_to_the_target():
    g = torch.Generator().manual_seed(11)
    logits, generated, target = torch.randn(2, 1, 6, 6, generator=g), torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    want = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) + 100.0 * F.l1_loss(generated, target)
    torch.testing.assert_close(gan.pix2pix_generator_loss(logits, generated, target), want)
    torch.testing.assert_close(gan.pix2pix_generator_loss(logits, target, target, l1_weight=7.0), gan.generator_loss_nonsaturating(logits))


def test_a_rotated_and_moved_ring_keeps_its_radius_and_spacing():
    centers = ring_centers(8, 1.7, rotation=0.3, center=(0.5, -0.25))
    offset = centers - torch.tensor([0.5, -0.25])
    torch.testing.assert_close(offset.norm(dim=1), torch.full((8,), 1.7))
    angles = torch.atan2(offset[:, 1], offset[:, 0])
    torch.testing.assert_close(angles[0], torch.tensor(0.3))
    gaps = torch.remainder(angles.roll(-1) - angles, 2 * math.pi)
    torch.testing.assert_close(gaps, torch.full((8,), 2 * math.pi / 8))
    ring = ring_of_gaussians(2000, 8, 1.7, 0.05, seed=2, rotation=0.3, center=(0.5, -0.25))
    assert torch.equal(ring.centers, centers)
    assert float((ring.points - centers[ring.modes]).norm(dim=1).max()) < 0.05 * 6
