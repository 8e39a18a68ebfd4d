"""scikit-learn's handwritten digits (UCI ML hand-written digits, CC BY 4.0), MNIST-shaped.

The 1,797 8x8 images with 17 grey levels ship inside scikit-learn, so they need no
download: the course's fallback when MNIST cannot be had. Each image is scaled to [0, 1],
resized to 20x20 (MNIST digits were normalised into a 20x20 box) and padded by 4 pixels
to MNIST's 28x28.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # not a dependency of the library itself
        raise ImportError("the digits fallback needs scikit-learn: pip install scikit-learn") from exc
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)  # (N, 1, 20, 20)
    x = F.pad(x, (4, 4, 4, 4)).clamp_(0.0, 1.0)  # (N, 1, 28, 28), black border like MNIST
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return x, y


def digits_tensors(size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (1797, 1, size, size) float32 in [0, 1] and labels (1797,) int64.

    ``size=28`` gives the MNIST layout (20x20 digit, 4-pixel border); ``size=8`` the
    original images; any other size resizes the 28x28 version.
    """
    x, y = _digits()
    if size == 8:
        from sklearn.datasets import load_digits

        x = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    elif size != 28:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return x.clone(), y.clone()
