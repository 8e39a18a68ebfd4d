"""Batch normalisation written from its definition, with a hand-written backward pass.

Source: Ioffe and Szegedy, "Batch normalization: accelerating deep network training by
reducing internal covariate shift", ICML 2015 (Algorithm 1 for training, Algorithm 2 and
Section 3.1 for inference).

Training: every feature (after a fully connected layer) or every channel (after a
convolution) is normalised with the mean and variance of the current minibatch, then
scaled and shifted by two learned numbers per feature/channel:

    y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta

The statistics are taken over every axis except the channel axis 1: over the N examples of
an (N, C) batch, over the N x L values of an (N, C, L) batch, and over the N x H x W values
of an (N, C, H, W) batch ("m x p x q values" in the lecture). var_B is the *biased*
variance (divided by m), as in the paper's Algorithm 1.

Inference: the batch statistics are replaced by running estimates kept during training,
with the convention of `torch.nn.BatchNorm*`:

    running_mean <- (1 - momentum) * running_mean + momentum * mu_B
    running_var  <- (1 - momentum) * running_var  + momentum * var_B * m / (m - 1)

so the running variance averages the *unbiased* estimate (the paper's Algorithm 2 uses
m / (m - 1) too). PyTorch's "momentum" is the weight of the new batch (0.1 by default), the
opposite of an optimiser's momentum; momentum=None gives the plain cumulative average.

Backward (`batch_norm_backward`): the gradient with respect to x, gamma and beta from the
values cached in the forward pass. `BatchNorm`, `BatchNorm1d` and `BatchNorm2d` use it
through a `torch.autograd.Function`, and keep the buffers and state-dict keys of
`nn.BatchNorm*` (weight, bias, running_mean, running_var, num_batches_tracked), so either
module loads the other's state.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "BNCache", "reduce_dims", "batch_norm_forward", "batch_norm_backward", "batch_norm_inference",
    "update_running_stats", "BatchNorm", "BatchNorm1d", "BatchNorm2d",
]


def reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The axes batch norm averages over: all but the channel axis 1.

    (N, C) -> (0,); (N, C, L) -> (0, 2); (N, C, H, W) -> (0, 2, 3).
    """
    if x.dim() < 2:
        raise ValueError(f"batch norm needs an input of shape (N, C, ...), got shape {tuple(x.shape)}")
    return (0,) + tuple(range(2, x.dim()))


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a (C,) vector so that it broadcasts against x of shape (N, C, ...)."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


@dataclass
class BNCache:
    """What the training-mode forward pass keeps for the backward pass."""

    x_hat: torch.Tensor       # normalised input, same shape as x
    inv_std: torch.Tensor     # 1 / sqrt(var_B + eps), shape (C,)
    gamma: torch.Tensor       # scale, shape (C,)
    dims: tuple[int, ...]     # the axes averaged over
    count: int                # m: values per channel (N, N*L or N*H*W)
    mean: torch.Tensor | None = None   # mu_B, shape (C,) (not needed by the backward pass)
    var: torch.Tensor | None = None    # biased var_B, shape (C,)


def batch_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                       eps: float = 1e-5) -> tuple[torch.Tensor, BNCache]:
    """Training-mode batch norm (minibatch statistics): returns y and the cache for backward."""
    dims = reduce_dims(x)
    count = x.numel() // x.shape[1]                         # m values per channel
    if count < 2:
        raise ValueError(f"batch norm in training needs more than one value per channel, got input {tuple(x.shape)}")
    mean = x.mean(dim=dims)                                  # (C,)
    var = ((x - _per_channel(mean, x)) ** 2).mean(dim=dims)  # (C,) biased: divided by m
    inv_std = torch.rsqrt(var + eps)                         # (C,)
    x_hat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
    y = _per_channel(gamma, x) * x_hat + _per_channel(beta, x)
    return y, BNCache(x_hat, inv_std, gamma, dims, count, mean, var)


