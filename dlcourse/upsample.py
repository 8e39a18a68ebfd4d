"""Upsampling operations of semantic segmentation (chapter 12), each written from its definition
and checked against PyTorch's own in tests/test_upsample.py.

A segmentation network brings a coarse feature map (stride 8, 16, 32) back to the input's
resolution. Three ways of doing it appear in the chapter:

- Transposed convolution (FCN's "deconvolution", U-Net's "up-convolution"): every input pixel
  stamps a copy of the kernel, scaled by its value, onto the output, `stride` pixels apart from
  its neighbour's stamp, and the overlapping stamps add up. It is the gradient of a convolution
  with respect to its input, so it has the same parameters (kernel, stride, padding, dilation)
  and maps a convolution's output size back to its input size; `output_padding` picks among the
  input sizes that the convolution maps to the same output size (with stride s there are s of
  them). It is learned, and it can be initialised to bilinear interpolation (`bilinear_kernel`),
  as FCN does.
- Max-unpooling (SegNet): max pooling remembers where each maximum came from (`max_pool2d`
  with its indices); unpooling puts each value back at that place and zeros everywhere else.
  Nothing is learned; the decoder's convolutions fill in the zeros.
- Bilinear interpolation (`bilinear_upsample`): each output pixel is a weighted mean of the two
  nearest input pixels along each axis, written here as one (out, in) interpolation matrix per
  axis. `align_corners` says whether the corner pixels' centres (True) or the corner pixels'
  outer edges (False, PyTorch's default) of input and output line up.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["conv_output_size", "conv_transpose_output_size", "conv_transpose2d", "bilinear_kernel",
           "max_pool2d", "max_unpool2d", "bilinear_upsample"]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """A convolution's output length along one axis: floor((n + 2p - d (k - 1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """A transposed convolution's output length along one axis:

        (n - 1) s - 2 p + d (k - 1) + output_padding + 1.

    The n stamps of the (dilated) kernel, d (k - 1) + 1 wide and s apart, cover
    (n - 1) s + d (k - 1) + 1 pixels; `padding` removes p from each end (it undoes the padding of
    the convolution this one transposes) and `output_padding` adds pixels at the bottom and right
    end. PyTorch requires output_padding < max(stride, dilation); so is it here."""
    if not 0 <= output_padding < max(stride, dilation):
        raise ValueError(f"output_padding must be in [0, max(stride, dilation)) = [0, {max(stride, dilation)}), "
                         f"got {output_padding}")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out <= 0:
        raise ValueError(f"a transposed convolution of {size} pixels with these settings has no output ({out})")
    return out


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
                     output_padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """F.conv_transpose2d written as a scatter-add of kernel copies.

    x (N, C_in, H, W), weight (C_in, C_out / groups, kh, kw) (the layout of nn.ConvTranspose2d:
    the transposed convolution's weight is the one of the convolution it transposes, whose input
    channels are this one's outputs) -> (N, C_out, H_out, W_out), sizes by
    `conv_transpose_output_size`.

    Input pixel (i, j) adds x[:, :, i, j] times the kernel onto the canvas at rows
    i s + a d and columns j s + b d for every kernel tap (a, b). The loop runs over the taps
    rather than over the pixels: tap (a, b) of every input pixel lands on a strided grid of the
    canvas, one slice assignment per tap.
    """
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = (_pair(v) for v in (stride, padding, output_padding, dilation))
    n, c_in, h, w = x.shape
    _, c_out_g, kh, kw = weight.shape
    if c_in != weight.shape[0] or c_in % groups:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c_in} input channels in {groups} groups")
    out_h = conv_transpose_output_size(h, kh, sh, ph, oph, dh)
    out_w = conv_transpose_output_size(w, kw, sw, pw, opw, dw)
    # the full canvas before padding is removed: (H - 1) s + d (k - 1) + 1, plus output_padding at the end
    canvas = x.new_zeros(n, c_out_g * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph, (w - 1) * sw + dw * (kw - 1) + 1 + opw)
    cg = c_in // groups
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]                                        # (N, C_in / G, H, W)
        wg = weight[g * cg:(g + 1) * cg]                                      # (C_in / G, C_out / G, kh, kw)
        outs = slice(g * c_out_g, (g + 1) * c_out_g)
        for a in range(kh):
            for b in range(kw):
                # every input pixel's contribution through tap (a, b): (N, C_out / G, H, W)
                stamp = torch.einsum("nchw,co->nohw", xg, wg[:, :, a, b])
                canvas[:, outs, a * dh:a * dh + (h - 1) * sh + 1:sh, b * dw:b * dw + (w - 1) * sw + 1:sw] += stamp
    out = canvas[:, :, ph:ph + out_h, pw:pw + out_w]                           # padding removed from both ends
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """The (channels, channels, 2f, 2f) weight of a transposed convolution (stride f, padding f / 2)
    that upsamples each channel by an even factor f by bilinear interpolation (FCN's initialisation
    of its upsampling layers, Long et al. 2015, section 3.3).

    Tap t of a kernel 2f wide weighs 1 - |t - (f - 1/2)| / f: the "tent" of linear interpolation,
    centred between the two middle taps. Away from the border the output equals
    F.interpolate(mode="bilinear", align_corners=False); at the border the transposed
    convolution sees zeros beyond the edge where F.interpolate repeats the edge pixel."""
    if factor < 2 or factor % 2:
        raise ValueError(f"bilinear_kernel takes an even factor (kernel 2f, padding f / 2), got {factor}")
    t = torch.arange(2 * factor, dtype=torch.float32)
    tent = 1 - (t - (factor - 0.5)).abs() / factor                               # (2f,)
    weight = torch.zeros(channels, channels, 2 * factor, 2 * factor)
    weight[torch.arange(channels), torch.arange(channels)] = tent[:, None] * tent[None, :]   # channel c to c only
    return weight


def max_pool2d(x: torch.Tensor, kernel_size=2, stride=None, padding=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Max pooling that also returns where each maximum was: (values, indices), both (N, C, h, w).

    An index is the flat position i * W + j of the maximum in its own (H, W) input map (the form
    of F.max_pool2d(return_indices=True) and what F.max_unpool2d takes). Of equal values in a
    window the first in row-major order wins, as in PyTorch. Padding is -inf, never chosen."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    n, c, h, w = x.shape
    xp = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    windows = xp.unfold(2, kh, sh).unfold(3, kw, sw)                          # (N, C, h, w, kh, kw)
    oh, ow = windows.shape[2:4]
    values, offset = windows.reshape(n, c, oh, ow, kh * kw).max(dim=-1)       # offset inside the window
    # window (i, j) starts at padded row i sh, column j sw; the maximum sits a rows and b columns further
    rows = torch.arange(oh, device=x.device).view(oh, 1) * sh + offset // kw - ph
    cols = torch.arange(ow, device=x.device).view(1, ow) * sw + offset % kw - pw
    return values, rows * w + cols


def max_unpool2d(x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """SegNet's upsampling: (N, C, h, w) values put back at their pooling `indices` in a zero map
    (N, C, *output_size). The output size is given, not derived: a map of odd size pooled by 2
    and unpooled is one pixel short otherwise (F.max_unpool2d's default is the transposed
    convolution's size (h - 1) s - 2 p + k); SegNet unpools to the size recorded before pooling."""
    n, c = x.shape[:2]
    out = x.new_zeros(n, c, output_size[0] * output_size[1])
    out.scatter_(2, indices.reshape(n, c, -1), x.reshape(n, c, -1))          # overlapping windows write one value twice
    return out.view(n, c, *output_size)


def _interpolation_matrix(size_in: int, size_out: int, align_corners: bool, dtype=torch.float32, device=None) -> torch.Tensor:
    """(out, in) weights of 1-D linear interpolation; each row has at most two non-zero weights, summing to 1.

    Output pixel o reads the input at the source coordinate
      align_corners=True:  o (in - 1) / (out - 1)          (the corner centres coincide)
      align_corners=False: (o + 1/2) in / out - 1/2, at least 0 (the outer edges coincide),
    between the input pixels floor(src) and floor(src) + 1 (clamped to the last pixel)."""
    o = torch.arange(size_out, dtype=torch.float64)
    if align_corners:
        src = o * ((size_in - 1) / (size_out - 1)) if size_out > 1 else torch.zeros_like(o)
    else:
        src = ((o + 0.5) * (size_in / size_out) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = src - lo
    m = torch.zeros(size_out, size_in, dtype=torch.float64)
    m[torch.arange(size_out), lo] += 1 - frac
    m[torch.arange(size_out), hi] += frac
    return m.to(dtype=dtype, device=device)


def bilinear_upsample(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resizing of (N, C, H, W) to (N, C, *size): interpolate the rows, then the columns,
    out = A_h x A_w^T with `_interpolation_matrix`'s (out, in) matrices. The same as
    F.interpolate(x, size, mode="bilinear", align_corners=...) (given a size, not a scale factor:
    with a non-integer scale factor PyTorch uses the factor, not in / out, as the step)."""
    a_h = _interpolation_matrix(x.shape[-2], size[0], align_corners, x.dtype, x.device)   # (H_out, H)
    a_w = _interpolation_matrix(x.shape[-1], size[1], align_corners, x.dtype, x.device)   # (W_out, W)
    return a_h @ x @ a_w.T
