"""A mixture of Gaussians on a ring: the 2-D toy distribution for GANs.

``modes`` equally weighted isotropic Gaussians with centres evenly spaced on a circle
(the standard test for mode collapse: a collapsed generator covers few of the modes).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch


class RingOfGaussians(NamedTuple):
    points: torch.Tensor   # (n, 2) float32 samples
    modes: torch.Tensor    # (n,) int64: which Gaussian each sample came from
    centers: torch.Tensor  # (modes, 2) float32


def ring_centers(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """(modes, 2) centres at angles 2*pi*k/modes on a circle of ``radius``."""
    angle = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return (radius * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


def ring_of_gaussians(n: int = 10_000, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      seed: int = 0) -> RingOfGaussians:
    """Draw ``n`` points: a uniformly chosen mode, plus Gaussian noise of ``std``."""
    g = torch.Generator().manual_seed(seed)
    centers = ring_centers(modes, radius)
    which = torch.randint(modes, (n,), generator=g)
    points = centers[which] + std * torch.randn(n, 2, generator=g)
    return RingOfGaussians(points, which, centers)