def batch_norm_backward(dy: torch.Tensor, cache: BNCache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dx, dgamma, dbeta) of training-mode batch norm, given dL/dy.

    With x_hat = (x - mu) * inv_std and y = gamma * x_hat + beta, summing over the m values
    of each channel:
        dbeta  = sum(dy)
        dgamma = sum(dy * x_hat)
        dx     = gamma * inv_std / m * (m * dy - dbeta - x_hat * dgamma)
    The last line is the chain rule through mu and var folded into one expression: every x
    moves the mean and the variance, so dx is not just gamma * inv_std * dy.
    """
    x_hat, inv_std, dims, m = cache.x_hat, cache.inv_std, cache.dims, cache.count
    dbeta = dy.sum(dim=dims)                                 # (C,)
    dgamma = (dy * x_hat).sum(dim=dims)                      # (C,)
    scale = _per_channel(cache.gamma * inv_std / m, dy)      # (1, C, 1, ...)
    dx = scale * (m * dy - _per_channel(dbeta, dy) - x_hat * _per_channel(dgamma, dy))
    return dx, dgamma, dbeta


def batch_norm_inference(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                         gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Evaluation-mode batch norm: the same affine map for every example (no batch statistics)."""
    inv_std = torch.rsqrt(running_var + eps)
    return _per_channel(gamma * inv_std, x) * (x - _per_channel(running_mean, x)) + _per_channel(beta, x)


@torch.no_grad()
def update_running_stats(running_mean: torch.Tensor, running_var: torch.Tensor, mean: torch.Tensor,
                         var_biased: torch.Tensor, count: int, momentum: float) -> None:
    """In place: move the running estimates a fraction `momentum` towards this batch's statistics.

    The variance that enters is the unbiased one, var_B * m / (m - 1), as in nn.BatchNorm*.
    """
    unbiased = var_biased * count / (count - 1)
    running_mean.mul_(1 - momentum).add_(momentum * mean)
    running_var.mul_(1 - momentum).add_(momentum * unbiased)


class _BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm whose backward is `batch_norm_backward` (not autograd's)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        y, cache = batch_norm_forward(x, gamma, beta, eps)
        # tensors go through save_for_backward (autograd checks they were not modified in place)
        ctx.save_for_backward(cache.x_hat, cache.inv_std, gamma)
        ctx.dims, ctx.count = cache.dims, cache.count
        ctx.mark_non_differentiable(cache.mean, cache.var)
        return y, cache.mean, cache.var

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        x_hat, inv_std, gamma = ctx.saved_tensors
        cache = BNCache(x_hat, inv_std, gamma, ctx.dims, ctx.count, mean=None, var=None)
        dx, dgamma, dbeta = batch_norm_backward(dy, cache)
        need_x, need_gamma, need_beta, _ = ctx.needs_input_grad
        return (dx if need_x else None, dgamma if need_gamma else None, dbeta if need_beta else None, None)


class BatchNorm(nn.Module):
    """Batch norm over the channel axis 1 of an (N, C, ...) input; usable where nn.BatchNorm1d/2d is.

    Same arguments, parameters, buffers and state-dict keys as nn.BatchNorm*:
    weight (gamma, ones), bias (beta, zeros), running_mean (zeros), running_var (ones),
    num_batches_tracked. Training mode normalises with batch statistics and updates the
    running estimates; eval mode uses the running estimates (or batch statistics when
    track_running_stats=False, as PyTorch does).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects (N, {self.num_features}, ...), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        ones, zeros = x.new_ones(self.num_features), x.new_zeros(self.num_features)
        gamma = self.weight if self.affine else ones
        beta = self.bias if self.affine else zeros
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats:
            return batch_norm_inference(x, self.running_mean, self.running_var, gamma, beta, self.eps)
        y, mean, var = _BatchNormFunction.apply(x, gamma, beta, self.eps)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            # momentum=None: cumulative average, the k-th batch weighs 1/k
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            update_running_stats(self.running_mean, self.running_var, mean, var,
                                 x.numel() // x.shape[1], factor)
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(BatchNorm):
    """Batch norm for (N, C) or (N, C, L) inputs: per feature after a fully connected layer."""

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"BatchNorm1d expects a 2D or 3D input, got shape {tuple(x.shape)}")
        super()._check_input(x)


class BatchNorm2d(BatchNorm):
    """Batch norm for (N, C, H, W) inputs: per channel over N x H x W values after a convolution."""

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"BatchNorm2d expects a 4D input, got shape {tuple(x.shape)}")
        super()._check_input(x)
