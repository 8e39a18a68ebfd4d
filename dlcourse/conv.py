"""Convolution arithmetic: readable reference implementations and the formulas around them.

Chapter 1 of the book and assignment a01 use this module. Everything here is written for
clarity, not speed: the loops follow the definitions so that a reader can check them line
by line, and `tests/test_conv.py` checks every function against `torch.nn.functional`.

Conventions (the same as PyTorch):
  * tensors are (N, C, H, W): batch, channels, height, width;
  * a convolution weight is (C_out, C_in, k_h, k_w);
  * "convolution" means cross-correlation (the kernel is not flipped), as in every deep
    learning library;
  * an output size that is not a whole number is an *invalid setting* and raises
    ValueError, where PyTorch would silently drop the last rows and columns.

Contents:
  output_size, same_padding        -- how big the output is, and how to keep it the same
  conv_params, conv_cost           -- learnable parameters and multiply-adds of a layer
  receptive_field                  -- how many input pixels one output of a stack sees
  conv2d                           -- naive cross-correlation (stride, padding, dilation, bias)
  max_pool2d, avg_pool2d           -- pooling forward (per channel, no parameters)
  max_pool2d_backward              -- routes each output gradient to its arg-max input
  window_slices                    -- which input rows/columns one output position reads
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Sequence

import torch

__all__ = [
    "output_size",
    "same_padding",
    "conv_params",
    "conv_cost",
    "receptive_field",
    "window_slices",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_backward",
]


def _pair(v, name: str) -> tuple[int, int]:
    """Accept an int or a (height, width) pair, as PyTorch does."""
    if isinstance(v, int):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(a, int) for a in v):
        return int(v[0]), int(v[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")


def output_size(n: int, f: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length along one axis: (N + 2P - D(F-1) - 1) / S + 1.

    With dilation D = 1 this is the lecture formula (N + 2P - F)/S + 1. A non-integer
    result means the windows do not tile the padded input exactly; that setting is
    rejected with a ValueError that shows the arithmetic (e.g. N=7, F=3, S=3 -> 2.33).
    """
    for name, v, low in (("N", n, 1), ("F", f, 1), ("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        if not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    span = dilation * (f - 1) + 1  # how many input pixels one window covers
    room = n + 2 * padding - span  # how far the window can slide
    if room < 0:
        raise ValueError(
            f"invalid setting: the window spans {span} pixels but the padded input has only "
            f"{n + 2 * padding} (N={n}, F={f}, P={padding}, dilation={dilation})"
        )
    if room % stride:
        exact = Fraction(room, stride) + 1
        raise ValueError(
            f"invalid setting: ({n} + 2*{padding} - {span})/{stride} + 1 = {float(exact):.2f} "
            f"is not an integer (N={n}, F={f}, S={stride}, P={padding}); "
            f"the window does not fit the input a whole number of times"
        )
    return room // stride + 1


def same_padding(f: int, dilation: int = 1) -> int:
    """Zero padding that keeps the output size equal to the input size at stride 1: (F-1)/2.

    Only odd kernels (F = 3, 5, 7, ...) can be centred; an even F raises ValueError.
    """
    if not isinstance(f, int) or f < 1:
        raise ValueError(f"F must be a positive integer, got {f!r}")
    span = dilation * (f - 1)
    if span % 2:
        raise ValueError(f"no 'same' padding exists for an even kernel size F={f}: (F-1)/2 is not an integer")
    return span // 2


def conv_params(f: int, d_in: int, k: int, bias: bool = True) -> int:
    """Learnable parameters of a conv layer with K filters of size F x F x D_in: (F*F*D_in)*K + K."""
    return f * f * d_in * k + (k if bias else 0)


def conv_cost(w_out: int, h_out: int, f: int, d_in: int, k: int) -> int:
    """Multiply-adds of a conv layer: every one of the W_o * H_o * K outputs is a dot product of length F*F*D."""
    return w_out * h_out * f * f * d_in * k


def receptive_field(layers: Iterable[Sequence[int]]) -> int:
    """Side length of the input region that one output of a stack of layers depends on.

    `layers` lists (kernel, stride) or (kernel, stride, dilation) from input to output.
    Each layer widens the field by D(F-1) steps of the current "jump", the distance in
    input pixels between neighbouring positions of that layer's input; the stride
    multiplies the jump. Three 3x3 stride-1 layers give 1 + 2 + 2 + 2 = 7.
    """
    field, jump = 1, 1
    for layer in layers:
        if len(layer) not in (2, 3):
            raise ValueError(f"each layer is (kernel, stride[, dilation]), got {layer!r}")
        f, s = layer[0], layer[1]
        d = layer[2] if len(layer) == 3 else 1
        field += d * (f - 1) * jump
        jump *= s
    return field


def window_slices(i: int, j: int, f, stride=1, dilation=1) -> tuple[slice, slice]:
    """Rows and columns of the *padded* input that output position (i, j) reads."""
    fh, fw = _pair(f, "f")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    rows = slice(i * sh, i * sh + dh * (fh - 1) + 1, dh)
    cols = slice(j * sw, j * sw + dw * (fw - 1) + 1, dw)
    return rows, cols


def _check_4d(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(x.shape)}")


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride=1, padding=0, dilation=1) -> torch.Tensor:
    """Naive 2-D cross-correlation, out[n, o, i, j] = sum(w[o] * window) + b[o].

    x: (N, C_in, H, W); weight: (C_out, C_in, k_h, k_w); bias: (C_out,) or None.
    Each output value is the dot product w^T x + b of one filter (spanning all input
    channels) with one window of the zero-padded input.
    """
    _check_4d(x)
    _check_4d(weight, "weight")
    n_batch, c_in, h, w = x.shape
    c_out, c_in_w, fh, fw = weight.shape
    if c_in != c_in_w:
        raise ValueError(f"x has {c_in} channels but the weight expects {c_in_w}")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    h_out = output_size(h, fh, sh, ph, dh)
    w_out = output_size(w, fw, sw, pw, dw)

    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))  # zeros around H and W only
    out = x.new_zeros(n_batch, c_out, h_out, w_out)
    for n in range(n_batch):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    rows, cols = window_slices(i, j, (fh, fw), (sh, sw), (dh, dw))
                    window = xp[n, :, rows, cols]  # (C_in, k_h, k_w)
                    out[n, o, i, j] = (window * weight[o]).sum()
            if bias is not None:
                out[n, o] += bias[o]
    return out


