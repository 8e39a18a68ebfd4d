"""dlcourse.upsample against PyTorch: the transposed convolution's output size against
nn.ConvTranspose2d over a grid of sizes, kernels, strides, paddings, output paddings and
dilations; the scatter-add transposed convolution against F.conv_transpose2d (values and
gradients) and as the adjoint of F.conv2d; max pooling's indices and max-unpooling against
F.max_pool2d / F.max_unpool2d (ties included); bilinear upsampling against F.interpolate with
both corner conventions, and FCN's bilinear kernel against it away from the border."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import upsample as U


# ---------------------------------------------------------------- output sizes
def _torch_size(n, k, s, p, op, d):
    """nn.ConvTranspose2d's output height on a (1, 1, n, 1) input, or None where PyTorch refuses."""
    layer = nn.ConvTranspose2d(1, 1, (k, 1), stride=(s, 1), padding=(p, 0), output_padding=(op, 0), dilation=(d, 1))
    try:
        with torch.no_grad():
            return layer(torch.zeros(1, 1, n, 1)).shape[2]
    except RuntimeError:
        return None


def test_transposed_output_size_matches_conv_transpose2d_over_a_grid():
    checked = refused = 0
    for n, k, s, p, d in itertools.product((1, 2, 3, 5, 8), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (1, 2)):
        for op in range(max(s, d) + 1):                     # one beyond PyTorch's limit, to see it refused
            expected = _torch_size(n, k, s, p, op, d)
            if expected is None:
                with pytest.raises(ValueError):
                    U.conv_transpose_output_size(n, k, s, p, op, d)
                refused += 1
            else:
                assert U.conv_transpose_output_size(n, k, s, p, op, d) == expected, (n, k, s, p, op, d)
                checked += 1
    assert checked > 500 and refused > 100                  # both branches exercised


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (4, 2, 1), (2, 2, 0), (5, 3, 2), (3, 1, 1)])
def test_output_padding_picks_among_the_inputs_a_convolution_maps_to_the_same_size(k, s, p):
    # a convolution with stride s maps s consecutive input sizes to one output size n; the
    # transposed convolution with output_padding 0 .. s - 1 reaches exactly those s sizes
    for n in range(2, 9):
        inputs = {m for m in range(1, 60) if U.conv_output_size(m, k, s, p) == n}
        reached = {U.conv_transpose_output_size(n, k, s, p, op) for op in range(s)}
        assert reached == inputs, (n, reached, inputs)
        assert len(reached) == s


# ---------------------------------------------------------------- transposed convolution
SETTINGS = [  # stride, padding, output_padding, dilation, groups
    (1, 0, 0, 1, 1), (2, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 1, 2, 1, 1), (2, 2, 1, 2, 1),
    (1, 1, 0, 3, 1), (2, 1, 1, 1, 2), ((2, 3), (1, 0), (1, 2), (1, 2), 2), (4, 2, 3, 1, 1),
]


@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", SETTINGS)
def test_conv_transpose2d_equals_pytorch_with_gradients(stride, padding, output_padding, dilation, groups):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)     # (C_in, C_out / G, kh, kw)
    b = torch.randn(3 * groups, generator=g, dtype=torch.float64, requires_grad=True)
    ours = U.conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups)
    ref = F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)   # note PyTorch's argument order
    torch.testing.assert_close(ours, ref)
    up = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((ours * up).sum(), (x, w, b))
    ref_grads = torch.autograd.grad((ref * up).sum(), (x, w, b))
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)


