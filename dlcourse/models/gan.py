"""Generators and discriminators of chapter 13: DCGAN for 28 x 28 MNIST and pix2pix's PatchGAN.

DCGAN (Radford, Metz, Chintala 2016, section 3) gave the rules that made convolutional GANs train:
no pooling (strided convolutions in D, transposed convolutions in G), batch norm in both players
except G's output layer and D's input layer, ReLU in G with tanh at its output, LeakyReLU (slope
0.2) in D, no fully connected hidden layers. The paper's networks are for 64 x 64 images; these
follow the same rules at MNIST's 28 x 28 = 7 x 2 x 2 (two stride-2 steps from a 7 x 7 map).

PatchGAN (Isola et al. 2017, section 3.2.2 and appendix 6.1.2): a discriminator that classifies
every N x N patch of an image as real or fake and is applied convolutionally; its output is a map
of logits, one per patch. The usual configuration C64-C128-C256-C512 (4 x 4 convolutions, stride
2 for the first three, then stride 1, then a 4 x 4 convolution to one channel) sees 70 x 70 pixels
per output unit (`dlcourse.gan.receptive_field`).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["RingGenerator", "RingDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "PatchGAN", "PATCHGAN_70"]

# (kernel, stride) of each convolution of the 70 x 70 PatchGAN, input to output
PATCHGAN_70 = ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))


class RingGenerator(nn.Module):
    """The players of the ring of Gaussians: z (N, latent) -> points (N, 2), an MLP with two hidden
    layers of `hidden` ReLU units (the plain players of Goodfellow et al. 2014's toy experiments)."""

    def __init__(self, latent: int = 8, hidden: int = 128):
        super().__init__()
        self.latent = latent
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class RingDiscriminator(nn.Module):
    """Points (N, 2) -> one logit per point (N,): an MLP with two hidden layers of LeakyReLU(0.2)."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class DCGANGenerator(nn.Module):
    """z (N, latent) -> images (N, 1, 28, 28) in (-1, 1).

    A 7 x 7 transposed convolution turns z, seen as a 1 x 1 map, into (N, 2w, 7, 7); two 4 x 4
    transposed convolutions with stride 2 and padding 1 double the size twice, to (N, w, 14, 14)
    and (N, 1, 28, 28). Batch norm and ReLU after every layer but the last, tanh at the output."""

    def __init__(self, latent: int = 64, width: int = 64):
        super().__init__()
        self.latent = latent
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent, 2 * width, 7, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),       # 1 -> 7
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),     # 7 -> 14
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())                                                # 14 -> 28

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(len(z), self.latent, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Images (N, 1, 28, 28) -> one logit per image (N,).

    Two 4 x 4 convolutions with stride 2 and padding 1 halve the size twice, (N, w, 14, 14) and
    (N, 2w, 7, 7); a 7 x 7 convolution gives the logit. LeakyReLU(0.2) after each, batch norm after
    the second only (not on the input layer)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),                                               # 28 -> 14
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),  # 14 -> 7
            nn.Conv2d(2 * width, 1, 7))                                                                     # 7 -> 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class PatchGAN(nn.Module):
    """Images (N, C, H, W) -> patch logits (N, 1, H', W'), one per receptive field of 70 x 70 pixels
    for the default `widths` (64, 128, 256, 512). pix2pix gives it the input and the output image
    concatenated (C = 6 for two RGB images): it judges pairs, not images alone."""

    def __init__(self, in_channels: int = 6, widths=(64, 128, 256, 512)):
        super().__init__()
        layers, c = [], in_channels
        for i, w in enumerate(widths):
            stride = 2 if i < len(widths) - 1 else 1
            layers += [nn.Conv2d(c, w, 4, stride, 1, bias=i == 0)]
            if i > 0:                                   # no batch norm on the first layer (as DCGAN)
                layers += [nn.BatchNorm2d(w)]
            layers += [nn.LeakyReLU(0.2)]
            c = w
        layers += [nn.Conv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def layers(self) -> list[tuple[int, int]]:
        """(kernel, stride) of every convolution, input to output: for `dlcourse.gan.receptive_field`."""
        return [(m.kernel_size[0], m.stride[0]) for m in self.net if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
