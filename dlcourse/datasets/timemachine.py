"""H. G. Wells, *The Time Machine* (1898; public domain, Project Gutenberg) for
character-level language models: text, vocabulary, encoding and sequence batches.

The default preprocessing (as in the d2l.ai book) keeps letters only, turns every other
run of characters into one space and lower-cases: 26 letters + space + ``<unk>``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import torch

from dlcourse.datasets.fetching import fetch

UNK = "<unk>"


class Vocab:
    """Characters <-> indices. Index 0 is ``<unk>`` (characters never seen); the rest are
    sorted by falling frequency (ties alphabetically), so the order is the same everywhere."""

    def __init__(self, text: str):
        counts = Counter(text)
        self.itos: list[str] = [UNK] + sorted(counts, key=lambda ch: (-counts[ch], ch))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}
        self.counts = counts

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {''.join(self.itos[1:])!r})"

    def encode(self, text: str) -> torch.Tensor:
        """(len(text),) int64 indices; unknown characters map to 0."""
        return torch.tensor([self.stoi.get(ch, 0) for ch in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """Text for a sequence of indices (``<unk>`` where index 0 appears)."""
        return "".join(self.itos[int(i)] for i in ids)


def preprocess(raw: str) -> str:
    """Letters only, other runs become one space, lower case."""
    return re.sub(r"[^A-Za-z]+", " ", raw).lower()


@dataclass
class TimeMachine:
    """``text`` (preprocessed unless letters_only=False), its ``vocab``, and ``corpus``,
    the whole text encoded as an int64 tensor of shape (len(text),)."""

    text: str
    vocab: Vocab
    corpus: torch.Tensor

    def batches(self, batch_size: int, seq_len: int, seed: int = 0,
                sequential: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shortcut for ``sequence_batches(self.corpus, ...)``."""
        return sequence_batches(self.corpus, batch_size, seq_len, seed, sequential)


def time_machine(letters_only: bool = True, max_chars: int | None = None) -> TimeMachine:
    """Load the book (cache, mirror or download), preprocess and encode it.

    ``max_chars`` keeps only the beginning of the text (fast profile).
    """
    raw = fetch("timemachine").read_text(encoding="utf-8")
    text = preprocess(raw) if letters_only else raw
    if max_chars is not None:
        text = text[:max_chars]
    vocab = Vocab(text)
    return TimeMachine(text, vocab, vocab.encode(text))


def sequence_batches(corpus: torch.Tensor, batch_size: int, seq_len: int, seed: int = 0,
                     sequential: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (X, Y), each (batch_size, seq_len) int64, with Y = X shifted one step ahead.

    The text is cut into pieces of ``seq_len`` after a random offset (so epochs see
    different cuts). ``sequential=False``: pieces in random order, every piece once.
    ``sequential=True``: row i of batch k+1 continues row i of batch k, so an RNN may carry
    its hidden state across batches. Both draw from a generator seeded with ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    offset = int(torch.randint(seq_len, (1,), generator=g))
    if sequential:
        n = (len(corpus) - offset - 1) // batch_size * batch_size
        xs = corpus[offset:offset + n].reshape(batch_size, -1)  # (B, L): B parallel streams
        ys = corpus[offset + 1:offset + 1 + n].reshape(batch_size, -1)
        for t in range(0, xs.shape[1] - seq_len + 1, seq_len):
            yield xs[:, t:t + seq_len], ys[:, t:t + seq_len]
        return
    n_pieces = (len(corpus) - offset - 1) // seq_len
    starts = offset + seq_len * torch.randperm(n_pieces, generator=g)
    steps = torch.arange(seq_len)
    for b in range(0, n_pieces - batch_size + 1, batch_size):
        idx = starts[b:b + batch_size, None] + steps  # (B, T) positions in the corpus
        yield corpus[idx], corpus[idx + 1]
