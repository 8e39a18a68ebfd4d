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


def ring_centers(modes: int = 8, radius: float = 2.0, rotation: float = 0.0,
                 center: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """(modes, 2) centres at angles rotation + 2*pi*k/modes on a circle of ``radius`` around ``center``."""
    angle = rotation + 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    ring = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return (ring + torch.tensor(center, dtype=torch.float64)).float()


def ring_of_gaussians(n: int = 10_000, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      seed: int = 0, rotation: float = 0.0, center: tuple[float, float] = (0.0, 0.0)) -> RingOfGaussians:
    """Draw ``n`` points: a uniformly chosen mode, plus Gaussian noise of ``std``."""
    g = torch.Generator().manual_seed(seed)
    centers = ring_centers(modes, radius, rotation, center)
    which = torch.randint(modes, (n,), generator=g)
    points = centers[which] + std * torch.randn(n, 2, generator=g)
    return RingOfGaussians(points, which, centers)