def test_one_input_pixel_stamps_the_kernel_stride_pixels_apart():
    w = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 2] = 2.0
    out = U.conv_transpose2d(x, w, stride=2)                     # (3 - 1) * 2 + 3 = 7
    assert out.shape == (1, 1, 7, 7)
    expected = torch.zeros(7, 7)
    expected[2:5, 4:7] = 2 * w[0, 0]                             # the kernel at (1 * 2, 2 * 2), scaled by 2
    torch.testing.assert_close(out[0, 0], expected)
    # two neighbours 1 pixel apart with stride 2 overlap on one row/column, where the stamps add
    x[0, 0, 1, 1] = 1.0
    out = U.conv_transpose2d(x, w, stride=2)
    torch.testing.assert_close(out[0, 0, 2:5, 4], w[0, 0, :, 2] + 2 * w[0, 0, :, 0])


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (3, 0, 2), (2, 2, 1)])
def test_transposed_convolution_is_the_adjoint_of_the_convolution(stride, padding, dilation):
    # <conv2d(y, W), x> = <y, conv_transpose2d(x, W)> for every x and y: the transposed
    # convolution is the convolution's matrix transposed, hence its gradient w.r.t. the input
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)        # conv2d: 2 -> 3 channels
    y = torch.randn(1, 2, 11, 10, generator=g, dtype=torch.float64)
    cy = F.conv2d(y, w, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(cy.shape, generator=g, dtype=torch.float64)
    op = [m - U.conv_transpose_output_size(n, 3, stride, padding, 0, dilation) for m, n in zip(y.shape[2:], cy.shape[2:])]
    tx = U.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=op, dilation=dilation)
    assert tx.shape == y.shape
    torch.testing.assert_close((cy * x).sum(), (y * tx).sum())


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_kernel_is_bilinear_interpolation_away_from_the_border(factor):
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    w = U.bilinear_kernel(3, factor).double()
    up = U.conv_transpose2d(x, w, stride=factor, padding=factor // 2)
    assert up.shape == (1, 3, 5 * factor, 6 * factor)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    # rows whose source coordinate (o + 1/2) / f - 1/2 lies within [0, n - 1] read two real pixels
    lo, hi = factor // 2, factor * 5 - factor // 2              # rows [lo, hi), and the same for columns
    lo_w, hi_w = factor // 2, factor * 6 - factor // 2
    torch.testing.assert_close(up[..., lo:hi, lo_w:hi_w], ref[..., lo:hi, lo_w:hi_w])
    # at the border the transposed convolution sees a zero beyond the edge, F.interpolate the edge pixel
    assert (up[..., 0, :] - ref[..., 0, :]).abs().max() > 1e-3
    # channel c is upsampled from channel c only
    assert w[0, 1].abs().sum() == 0 and w[1, 1].sum() == pytest.approx(factor ** 2)


def test_bilinear_kernel_rejects_odd_factors():
    with pytest.raises(ValueError):
        U.bilinear_kernel(2, 3)


# ---------------------------------------------------------------- pooling indices and unpooling
@pytest.mark.parametrize("kernel,stride,padding,size", [(2, 2, 0, (6, 8)), (2, 2, 0, (7, 5)), (3, 2, 1, (7, 9)),
                                                        (3, 1, 1, (4, 5)), ((2, 3), (2, 1), (1, 0), (5, 7))])
def test_max_pool_indices_and_unpooling_equal_pytorch(kernel, stride, padding, size):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, *size, generator=g)
    values, idx = U.max_pool2d(x, kernel, stride, padding)
    ref_values, ref_idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    torch.testing.assert_close(values, ref_values, rtol=0, atol=0)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(U.max_unpool2d(values, idx, size),
                               F.max_unpool2d(ref_values, ref_idx, kernel, stride, padding, output_size=size), rtol=0, atol=0)


def test_ties_pick_the_first_maximum_in_row_major_order_as_pytorch():
    x = torch.randint(0, 3, (2, 2, 8, 8)).float()                        # values 0, 1, 2: windows full of ties
    values, idx = U.max_pool2d(x, 2)
    ref_values, ref_idx = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(values, ref_values) and torch.equal(idx, ref_idx)
    x = torch.ones(1, 1, 2, 2)
    assert U.max_pool2d(x, 2)[1].item() == 0                              # all equal: the top-left


def test_unpooling_puts_each_maximum_back_and_zeros_elsewhere_at_the_recorded_size():
    x = torch.tensor([[[[1.0, 5, 2, 0, 3], [4, 2, 8, 1, 9], [0, 6, 1, 7, 2], [3, 1, 2, 2, 4], [9, 9, 9, 9, 9]]]])
    values, idx = U.max_pool2d(x, 2)                                      # 5 x 5 -> 2 x 2: the last row and column dropped
    assert values.tolist() == [[[[5.0, 8.0], [6.0, 7.0]]]]
    assert idx.tolist() == [[[[1, 7], [11, 13]]]]                        # flat positions i * 5 + j
    up = U.max_unpool2d(values, idx, (5, 5))
    expected = torch.zeros(5, 5)
    expected[0, 1], expected[1, 2], expected[2, 1], expected[2, 3] = 5, 8, 6, 7
    torch.testing.assert_close(up[0, 0], expected)
    # without the recorded size PyTorch assumes (2 - 1) * 2 + 2 = 4: one pixel short of 5
    assert F.max_unpool2d(values, idx, 2).shape[-2:] == (4, 4)
    # pooling the unpooled map gives the pooled values again (non-overlapping windows)
    torch.testing.assert_close(U.max_pool2d(up, 2)[0], values)


# ---------------------------------------------------------------- bilinear upsampling
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size_in,size_out", [((4, 5), (8, 10)), ((3, 7), (11, 4)), ((5, 5), (5, 5)), ((1, 3), (4, 1)),
                                              ((6, 2), (2, 9)), ((7, 3), (64, 17))])
def test_bilinear_upsample_equals_interpolate(size_in, size_out, align_corners):
    x = torch.randn(2, 3, *size_in, dtype=torch.float64, requires_grad=True)
    ours = U.bilinear_upsample(x, size_out, align_corners)
    ref = F.interpolate(x, size_out, mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(ours, ref)
    g = torch.randn(ref.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((ours * g).sum(), x)[0], torch.autograd.grad((ref * g).sum(), x)[0])


def test_bilinear_worked_example_of_the_two_corner_conventions():
    x = torch.tensor([[[[0.0, 1.0]]]])
    # corners' centres aligned: the 4 outputs sample 0, 1/3, 2/3, 1 of the way from pixel 0 to pixel 1
    torch.testing.assert_close(U.bilinear_upsample(x, (1, 4), align_corners=True)[0, 0, 0], torch.tensor([0, 1 / 3, 2 / 3, 1]))
    # outer edges aligned: output centres at input coordinates -1/4 (clamped to 0), 1/4, 3/4, 5/4 (clamped to 1)
    torch.testing.assert_close(U.bilinear_upsample(x, (1, 4), align_corners=False)[0, 0, 0], torch.tensor([0, 0.25, 0.75, 1]))
