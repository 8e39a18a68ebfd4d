"""A text drawn from a secret seed: the grader's convergence task for language models.

Like `autograder.glyphs` for the image assignments: convergence points must be earned by
training that happens in the grading run, on data the grader chose. A character model trained
on The Time Machine elsewhere (or on the notebook's own text) would pass a test on that text,
and any fixed English text, even enciphered by a secret substitution, can be deciphered by
its letter frequencies and fed to such a model. So the grader writes a text of its own: a
Markov source of order 2 over the notebook's vocabulary size, whose table of next-character
probabilities is drawn from the per-student secret seed. No model has seen it; a model that
learns from its training part predicts its held-out part far better than the unigram model,
while weights brought from elsewhere predict it worse than the unigram model does.

    task = markov_text(seed, n_train=156_000, n_held=17_000, vocab_size=28)
    task.train, task.held          # int64 ids in [0, vocab_size)
    task.unigram                   # held-out perplexity of the unigram model fitted on train
    task.source                    # held-out perplexity of the source itself (the best possible)

Each row of the table is a Dirichlet(alpha) draw: with alpha = 0.1 a context has a handful of
likely successors, as letters do. The text is written as many independent streams at once
(each starting from a random context) and the streams are concatenated: a few dozen seams in a
hundred thousand characters, which cost a model nothing it can learn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextTask:
    train: torch.Tensor   # (n_train,) int64
    held: torch.Tensor    # (n_held,) int64, other streams of the same source
    vocab_size: int
    unigram: float        # perplexity on `held` of add-one unigram frequencies counted on `train`
    source: float         # perplexity on `held` of the source's own probabilities (context known)


def _table(g: torch.Generator, vocab_size: int, order: int, alpha: float) -> torch.Tensor:
    """(vocab_size ** order, vocab_size) next-character probabilities, one Dirichlet(alpha) row per context."""
    gamma = torch._standard_gamma(torch.full((vocab_size ** order, vocab_size), alpha, dtype=torch.float64),
                                  generator=g)
    gamma = gamma.clamp_min(1e-300)               # a row of underflowed zeros still sums to > 0
    return gamma / gamma.sum(dim=1, keepdim=True)


def _streams(g: torch.Generator, table: torch.Tensor, vocab_size: int, order: int, streams: int,
             length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(streams, length) ids and the log-probability the source gave each (NaN where its context
    is not yet inside the stream)."""
    cdf = table.cumsum(dim=1)
    cdf[:, -1] = 1.0                                            # rounding must not leave a gap at the top
    ids = torch.empty(streams, length, dtype=torch.int64)
    logp = torch.full((streams, length), float("nan"), dtype=torch.float64)
    context = torch.randint(vocab_size ** order, (streams,), generator=g)   # (S,) a random start
    u = torch.rand(length, streams, 1, generator=g, dtype=torch.float64)     # one uniform per draw
    for t in range(length):
        nxt = torch.searchsorted(cdf[context], u[t]).squeeze(1).clamp_max(vocab_size - 1)   # (S,)
        ids[:, t] = nxt
        if t >= order:
            logp[:, t] = table[context, nxt].log()
        context = (context * vocab_size + nxt) % (vocab_size ** order)
    return ids, logp


def markov_text(seed: int, n_train: int, n_held: int, vocab_size: int = 28, order: int = 2,
                alpha: float = 0.1, streams: int = 64) -> TextTask:
    """A secret-seeded text: training and held-out ids from one Markov source (see the module docstring)."""
    if vocab_size < 2 or order < 1 or n_train < streams or n_held < streams:
        raise ValueError("markov_text needs vocab_size >= 2, order >= 1 and at least `streams` ids in each part")
    g = torch.Generator().manual_seed(int(seed) % (2 ** 63))
    table = _table(g, vocab_size, order, alpha)
    train, _ = _streams(g, table, vocab_size, order, streams, -(-n_train // streams))
    held, held_logp = _streams(g, table, vocab_size, order, streams, -(-n_held // streams))
    train, held = train.reshape(-1)[:n_train], held.reshape(-1)[:n_held]
    known = held_logp.reshape(-1)[:n_held]
    known = known[~known.isnan()]
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0          # add-one unigram
    unigram = math.exp(-float((counts.log() - counts.sum().log())[held].mean()))
    return TextTask(train, held, vocab_size, unigram, math.exp(-float(known.mean())))
