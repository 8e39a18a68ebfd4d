"""The Time Machine: preprocessing against d2l.ai's published numbers, vocabulary, batches."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dlcourse import datasets
from dlcourse.datasets import fetching

MIRROR = Path(os.environ.get("DLCOURSE_DATA_MIRROR") or fetching._checkout_mirror() or "/nonexistent")
pytestmark = pytest.mark.skipif(not (MIRROR / "timemachine").is_dir(),
                                reason="needs the offline mirror ../shared/data")


@pytest.fixture(scope="module")
def tm():
    old = {k: os.environ.get(k) for k in ("DLCOURSE_DATA_MIRROR", "DLCOURSE_DATA_URL")}
    os.environ["DLCOURSE_DATA_MIRROR"] = str(MIRROR)
    os.environ.pop("DLCOURSE_DATA_URL", None)
    try:
        yield datasets.time_machine()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_preprocessed_text_matches_d2l(tm):
    # d2l.ai, "Converting Raw Text into Sequence Data": 173,428 characters, 28 tokens,
    # starting "the time machine by h g wells".
    assert len(tm.corpus) == 173_428 and len(tm.vocab) == 28
    assert tm.text.startswith("the time machine by h g wells")
    assert set(tm.text) == set("abcdefghijklmnopqrstuvwxyz ")


def test_vocab_order_roundtrip_and_unknowns(tm):
    v = tm.vocab
    assert v.itos[0] == "<unk>" and v.itos[1] == " " and v.itos[2] == "e"  # most frequent first
    counts = [v.counts[ch] for ch in v.itos[1:]]
    assert counts == sorted(counts, reverse=True)
    sample = tm.text[1000:1200]
    assert v.decode(v.encode(sample)) == sample
    assert v.decode(tm.corpus[:500]) == tm.text[:500]
    assert v.encode("A!").tolist() == [0, 0]


def test_random_batches_are_shifted_corpus_pieces(tm):
    batches = list(tm.batches(batch_size=16, seq_len=35, seed=0))
    assert all(x.shape == (16, 35) and y.shape == (16, 35) for x, y in batches)
    text = tm.text
    x, y = batches[3]
    for row_x, row_y in zip(x, y):
        piece = tm.vocab.decode(row_x)
        start = text.find(piece)
        assert start >= 0 and tm.vocab.decode(row_y) == text[start + 1:start + 36]
    # Every piece appears once per epoch: number of batches from the corpus length.
    n_pieces_max = (len(tm.corpus) - 1) // 35
    assert len(batches) in (n_pieces_max // 16, (n_pieces_max - 1) // 16)
    again = list(tm.batches(batch_size=16, seq_len=35, seed=0))
    other = list(tm.batches(batch_size=16, seq_len=35, seed=1))
    assert torch.equal(batches[0][0], again[0][0]) and not torch.equal(batches[0][0], other[0][0])


def test_sequential_batches_continue_each_row(tm):
    batches = list(tm.batches(batch_size=8, seq_len=20, seed=2, sequential=True))
    (x0, y0), (x1, _) = batches[0], batches[1]
    assert torch.equal(x0[:, 1:], y0[:, :-1])
    assert torch.equal(y0[:, -1], x1[:, 0])  # next batch starts where this one's targets end
