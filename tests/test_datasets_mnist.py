"""MNIST and digits loaders: content checked against published facts, splits deterministic."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcourse import datasets
from dlcourse.datasets import fetching

MIRROR = Path(os.environ.get("DLCOURSE_DATA_MIRROR") or fetching._checkout_mirror() or "/nonexistent")
needs_mnist = pytest.mark.skipif(not (MIRROR / "mnist").is_dir(), reason="needs the offline mirror ../shared/data")

# Published in the mirror's README (and the MNIST literature): test-set digits 0..9.
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(MIRROR))
    monkeypatch.delenv("DLCOURSE_DATA_REGISTRY", raising=False)
    monkeypatch.delenv("DLCOURSE_DATA_URL", raising=False)


@needs_mnist
def test_test_set_label_counts_shapes_and_range():
    x, y = datasets.mnist_tensors("test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == TEST_LABEL_COUNTS
    assert x.min() == 0.0 and x.max() == 1.0
    # MNIST digits are centred by mass in a 20x20 box: the outermost rows are almost empty.
    assert x[:, :, :2].mean() < 0.01 < x[:, :, 10:18].mean()


@needs_mnist
def test_read_idx_matches_the_raw_bytes():
    import gzip

    path = MIRROR / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    assert int.from_bytes(raw[:4], "big") == 2049  # IDX magic for a 1-D unsigned-byte file
    np.testing.assert_array_equal(datasets.read_idx(path), np.frombuffer(raw[8:], np.uint8))


@needs_mnist
def test_splits_are_deterministic_disjoint_and_complete():
    a = datasets.mnist_splits(seed=0, val_size=2000, source="test10k")
    b = datasets.mnist_splits(seed=0, val_size=2000, source="test10k")
    c = datasets.mnist_splits(seed=1, val_size=2000, source="test10k")
    assert a.source == "test10k" and len(a.train) == 8000 and len(a.val) == 2000
    assert torch.equal(a.val_indices, b.val_indices) and torch.equal(a.train_indices, b.train_indices)
    assert not torch.equal(a.val_indices, c.val_indices)
    both = torch.cat([a.train_indices, a.val_indices]).sort().values
    assert torch.equal(both, torch.arange(10_000))
    x, y = datasets.mnist_tensors("test")
    assert torch.equal(a.val.tensors[0], x[a.val_indices]) and torch.equal(a.val.tensors[1], y[a.val_indices])


@needs_mnist
def test_limit_takes_the_first_training_examples_and_auto_prefers_test10k():
    full = datasets.mnist_splits(seed=5, source="test10k")
    small = datasets.mnist_splits(seed=5, limit=500)
    assert small.source == "test10k" and len(small.train) == 500 and len(small.val) == 2000
    assert torch.equal(small.train_indices, full.train_indices[:500])


def test_split_indices_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="val_size"):
        datasets.split_indices(100, 100, seed=0)


def test_digits_fallback_is_mnist_shaped_and_matches_scikit_learn():
    from sklearn.datasets import load_digits

    ref = load_digits()
    x, y = datasets.digits_tensors()
    assert x.shape == (1797, 1, 28, 28) and len(ref.target) == 1797
    assert torch.equal(y, torch.as_tensor(ref.target, dtype=torch.int64))
    assert x.min() >= 0 and x.max() <= 1
    assert x[:, :, :4].abs().sum() == 0 and x[:, :, :, -4:].abs().sum() == 0  # MNIST-like border
    # Averaging the 20x20 digit back down to 8x8 gives back (a smoothed) original.
    back = torch.nn.functional.adaptive_avg_pool2d(x[:, :, 4:24, 4:24], 8).flatten()
    orig = torch.as_tensor(ref.images, dtype=torch.float32).flatten() / 16
    assert torch.corrcoef(torch.stack([back, orig]))[0, 1] > 0.9


def test_digits_splits_keep_the_test10k_proportion():
    s = datasets.mnist_splits(seed=0, val_size=2000, source="digits")
    assert s.source == "digits" and len(s.val) == round(2000 * 1797 / 10_000)
    assert len(s.train) + len(s.val) == 1797


@pytest.mark.network
def test_auto_falls_back_to_digits_offline(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", "")
    monkeypatch.setenv("DLCOURSE_DATA_URL", f"http://127.0.0.1:{port}")
    with pytest.warns(UserWarning, match="falling back"):
        s = datasets.mnist_splits(seed=0, limit=100)
    assert s.source == "digits" and s.train.tensors[0].shape == (100, 1, 28, 28)


def test_dataloaders_are_seeded_and_cover_the_split():
    s = datasets.mnist_splits(seed=0, source="digits")
    first = [next(iter(datasets.dataloaders(s, batch_size=32, seed=7)[0]))[1] for _ in range(2)]
    other = next(iter(datasets.dataloaders(s, batch_size=32, seed=8)[0]))[1]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], other)
    train, val = datasets.dataloaders(s, batch_size=64, device="cpu")
    assert not train.pin_memory and sum(len(b[0]) for b in val) == len(s.val)
    assert torch.equal(torch.cat([b[1] for b in val]), s.val.tensors[1])  # val keeps its order
    seen = torch.cat([b[1] for b in train])
    assert torch.equal(seen.sort().values, s.train.tensors[1].sort().values)


def test_dataloaders_pin_memory_exactly_when_batches_go_to_a_visible_gpu(monkeypatch):
    # Used to skip on every machine without CUDA. The decision is the library's and is checked
    # everywhere, with CUDA's availability stubbed; pinning itself only where a GPU is present.
    from dlcourse.runtime import RunConfig

    s = datasets.mnist_splits(seed=0, source="digits", limit=64)
    real_cuda = torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda_cfg = RunConfig(profile="fast", device=torch.device("cuda"), seed=0, threads=1)
    for device in ("cuda", "cuda:0", torch.device("cuda", 0), cuda_cfg):
        train, val = datasets.dataloaders(s, device=device)
        assert train.pin_memory and val.pin_memory, device
    for device in ("cpu", None, torch.device("cpu")):
        assert not datasets.dataloaders(s, device=device)[0].pin_memory, device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # asked for CUDA, none visible
    assert not datasets.dataloaders(s, device="cuda")[0].pin_memory
    monkeypatch.undo()
    if real_cuda:
        train, _ = datasets.dataloaders(s, device="cuda")
        assert next(iter(train))[0].is_pinned()
