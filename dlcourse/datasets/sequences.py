"""Synthetic sequence tasks for recurrent networks, generated from a seed.

adding problem (Hochreiter & Schmidhuber 1997; the form of Le, Jaitly & Hinton 2015):
    input (n, T, 2): channel 0 random numbers in [0, 1), channel 1 marks exactly two
    positions, one in each half of the sequence; target (n,): the sum of the two marked
    numbers. Predicting 1 always gives MSE ~0.167, the baseline to beat.
copy memory (Arjovsky, Shah & Bengio 2016):
    remember ``length`` symbols over ``delay`` steps of blanks and reproduce them after a
    go signal; the baseline (always blank, then random symbols) is easy to compute.
"""
from __future__ import annotations

import torch


def adding_problem(n: int = 1000, seq_len: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x, y): x (n, seq_len, 2) float32, y (n,) float32 = sum of the marked numbers."""
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, seq_len, generator=g)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=g)          # marked in the first half
    second = torch.randint(half, seq_len, (n,), generator=g)   # and in the second half
    marks = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = torch.stack([values, marks], dim=2)  # (n, T, 2)
    y = values[rows, first] + values[rows, second]
    return x, y


def copy_memory(n: int = 1000, length: int = 10, delay: int = 20, symbols: int = 8,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x, y), int64 of shape (n, length + delay + length).

    Tokens: 1..symbols are data, 0 is blank, symbols+1 is the go signal. x holds ``length``
    random data symbols, then ``delay - 1`` blanks, the go signal, then ``length`` blanks;
    y is blank everywhere except the last ``length`` steps, which repeat the data.
    """
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(1, symbols + 1, (n, length), generator=g)
    total = length + delay + length
    x = torch.zeros(n, total, dtype=torch.int64)
    y = torch.zeros(n, total, dtype=torch.int64)
    x[:, :length] = data
    x[:, length + delay - 1] = symbols + 1
    y[:, -length:] = data
    return x, y
