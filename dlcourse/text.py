"""The text pipeline of a character language model, from raw text to generated text.

    chars = characters(text)                      # the tokens: one per character
    vocab = Vocab(text)                           # characters <-> ids, index 0 = <unk>
    for x, y in sequence_batches(ids, B, T, sequential=True): ...   # windows for truncated BPTT
    history = train_lm(model, train_ids, steps=200)                 # clip, detach, Adam
    ppl = evaluate_lm(model, held_out_ids)        # exp(mean NLL), dlcourse.metrics
    generate(model, vocab, "the time ", 50, temperature=0.8)

`Vocab` and `sequence_batches` live with The Time Machine (`dlcourse.datasets.timemachine`)
and are re-exported here, so that the data set stays loadable while an assignment withholds
this module; the rest is written here.

Truncated backpropagation through time: a long text is cut into windows of T characters. In
sequential sampling row i of each minibatch continues row i of the previous one, so the
hidden state is carried over; `detach_state` keeps its value but cuts the graph, so gradients
flow back at most T steps and memory stays bounded. In random sampling the windows are
unrelated and each starts from a zero state. Either way gradients are clipped by their global
norm: a recurrent network's gradient can explode (the same W_hh is multiplied in T times),
and rescaling the whole gradient keeps its direction, unlike clipping each parameter on its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.datasets.timemachine import UNK, Vocab, preprocess, sequence_batches
from dlcourse.metrics import perplexity_from_nll
from dlcourse.runtime import choose_device

__all__ = [
    "UNK", "Vocab", "preprocess", "sequence_batches", "characters", "split_corpus", "detach_state",
    "clip_grad_norm", "LMHistory", "train_lm", "evaluate_lm", "next_token", "generate",
]


def characters(text: str) -> list[str]:
    """The tokens of a character-level model: every character of `text`, spaces included."""
    return list(text)


def split_corpus(ids: torch.Tensor, held_out: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): the held-out part is the *end* of the text, one contiguous piece, so no
    training window overlaps it (random windows from the whole text would leak it)."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be in (0, 1), got {held_out}")
    cut = int(len(ids) * (1.0 - held_out))
    return ids[:cut], ids[cut:]


def detach_state(state):
    """The same state (a tensor, a tuple such as the LSTM's (h, c), or None) cut from the graph."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


@torch.no_grad()
def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float, eps: float = 1e-6) -> float:
    """Scale every gradient by min(1, max_norm / (||g|| + eps)), where ||g|| is the norm of all
    gradients together as one vector; return ||g|| before clipping. Parameters without a
    gradient are skipped. Same rule and result as torch.nn.utils.clip_grad_norm_."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.stack([g.detach().double().pow(2).sum() for g in grads]).sum().sqrt()   # ||g||, one number
    scale = float(max_norm) / (float(total) + eps)
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return float(total)


@dataclass
class LMHistory:
    """Per-step training loss (mean NLL in nats), gradient norm before clipping, cumulative seconds."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.loss)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, state):
    logits, state = model(x, state)                                       # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


def train_lm(model: nn.Module, ids: torch.Tensor, *, steps: int | None = None, epochs: int = 1,
             batch_size: int = 32, seq_len: int = 35, lr: float = 0.01, clip: float | None = 1.0,
             sequential: bool = True, seed: int = 0, device="auto") -> LMHistory:
    """Train a language model (forward(x, state) -> (logits, state)) on the id tensor `ids` with Adam.

    Runs `epochs` passes over the text (a fresh random cut per epoch, seeded with seed + epoch),
    or stops after `steps` updates when given (starting new epochs as needed). Windows are
    sequential (state carried and detached) or random (state reset), see the module docstring.
    On CUDA the recurrent loop is launch-bound rather than arithmetic-bound, so there is no mixed
    precision here; the full profile's speed comes from impl="torch" (cuDNN) and larger batches.
    """
    device = device if isinstance(device, torch.device) else choose_device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, start, epoch = LMHistory(), time.perf_counter(), 0
    while (steps is None and epoch < epochs) or (steps is not None and len(history) < steps):
        state = None
        for x, y in sequence_batches(ids, batch_size, seq_len, seed=seed + epoch, sequential=sequential):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            state = detach_state(state) if sequential else None          # truncated BPTT
            loss, state = _loss(model, x, y, state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = clip_grad_norm(model.parameters(), clip) if clip is not None else float("nan")
            optimizer.step()
            history.loss.append(loss.item())
            history.grad_norm.append(norm)
            history.seconds.append(time.perf_counter() - start)
            if steps is not None and len(history) >= steps:
                break
        else:
            if len(history) == 0:
                raise ValueError(f"text of {len(ids)} tokens gives no batch of {batch_size} x {seq_len}")
        epoch += 1
    return history


@torch.no_grad()
def evaluate_lm(model: nn.Module, ids: torch.Tensor, batch_size: int = 16, seq_len: int = 256, device=None) -> float:
    """Perplexity of `model` on the text `ids`: every position scored once, state carried across windows.

    The text is cut into `batch_size` contiguous streams read in parallel (what does not divide
    evenly, at most batch_size characters, is left out), so each prediction sees all of its
    stream's history, not just its window's.
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    n = (len(ids) - 1) // batch_size * batch_size
    if n == 0:
        raise ValueError(f"text of {len(ids)} tokens is too short for {batch_size} streams")
    xs = ids[:n].reshape(batch_size, -1).to(device)                       # (B, L) parallel streams
    ys = ids[1:n + 1].reshape(batch_size, -1).to(device)
    total, state = 0.0, None
    for t in range(0, xs.shape[1], seq_len):
        logits, state = model(xs[:, t:t + seq_len], state)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                       ys[:, t:t + seq_len].reshape(-1), reduction="sum"))
    model.train(was_training)
    return perplexity_from_nll(total, n)


def next_token(logits: torch.Tensor, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick the next id from logits (..., V): the most likely one when temperature == 0 (greedy),
    else a draw from softmax(logits / temperature). Low temperatures sharpen the distribution
    towards greedy, 1 samples the model as it is, high ones flatten it towards uniform."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1]).cpu()
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1]).to(logits.device)


@torch.no_grad()
def generate(model: nn.Module, vocab: Vocab, prefix: str, num_chars: int, temperature: float = 0.0,
             generator: torch.Generator | None = None) -> str:
    """`prefix` followed by `num_chars` characters the model writes one at a time.

    The model first reads the prefix (its state then summarises it); each new character is fed
    back as the next input. Greedy decoding (temperature 0) is deterministic and tends to loop;
    a temperature near 1 gives more varied text. Pass a seeded generator for repeatable samples.
    """
    if not prefix:
        raise ValueError("generation needs a non-empty prefix to start from")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, state = model(vocab.encode(prefix).to(device)[None], None)   # (1, len(prefix), V)
    out = []
    for _ in range(num_chars):
        token = next_token(logits[:, -1], temperature, generator)          # (1,)
        out.append(int(token))
        logits, state = model(token[:, None], state)                      # (1, 1, V)
    model.train(was_training)
    return prefix + vocab.decode(out)
