"""dlcourse.conv against PyTorch (the trusted reference) and the syllabus' worked examples."""
import pytest
import torch
import torch.nn.functional as F

from dlcourse import conv

DT = torch.float64

# The worked example of chapter 1 (SYLLABUS.md, lecture decks 000/002).
IMAGE = [[2, 4, 9, 1, 4], [2, 1, 4, 4, 6], [1, 1, 2, 9, 2], [7, 3, 5, 1, 3], [2, 3, 4, 8, 5]]
KERNEL = [[1, 2, 3], [-4, 7, 4], [2, -5, 1]]
STRIDE1 = [[51, 66, 20], [31, 49, 101], [15, 53, -2]]
STRIDE2 = [[51, 20], [15, -2]]
PAD1 = [[21, 59, 37, -19, 2], [30, 51, 66, 20, 43], [-14, 31, 49, 101, -19],
        [59, 15, 53, -2, 21], [49, 57, 64, 76, 10]]


def _t(a):
    return torch.tensor(a, dtype=DT)[None, None]


@pytest.mark.parametrize("kw, expected", [({}, STRIDE1), ({"stride": 2}, STRIDE2), ({"padding": 1}, PAD1)])
def test_worked_example_matches_syllabus_and_torch(kw, expected):
    ours = conv.conv2d(_t(IMAGE), _t(KERNEL), **kw)
    assert torch.equal(ours, _t(expected))
    assert torch.equal(ours, F.conv2d(_t(IMAGE), _t(KERNEL), **kw))


def test_deck004_two_filter_example():
    x = torch.tensor([[[0, 0, 2, 0, 2], [1, 2, 2, 2, 0], [0, 2, 1, 0, 0], [0, 2, 0, 2, 1], [1, 0, 2, 2, 0]],
                      [[1, 0, 0, 2, 0], [1, 0, 1, 0, 1], [0, 0, 2, 1, 2], [1, 2, 1, 0, 0], [1, 2, 2, 0, 2]],
                      [[0, 2, 2, 1, 0], [0, 2, 0, 0, 1], [1, 1, 1, 2, 1], [2, 0, 1, 2, 2], [2, 1, 1, 0, 0]]],
                     dtype=DT)[None]
    w = torch.tensor([[[[-1, 0, -1], [1, -1, 1], [-1, 0, -1]], [[0, -1, 1], [1, 1, 1], [-1, 1, -1]],
                       [[0, 0, 0], [-1, 1, -1], [1, 1, -1]]],
                      [[[0, 1, 1], [-1, -1, -1], [1, -1, 1]], [[-1, 0, -1], [1, 1, 1], [-1, 1, -1]],
                       [[0, 1, 0], [0, 0, -1], [1, -1, 0]]]], dtype=DT)
    b = torch.tensor([1, 0], dtype=DT)
    out = conv.conv2d(x, w, b, stride=2, padding=1)
    expected = torch.tensor([[[-3, -1, 0], [-1, -8, 2], [3, 0, 3]], [[1, 4, 2], [-1, 4, 5], [3, 1, 3]]], dtype=DT)
    assert torch.equal(out[0], expected)
    assert torch.equal(out, F.conv2d(x, w, b, stride=2, padding=1))


@pytest.mark.parametrize("seed", range(6))
def test_conv2d_random_shapes_match_torch(seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    n, c_in, c_out = r(1, 2), r(1, 3), r(1, 3)
    kh, kw = r(1, 4), r(1, 4)
    stride, padding, dilation = (r(1, 3), r(1, 3)), (r(0, 2), r(0, 2)), (r(1, 2), r(1, 2))
    # choose H, W so that the setting is valid: (N + 2P - span) divisible by S
    h = stride[0] * r(0, 3) + dilation[0] * (kh - 1) + 1 - 2 * padding[0]
    w = stride[1] * r(0, 3) + dilation[1] * (kw - 1) + 1 - 2 * padding[1]
    h, w = h + stride[0] * 4, w + stride[1] * 4  # keep them positive
    x = torch.randn(n, c_in, h, w, generator=g, dtype=DT)
    weight = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=DT)
    bias = torch.randn(c_out, generator=g, dtype=DT)
    ours = conv.conv2d(x, weight, bias, stride, padding, dilation)
    ref = F.conv2d(x, weight, bias, stride, padding, dilation)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-12)


def test_conv2d_rejects_channel_mismatch_and_invalid_setting():
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d(torch.zeros(1, 2, 5, 5), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="not an integer"):
        conv.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3), stride=3)


