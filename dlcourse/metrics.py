"""Evaluation metrics the chapters teach, each next to the baselines it is read against.

Perplexity (chapter 10) is the exponential of the mean negative log-likelihood per token,

    PPL = exp( -(1/N) * sum_t log p(x_t | x_<t) ),

the number of equally likely choices the model is as unsure as. A model that spreads its
probability evenly over a vocabulary of V tokens has perplexity exactly V; a model that is
always certain and right has perplexity 1. It is the exponential of the *mean* loss, never of
the summed one (which grows with the length of the text). Two baselines put a language
model's number in context: the uniform model (V) and the unigram model, which predicts every
character by its frequency in the training text and ignores the context.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["perplexity", "perplexity_from_nll", "unigram_perplexity"]


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean cross-entropy) of logits (..., V) against int64 targets (...), over every position."""
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="mean")
    return math.exp(float(nll))


def perplexity_from_nll(total_nll: float, count: int) -> float:
    """Perplexity from a summed negative log-likelihood (nats) over `count` tokens, for running totals."""
    if count <= 0:
        raise ValueError("perplexity needs at least one token")
    return math.exp(total_nll / count)


def unigram_perplexity(train: torch.Tensor, test: torch.Tensor, vocab_size: int, smoothing: float = 1.0) -> float:
    """Perplexity on `test` of the model p(c) = (count of c in `train` + smoothing) / (N + V * smoothing).

    Token ids in `train` and `test` are int64 in [0, vocab_size). Add-`smoothing` (Laplace)
    keeps a character unseen in training from costing an infinite loss; smoothing=0 gives the
    plain frequencies (then the perplexity on the training text is exp of its entropy).
    """
    counts = torch.bincount(train.reshape(-1), minlength=vocab_size).double() + smoothing   # (V,)
    log_p = counts.log() - counts.sum().log()                                               # (V,)
    return math.exp(-float(log_p[test.reshape(-1)].mean()))
