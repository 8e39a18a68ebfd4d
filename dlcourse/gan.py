"""The game of a generative adversarial network (chapter 13): the players' losses, one alternating
training step, the mode-coverage measure of the ring of Gaussians, a discriminator's receptive
field, and CycleGAN's cycle-consistency and identity losses.

Notation (Goodfellow et al. 2014): D(x) is the discriminator's probability that x is real, here
always given by its logit l, D = sigmoid(l); G(z) is a generated sample. The value function is

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

which D maximises and G minimises. Every loss below is written from that definition with
log-sigmoid identities (log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) = -softplus(l)), which
stay finite where D is certain; tests/test_gan.py checks each against the binary cross-entropy
formulation with `F.binary_cross_entropy_with_logits`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["discriminator_loss", "generator_loss_minimax", "generator_loss_nonsaturating", "discriminator_step", "train_step",
           "mode_coverage", "receptive_field", "pix2pix_generator_loss", "cycle_consistency_loss", "identity_loss"]


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V averaged over the batch, the quantity D minimises: -mean log D(x) - mean log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's part of V, which G minimises: mean log(1 - D(G(z))). Its gradient vanishes where D
    confidently rejects the samples (l -> -inf), which is where G starts."""
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The loss G minimises in practice: -mean log D(G(z)). Same fixed point as the minimax loss,
    strong gradients where D rejects the samples (Goodfellow et al. 2014, section 3)."""
    return F.softplus(-fake_logits).mean()


def discriminator_step(discriminator: nn.Module, opt_d: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor) -> torch.Tensor:
    """D's half of a round: its loss on `real` and on `fake` detached (the generator is not changed),
    scored in two separate calls (batch norm normalises each batch on its own), and one step of
    `opt_d`. Returns the loss, computed before the step."""
    d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return d_loss


def train_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
               nonsaturating: bool = True) -> dict[str, float]:
    """One round of the game: a step of D on real and generated samples (G's output detached, so G
    is not changed), then a step of G through D on the same z (D's gradients are discarded: only
    opt_g steps). Both players are put in training mode first (batch norm normalises each batch
    with its own statistics, and D sees the real and the generated batch in separate calls).
    Returns both players' losses before their steps."""
    generator.train()
    discriminator.train()
    fake = generator(z)
    d_loss = discriminator_step(discriminator, opt_d, real, fake)
    fake_logits = discriminator(fake)
    g_loss = generator_loss_nonsaturating(fake_logits) if nonsaturating else generator_loss_minimax(fake_logits)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, threshold: float = 3.0,
                  min_samples: int = 1) -> dict[str, float | int]:
    """How much of a mixture a generator covers. A sample is of high quality when it lies within
    `threshold` standard deviations of its nearest centre; a mode is covered when at least
    `min_samples` high-quality samples are nearest to it. Returns the number of modes covered and
    the fraction of high-quality samples (the measures Srivastava et al. 2017, VEEGAN, report on the
    ring of Gaussians that Metz et al. 2017 trained on)."""
    distance = torch.cdist(samples.double(), centers.double())                # (n, modes)
    nearest = distance.min(dim=1)
    good = nearest.values <= threshold * std                                  # (n,)
    counts = torch.bincount(nearest.indices[good], minlength=len(centers))     # (modes,)
    return {"modes": int((counts >= min_samples).sum()), "high_quality": float(good.double().mean()) if len(samples) else 0.0}


def receptive_field(layers) -> int:
    """Side of the input square one output unit sees, for a chain of convolutions given as
    (kernel_size, stride) pairs from input to output: walking back from one output pixel,
    r <- (r - 1) * stride + kernel. pix2pix's 70 x 70 PatchGAN is ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))."""
    r = 1
    for kernel, stride in reversed(list(layers)):
        r = (r - 1) * stride + kernel
    return r


def pix2pix_generator_loss(fake_logits: torch.Tensor, generated: torch.Tensor, target: torch.Tensor,
                           l1_weight: float = 100.0) -> torch.Tensor:
    """pix2pix's generator objective (Isola et al. 2017, eq. 4): the non-saturating adversarial loss
    on D's logits for the (input, generated) pairs plus l1_weight * mean |target - generated|, the
    L1 distance between the generated image and the paired ground truth (lambda = 100 in the paper)."""
    return generator_loss_nonsaturating(fake_logits) + l1_weight * (target - generated).abs().mean()


def cycle_consistency_loss(real_a: torch.Tensor, reconstructed_a: torch.Tensor,
                           real_b: torch.Tensor, reconstructed_b: torch.Tensor) -> torch.Tensor:
    """CycleGAN's L_cyc: mean |F(G(a)) - a| + mean |G(F(b)) - b| (L1, as Zhu et al. 2017, eq. 2)."""
    return (reconstructed_a - real_a).abs().mean() + (reconstructed_b - real_b).abs().mean()


def identity_loss(real_a: torch.Tensor, f_of_a: torch.Tensor, real_b: torch.Tensor, g_of_b: torch.Tensor) -> torch.Tensor:
    """CycleGAN's optional identity term: a generator given an image already in its target domain
    should leave it alone, mean |G(b) - b| + mean |F(a) - a| (Zhu et al. 2017, section 5.2)."""
    return (g_of_b - real_b).abs().mean() + (f_of_a - real_a).abs().mean()
