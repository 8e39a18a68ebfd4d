"""H. G. Wells, *The Time Machine* (1898; public domain, Project Gutenberg) for
character-level language models: text, vocabulary, encoding and sequence batches.

The default preprocessing (as in the d2l.ai book) keeps letters only, turns every other
run of characters into one space and lower-cases: 26 letters + space + ``<unk>``.

With neither network nor offline mirror, ``time_machine()`` (source "auto") works on a
stand-in that ships with every Python: the English text of its help topics
(``pydoc_data.topics``, about 375,000 letters once preprocessed, twice the book), with a
warning unless ``ensure`` already said so. The vocabulary is the same 28 tokens, so every
model and page runs unchanged; the numbers differ, and the page says which text it used.
Graders and tests that need the book itself ask for source="book".
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import torch

from dlcourse.datasets.availability import fallback_announced
from dlcourse.datasets.fetching import DataError, fetch

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


def stand_in_text() -> str:
    """Python's help topics as one text (the stand-in for the book; see the module docstring)."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def time_machine(letters_only: bool = True, max_chars: int | None = None, source: str = "auto") -> TimeMachine:
    """Load the book (cache, mirror or download), preprocess and encode it.

    ``max_chars`` keeps only the beginning of the text (fast profile). ``source``: "auto" (the
    book when it can be had, else the stand-in), "book" (the book or an error), "stand-in".
    """
    if source not in ("auto", "book", "stand-in"):
        raise ValueError(f"source must be 'auto', 'book' or 'stand-in', got {source!r}")
    if source == "stand-in":
        raw = stand_in_text()
    else:
        try:
            raw = fetch("timemachine").read_text(encoding="utf-8")
        except DataError:
            if source == "book":
                raise
            if not fallback_announced("timemachine"):
                warnings.warn("The Time Machine is not available (no cache, mirror or download): using the "
                              "stand-in, Python's own help topics (source='stand-in')", stacklevel=2)
            raw = stand_in_text()
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