def _pool(x: torch.Tensor, kernel, stride, reduce) -> torch.Tensor:
    _check_4d(x)
    fh, fw = _pair(kernel, "kernel")
    sh, sw = _pair(stride if stride is not None else kernel, "stride")
    n_batch, c, h, w = x.shape
    h_out, w_out = output_size(h, fh, sh), output_size(w, fw, sw)
    out = x.new_zeros(n_batch, c, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            rows, cols = window_slices(i, j, (fh, fw), (sh, sw))
            # every channel is pooled on its own: (N, C, k_h, k_w) -> (N, C)
            out[:, :, i, j] = reduce(x[:, :, rows, cols].flatten(2))
    return out


def max_pool2d(x: torch.Tensor, kernel, stride=None) -> torch.Tensor:
    """Max pooling per channel; stride defaults to the kernel size. No parameters."""
    return _pool(x, kernel, stride, lambda v: v.max(dim=-1).values)


def avg_pool2d(x: torch.Tensor, kernel, stride=None) -> torch.Tensor:
    """Average pooling per channel; stride defaults to the kernel size. No parameters."""
    return _pool(x, kernel, stride, lambda v: v.mean(dim=-1))


def max_pool2d_backward(x: torch.Tensor, grad_out: torch.Tensor, kernel, stride=None) -> torch.Tensor:
    """Gradient of max pooling with respect to its input.

    The maximum is the only input of a window that affects the output, so the whole
    output gradient goes to the arg-max (the first one on ties, as PyTorch does) and
    every other input gets zero. Overlapping windows add up their contributions.
    """
    _check_4d(x)
    fh, fw = _pair(kernel, "kernel")
    sh, sw = _pair(stride if stride is not None else kernel, "stride")
    n_batch, c, h, w = x.shape
    h_out, w_out = output_size(h, fh, sh), output_size(w, fw, sw)
    if grad_out.shape != (n_batch, c, h_out, w_out):
        raise ValueError(f"grad_out must have shape {(n_batch, c, h_out, w_out)}, got {tuple(grad_out.shape)}")
    grad_x = torch.zeros_like(x)
    for n in range(n_batch):
        for ch in range(c):
            for i in range(h_out):
                for j in range(w_out):
                    rows, cols = window_slices(i, j, (fh, fw), (sh, sw))
                    k = int(x[n, ch, rows, cols].flatten().argmax())
                    r, q = divmod(k, fw)  # position of the max inside the window
                    grad_x[n, ch, rows.start + r, cols.start + q] += grad_out[n, ch, i, j]
    return grad_x
