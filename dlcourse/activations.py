"""Building blocks of a classifier head: activations, their derivatives, dropout and losses.

Reference implementations for chapter 2 of the book ("Building blocks") and for the
solution of assignment a02. Everything is written with elementary tensor operations so
that a reader can see the formula; tests compare each function with PyTorch's own
(`torch.sigmoid`, `F.cross_entropy`, `F.multi_margin_loss`, autograd, ...).

Contents
  activations     sigmoid, tanh, relu, leaky_relu (slope 0.1 as in the lecture), elu,
                  swish, maxout
  derivatives     <name>_grad(x): the analytic elementwise derivative d f(x) / d x
  classification  softmax, log_softmax, cross_entropy (stable), naive_cross_entropy
                  (unstable, for the book's demonstration), multiclass_hinge_loss
  regularisation  dropout (inverted: survivors scaled by 1/p_keep), Dropout module

Conventions at the kinks (x == 0) follow PyTorch's autograd: relu'(0) = 0,
leaky_relu'(0) = slope, elu'(0) = alpha.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

LEAKY_SLOPE = 0.1  # the lecture's Leaky ReLU is max(0.1 x, x); PyTorch's default is 0.01


# ----------------------------------------------------------------------------- activations
def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), evaluated so that no exp() ever overflows.

    For x >= 0 use 1 / (1 + e^-x); for x < 0 the equal form e^x / (1 + e^x). Each branch
    only exponentiates a non-positive number, so values and autograd stay finite even at
    |x| = 1e4 (the naive form's gradient is inf / inf = nan at x = -1000).
    """
    pos = 1.0 / (1.0 + torch.exp(-torch.clamp(x, min=0.0)))  # exp of a value <= 0
    e_neg = torch.exp(torch.clamp(x, max=0.0))  # in (0, 1]
    return torch.where(x >= 0, pos, e_neg / (1.0 + e_neg))


def sigmoid_grad(x: Tensor) -> Tensor:
    """sigma'(x) = sigma(x) (1 - sigma(x)); at most 1/4 (at x = 0)."""
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) written as a scaled, shifted sigmoid: 2 sigma(2x) - 1 (range (-1, 1))."""
    return 2.0 * sigmoid(2.0 * x) - 1.0


def tanh_grad(x: Tensor) -> Tensor:
    """tanh'(x) = 1 - tanh(x)^2 = 4 sigma'(2x); at most 1 (at x = 0)."""
    return 4.0 * sigmoid_grad(2.0 * x)


def relu(x: Tensor) -> Tensor:
    """max(0, x)."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_grad(x: Tensor) -> Tensor:
    """1 for x > 0, else 0 (0 at the kink, as autograd does)."""
    return (x > 0).to(x.dtype)


def leaky_relu(x: Tensor, slope: float = LEAKY_SLOPE) -> Tensor:
    """max(slope x, x) for 0 < slope < 1: a small gradient instead of none for x < 0."""
    return torch.where(x > 0, x, slope * x)


def leaky_relu_grad(x: Tensor, slope: float = LEAKY_SLOPE) -> Tensor:
    """1 for x > 0, else slope."""
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise.

    exp() only ever sees min(x, 0): torch.where evaluates both branches, and an
    exp(1000) = inf in the discarded branch would still poison autograd with nan.
    """
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


def elu_grad(x: Tensor, alpha: float = 1.0) -> Tensor:
    """1 for x > 0, alpha e^x otherwise."""
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0.0)))


def swish(x: Tensor, beta: float = 1.0) -> Tensor:
    """x sigma(beta x). beta -> infinity gives ReLU; beta = 1 is also called SiLU."""
    return x * sigmoid(beta * x)


def swish_grad(x: Tensor, beta: float = 1.0) -> Tensor:
    """sigma(beta x) + beta x sigma'(beta x) (product rule)."""
    return sigmoid(beta * x) + beta * x * sigmoid_grad(beta * x)


