"""Seeded train/validation splits and device-aware DataLoaders shared by the image data sets.

A split is a permutation drawn from a CPU ``torch.Generator`` seeded with ``seed``: the
same seed gives the same indices on every machine and PyTorch build (CPU generators are
platform-independent), a different seed gives a different split.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset


# What each source is, as a page says it after "... images from".
SOURCE_DESCRIPTIONS = {
    "test10k": "MNIST's official 10,000-image test set",
    "full": "MNIST's 60,000-image training set",
    "digits": "scikit-learn's 1,797 8x8 handwritten digits, upsampled to 28x28",
}


@dataclass(frozen=True)
class Splits:
    """Training and validation sets. ``source`` names where the images came from
    ("test10k", "full" or "digits"); ``train_indices``/``val_indices`` index the source."""

    train: TensorDataset
    val: TensorDataset
    source: str
    train_indices: torch.Tensor | None = None
    val_indices: torch.Tensor | None = None

    @property
    def description(self) -> str:
        """One sentence for a page: how many images of which data set this split holds."""
        what = SOURCE_DESCRIPTIONS.get(self.source, f"source {self.source!r}")
        return f"{len(self.train):,} training and {len(self.val):,} validation images from {what}"


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle ``range(n)`` with ``seed``; return (train indices, first ``val_size`` as val)."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be between 1 and {n - 1} for {n} examples, got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:], perm[:val_size]


def make_splits(images: torch.Tensor, labels: torch.Tensor, val_size: int, seed: int,
                limit: int | None, source: str) -> Splits:
    """Split tensors into Splits; ``limit`` keeps only the first ``limit`` training examples."""
    train_idx, val_idx = split_indices(len(images), val_size, seed)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        train_idx = train_idx[:limit]
    return Splits(TensorDataset(images[train_idx], labels[train_idx]),
                  TensorDataset(images[val_idx], labels[val_idx]), source, train_idx, val_idx)


def dataloaders(splits: Splits, batch_size: int = 128, device=None, seed: int = 0,
                num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    """(train_loader, val_loader): the training loader reshuffles each epoch from a generator
    seeded with ``seed`` (so epoch k's batches are the same on every run); the validation
    loader keeps its order. ``device`` (a torch.device, string or dlcourse RunConfig) only
    decides ``pin_memory``: pinned host memory makes ``.to("cuda", non_blocking=True)`` fast.
    Batches stay on the CPU; move them in the training loop.
    """
    device = getattr(device, "device", device)  # accept a RunConfig
    pin = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
    g = torch.Generator().manual_seed(seed)
    common = dict(batch_size=batch_size, pin_memory=pin, num_workers=num_workers,
                  persistent_workers=num_workers > 0)
    train = DataLoader(splits.train, shuffle=True, generator=g, **common)
    val = DataLoader(splits.val, shuffle=False, **common)
    return train, val
