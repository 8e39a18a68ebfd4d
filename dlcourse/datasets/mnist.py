"""MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0) read from its IDX files.

Sources for ``mnist_splits``:
  "test10k" the official 10,000-image test set, split deterministically into train/val.
            Small (1.6 MB), mirrored offline: what CI, the book and the fast profile use.
  "full"    the 60,000-image training set split into train/val (the test set stays unseen).
  "digits"  scikit-learn's 8x8 digits upsampled to 28x28: needs no download at all.
  "auto"    "test10k" when it can be had, else "digits" with a warning (no warning when the
            notebook's setup cell, ``datasets.ensure``, has already announced the stand-in).
Images are float32 in [0, 1] with shape (N, 1, 28, 28); labels are int64 in 0..9.
``Splits.source`` names the source that was used and ``Splits.description`` says it in a
sentence that a page can print ("8,000 training and 2,000 validation images from MNIST's
official 10,000-image test set").
"""
from __future__ import annotations

import functools
import gzip
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dlcourse.datasets.availability import fallback_announced
from dlcourse.datasets.fetching import DataError, fetch
from dlcourse.datasets.splits import Splits, make_splits

SOURCES = ("auto", "test10k", "full", "digits")
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a NumPy array.

    Format: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions,
    then one big-endian int32 per dimension, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, _IDX_DTYPE[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


@functools.lru_cache(maxsize=4)
def _load(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path)  # (N, 28, 28) uint8
    labels = read_idx(labels_path)  # (N,) uint8
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def mnist_tensors(part: str = "test", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of MNIST's ``part`` ("test": 10,000; "train": 60,000).

    Returns fresh tensors (the cached ones are cloned) so callers may modify them.
    """
    if part not in ("test", "train"):
        raise ValueError(f"part must be 'test' or 'train', got {part!r}")
    x, y = _load(fetch(f"mnist-{part}-images", progress=progress),
                 fetch(f"mnist-{part}-labels", progress=progress))
    return x.clone(), y.clone()


def mnist_test() -> TensorDataset:
    """The official 10,000-image test set as one TensorDataset (for a final evaluation)."""
    return TensorDataset(*mnist_tensors("test"))


def mnist_splits(seed: int = 0, val_size: int = 2000, source: str = "auto",
                 limit: int | None = None) -> Splits:
    """Seeded train/validation split of MNIST-like digits (see the module docstring).

    ``val_size`` counts validation images for "test10k" and "full"; for "digits" (1,797
    images) it is scaled by 1797/10000 so the fallback keeps the test10k proportions.
    ``limit`` keeps only the first ``limit`` training examples (fast profile).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "auto":
        try:
            return mnist_splits(seed, val_size, "test10k", limit)
        except DataError as exc:
            if not all(fallback_announced(f"mnist-test-{part}") for part in ("images", "labels")):
                warnings.warn(f"MNIST is not available ({exc}); falling back to scikit-learn's "
                              "digits upsampled to 28x28 (source='digits')", stacklevel=2)
            return mnist_splits(seed, val_size, "digits", limit)
    if source == "digits":
        from dlcourse.datasets.digits import digits_tensors

        x, y = digits_tensors()
        return make_splits(x, y, max(1, round(val_size * len(x) / 10_000)), seed, limit, source)
    x, y = mnist_tensors("test" if source == "test10k" else "train")
    return make_splits(x, y, val_size, seed, limit, source)