def test_output_size_formula_and_invalid_settings():
    assert conv.output_size(7, 3, 1) == 5
    assert conv.output_size(7, 3, 2) == 3
    assert conv.output_size(5, 3, 1, 1) == 5
    with pytest.raises(ValueError, match=r"2\.33"):
        conv.output_size(7, 3, 3)
    with pytest.raises(ValueError, match="spans"):
        conv.output_size(3, 5)
    with pytest.raises(ValueError):
        conv.output_size(5, 3, stride=0)
    # agreement with PyTorch on every valid setting of a small grid
    for n in range(1, 9):
        for f in range(1, 5):
            for s in range(1, 4):
                for p in range(0, 2):
                    for d in range(1, 3):
                        try:
                            ours = conv.output_size(n, f, s, p, d)
                        except ValueError:
                            continue
                        ref = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f),
                                       stride=s, padding=p, dilation=d).shape[-1]
                        assert ours == ref


@pytest.mark.parametrize("f", [3, 5, 7])
def test_same_padding_keeps_size(f):
    p = conv.same_padding(f)
    assert p == (f - 1) // 2
    x = torch.zeros(1, 1, 11, 11)
    assert F.conv2d(x, torch.zeros(1, 1, f, f), padding=p).shape[-2:] == x.shape[-2:]


def test_same_padding_rejects_even_kernel():
    with pytest.raises(ValueError, match="even"):
        conv.same_padding(4)


@pytest.mark.parametrize("f, d_in, k, bias", [(5, 3, 10, True), (3, 64, 128, True), (1, 256, 64, False), (11, 3, 96, True)])
def test_conv_params_match_nn_conv2d(f, d_in, k, bias):
    layer = torch.nn.Conv2d(d_in, k, f, bias=bias)
    assert conv.conv_params(f, d_in, k, bias) == sum(p.numel() for p in layer.parameters())


def test_conv_cost_counts_multiply_adds():
    # count the multiplications of conv.conv2d's definition: one per weight per output position
    x = torch.zeros(1, 3, 9, 9)
    out = F.conv2d(x, torch.zeros(4, 3, 3, 3))
    h_o, w_o = out.shape[-2:]
    assert conv.conv_cost(w_o, h_o, 3, 3, 4) == out.numel() * 3 * 3 * 3
    assert conv.conv_cost(55, 55, 11, 3, 96) == 105_415_200  # AlexNet CONV1


def _empirical_receptive_field(layers):
    """Build the stack with PyTorch, backpropagate from the central output, count input pixels reached."""
    modules = [torch.nn.Conv2d(1, 1, l[0], stride=l[1], dilation=l[2] if len(l) == 3 else 1, bias=False)
               for l in layers]
    for m in modules:
        torch.nn.init.constant_(m.weight, 1.0)
    net = torch.nn.Sequential(*modules).double()
    x = torch.ones(1, 1, 64, 64, dtype=DT, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("layers", [[(3, 1)] * 3, [(3, 1)], [(5, 1), (3, 1)], [(3, 2), (3, 2), (3, 1)],
                                    [(3, 1, 2), (3, 1, 4)], [(7, 2), (3, 2), (3, 1), (3, 1)]])
def test_receptive_field_matches_gradient_measurement(layers):
    assert conv.receptive_field(layers) == _empirical_receptive_field(layers)


def test_three_3x3_see_7x7():
    assert conv.receptive_field([(3, 1)] * 3) == 7


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (2, 1), ((2, 3), (1, 2))])
def test_pooling_matches_torch(kernel, stride):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 11, generator=g, dtype=DT)
    # PyTorch floors non-integer sizes; ours refuses them, so crop to a valid size first
    kh, kw = conv._pair(kernel, "k")
    sh, sw = conv._pair(stride if stride is not None else kernel, "s")
    x = x[:, :, : (9 - kh) // sh * sh + kh, : (11 - kw) // sw * sw + kw]
    assert torch.allclose(conv.max_pool2d(x, kernel, stride), F.max_pool2d(x, kernel, stride))
    assert torch.allclose(conv.avg_pool2d(x, kernel, stride), F.avg_pool2d(x, kernel, stride))


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (2, 1)])
def test_max_pool_backward_matches_autograd(kernel, stride):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 7, 7, generator=g, dtype=DT)
    x = x[:, :, : (7 - kernel) // (stride or kernel) * (stride or kernel) + kernel,
          : (7 - kernel) // (stride or kernel) * (stride or kernel) + kernel].contiguous()
    xr = x.clone().requires_grad_(True)
    y = F.max_pool2d(xr, kernel, stride)
    grad_out = torch.randn(y.shape, generator=g, dtype=DT)
    y.backward(grad_out)
    ours = conv.max_pool2d_backward(x, grad_out, kernel, stride)
    assert torch.allclose(ours, xr.grad)
    # the gradient lands only on arg-max positions: as many non-zeros as distinct maxima at most
    assert int((ours != 0).sum()) <= grad_out.numel()


def test_max_pool_backward_rejects_wrong_gradient_shape():
    with pytest.raises(ValueError, match="grad_out"):
        conv.max_pool2d_backward(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), 2)