def maxout(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Maxout unit: max over k affine pieces, max_k (W_k x + b_k).

    x: (N, D_in); weight: (k, D_out, D_in); bias: (k, D_out) -> (N, D_out).
    With k = 2, W_1 = identity-like and W_2 = 0 it reduces to ReLU, which is why maxout
    generalises ReLU and Leaky ReLU (at the price of k times the parameters).
    """
    if weight.dim() != 3 or bias.shape != weight.shape[:2] or x.shape[-1] != weight.shape[2]:
        raise ValueError(f"maxout shapes do not fit: x {tuple(x.shape)}, weight {tuple(weight.shape)}, bias {tuple(bias.shape)}")
    pieces = torch.einsum("nd,kod->nko", x, weight) + bias  # (N, k, D_out)
    return pieces.max(dim=1).values


def maxout_grad_input(x: Tensor, weight: Tensor, bias: Tensor, grad_out: Tensor) -> Tensor:
    """Vector-Jacobian product of maxout w.r.t. x: only the winning piece passes gradient.

    grad_out: (N, D_out) -> (N, D_in), sum_o grad_out[n, o] * weight[k*(n, o), o, :].
    """
    pieces = torch.einsum("nd,kod->nko", x, weight) + bias  # (N, k, D_out)
    winner = pieces.argmax(dim=1)  # (N, D_out) index of the active piece
    w_win = weight.permute(1, 0, 2)[torch.arange(weight.shape[1]), winner]  # (N, D_out, D_in)
    return torch.einsum("no,nod->nd", grad_out, w_win)


# ------------------------------------------------------------------------ classification
def _logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """log sum_j exp(x_j) = m + log sum_j exp(x_j - m) with m = max_j x_j (no overflow)."""
    m = x.max(dim=dim, keepdim=True).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf row: avoid inf - inf
    return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x_i) / sum_j exp(x_j), with the row maximum subtracted first (same result,
    since softmax is unchanged by adding a constant to every logit, but no overflow)."""
    z = x - x.max(dim=dim, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x_i - logsumexp(x): the log-probabilities, finite even where softmax underflows to 0."""
    return x - _logsumexp(x, dim=dim).unsqueeze(dim)


def _check_classification_args(logits: Tensor, target: Tensor, reduction: str) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] or target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"target must be integer class indices of shape ({logits.shape[0]},), got {tuple(target.shape)} {target.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy in the stable form  -x[class] + log sum_j exp(x[j]).

    logits: (N, C) unnormalised scores; target: (N,) class indices. Equals
    torch.nn.functional.cross_entropy(logits, target, reduction=reduction).
    """
    _check_classification_args(logits, target, reduction)
    picked = logits.gather(1, target.long().unsqueeze(1)).squeeze(1)  # (N,) x[n, class_n]
    return _reduce(_logsumexp(logits, dim=1) - picked, reduction)


def naive_cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """-log(exp(x[class]) / sum_j exp(x[j])) exactly as written: overflows for large
    logits (exp(1000) = inf, inf / inf = nan) and gives inf when the true class's
    probability underflows to 0. Kept only to demonstrate why the stable form exists."""
    _check_classification_args(logits, target, reduction)
    e = torch.exp(logits)
    p = e.gather(1, target.long().unsqueeze(1)).squeeze(1) / e.sum(dim=1)
    return _reduce(-torch.log(p), reduction)


def multiclass_hinge_loss(scores: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Multiclass SVM (hinge, max-margin) loss: sum_{j != y} max(0, s_j - s_y + margin).

    scores: (N, C); target: (N,). The loss is zero once the correct class beats every
    other class by at least `margin`. PyTorch's F.multi_margin_loss divides this sum
    by C as well: multi_margin_loss = multiclass_hinge_loss / C.
    """
    _check_classification_args(scores, target, reduction)
    correct = scores.gather(1, target.long().unsqueeze(1))  # (N, 1)
    margins = torch.clamp(scores - correct + margin, min=0.0)  # (N, C)
    margins = margins.scatter(1, target.long().unsqueeze(1), 0.0)  # the j = y term is excluded
    return _reduce(margins.sum(dim=1), reduction)


# ------------------------------------------------------------------------ regularisation
def _check_p_keep(p_keep: float) -> float:
    if isinstance(p_keep, bool) or not isinstance(p_keep, (int, float)) or not 0.0 < p_keep <= 1.0:
        raise ValueError(f"p_keep is the probability of keeping a unit and must be in (0, 1], got {p_keep!r}")
    return float(p_keep)


def dropout(x: Tensor, p_keep: float = 0.5, training: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout: keep each unit with probability p_keep, scale survivors by 1/p_keep.

    The scaling happens at training time so that E[output] = x and evaluation is the
    identity (no rescaling needed at test time). Note the convention: the lecture's p is
    the probability of KEEPING a unit; torch.nn.Dropout(p) takes the probability of
    DROPPING one (p_drop = 1 - p_keep).
    """
    p_keep = _check_p_keep(p_keep)
    if not training or p_keep == 1.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) < p_keep  # Bernoulli(p_keep) mask
    return x * keep.to(x.dtype) / p_keep


class Dropout(nn.Module):
    """nn.Module wrapper of `dropout`: active in .train() mode, identity in .eval() mode."""

    def __init__(self, p_keep: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        self.p_keep = _check_p_keep(p_keep)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p_keep, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p_keep={self.p_keep}"


ACTIVATIONS = {
    # name: (function, analytic derivative); used by the book's plots and by the tests
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "swish": (swish, swish_grad),
}
