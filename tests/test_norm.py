"""dlcourse.norm: batch norm from the definition agrees with nn.BatchNorm1d/2d in both modes,
its hand-written backward agrees with autograd, and the running statistics follow PyTorch's
momentum convention (unbiased variance) over several steps."""
import pytest
import torch
from torch import nn

from dlcourse.norm import (BatchNorm, BatchNorm1d, BatchNorm2d, batch_norm_backward, batch_norm_forward,
                           batch_norm_inference, reduce_dims)

CASES = [  # (ours, torch's, input shape)
    (BatchNorm1d, nn.BatchNorm1d, (16, 5)),          # per feature after a fully connected layer
    (BatchNorm1d, nn.BatchNorm1d, (8, 5, 7)),        # (N, C, L)
    (BatchNorm2d, nn.BatchNorm2d, (4, 3, 6, 5)),     # per channel over N x H x W
]


def pair(ours_cls, ref_cls, c, seed=0, **kw):
    """Our module and torch's with the same random gamma/beta (float64 for tight comparisons)."""
    torch.manual_seed(seed)
    ref = ref_cls(c, **kw).double()
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2.0)
            ref.bias.uniform_(-1.0, 1.0)
    ours = ours_cls(c, **kw).double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def test_reduce_dims_are_every_axis_but_channels():
    assert reduce_dims(torch.zeros(4, 3)) == (0,)
    assert reduce_dims(torch.zeros(4, 3, 7)) == (0, 2)
    assert reduce_dims(torch.zeros(4, 3, 5, 6)) == (0, 2, 3)
    with pytest.raises(ValueError):
        reduce_dims(torch.zeros(4))


def test_forward_uses_biased_batch_variance():
    torch.manual_seed(0)
    x = torch.randn(10, 3, 4, 4, dtype=torch.float64) * 3 + 2
    y, cache = batch_norm_forward(x, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), eps=0.0)
    # every channel of y has mean 0 and (biased) variance 1 over N x H x W
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64))
    assert cache.count == 10 * 4 * 4
    torch.testing.assert_close(cache.var, x.var(dim=(0, 2, 3), unbiased=False))


@pytest.mark.parametrize("ours_cls, ref_cls, shape", CASES)
def test_training_forward_and_backward_match_torch(ours_cls, ref_cls, shape):
    ours, ref = pair(ours_cls, ref_cls, shape[1])
    x = (torch.randn(*shape, dtype=torch.float64) * 2 + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    dy = torch.randn(*shape, dtype=torch.float64)
    y, y_ref = ours(x), ref(x2)
    torch.testing.assert_close(y, y_ref)
    y.backward(dy)
    y_ref.backward(dy)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("ours_cls, ref_cls, shape", CASES)
def test_running_stats_after_several_steps_and_eval_mode(ours_cls, ref_cls, shape):
    for momentum in (0.1, 0.3, None):                   # None: cumulative moving average
        ours, ref = pair(ours_cls, ref_cls, shape[1], momentum=momentum)
        for step in range(5):
            x = torch.randn(*shape, dtype=torch.float64) * (step + 1) + step
            ours(x), ref(x)
        torch.testing.assert_close(ours.running_mean, ref.running_mean)
        torch.testing.assert_close(ours.running_var, ref.running_var)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 5
        ours.eval(), ref.eval()
        x = torch.randn(*shape, dtype=torch.float64).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y_ref = ours(x), ref(x2)
        torch.testing.assert_close(y, y_ref)
        y.sum().backward(), y_ref.sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        # eval mode does not touch the running estimates
        before = ours.running_mean.clone()
        ours(x)
        assert torch.equal(before, ours.running_mean)


def test_running_variance_is_the_unbiased_estimate():
    bn = BatchNorm1d(2, momentum=1.0).double()           # momentum 1: running = this batch's
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    bn(x)
    torch.testing.assert_close(bn.running_mean, torch.tensor([2.0, 2.0], dtype=torch.float64))
    # biased variances are 1 and 4; with m / (m - 1) = 2 the running values are 2 and 8
    torch.testing.assert_close(bn.running_var, torch.tensor([2.0, 8.0], dtype=torch.float64))


def test_eval_mode_is_a_per_channel_affine_map_independent_of_the_batch():
    bn = BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    x = torch.randn(6, 3, 2, 2)
    alone = torch.cat([bn(x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(bn(x), alone)             # one example at a time gives the same answer
    torch.testing.assert_close(bn(x), batch_norm_inference(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))


def test_hand_written_backward_matches_autograd_and_gradcheck():
    torch.manual_seed(1)
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(4, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(4, dtype=torch.float64, requires_grad=True)
    dy = torch.randn_like(x)
    y, cache = batch_norm_forward(x, gamma, beta)        # plain torch ops: autograd can differentiate it
    y.backward(dy)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    torch.testing.assert_close(dx, x.grad)
    torch.testing.assert_close(dgamma, gamma.grad)
    torch.testing.assert_close(dbeta, beta.grad)
    module = BatchNorm(4).double()                       # the module uses the hand-written backward
    assert torch.autograd.gradcheck(lambda inp: module(inp), (x.detach().clone().requires_grad_(),))


def test_no_affine_and_no_running_stats_options():
    for kw in (dict(affine=False), dict(track_running_stats=False), dict(affine=False, track_running_stats=False)):
        ours, ref = pair(BatchNorm2d, nn.BatchNorm2d, 3, **kw)
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
        assert set(ours.state_dict()) == set(ref.state_dict())
        x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
        torch.testing.assert_close(ours(x), ref(x))
        ours.eval(), ref.eval()
        torch.testing.assert_close(ours(x), ref(x))


def test_drop_in_replacement_in_a_network_and_state_dict_both_ways():
    def net(bn2d, bn1d):
        return nn.Sequential(nn.Conv2d(1, 4, 3), bn2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                             bn1d(8), nn.ReLU(), nn.Linear(8, 3))
    torch.manual_seed(0)
    ref = net(nn.BatchNorm2d, nn.BatchNorm1d)
    ours = net(BatchNorm2d, BatchNorm1d)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 1, 8, 8)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    ref.load_state_dict(ours.state_dict())              # and back: same keys, same shapes
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_rejected_like_torch():
    with pytest.raises(ValueError):
        BatchNorm2d(3)(torch.randn(4, 3))                # 2D into a 2d norm
    with pytest.raises(ValueError):
        BatchNorm1d(3)(torch.randn(4, 3, 2, 2))          # 4D into a 1d norm
    with pytest.raises(ValueError):
        BatchNorm1d(3)(torch.randn(4, 5))                # wrong channel count
    with pytest.raises(ValueError):
        BatchNorm1d(3)(torch.randn(1, 3))                # one value per channel in training
    assert BatchNorm1d(3).eval()(torch.randn(1, 3)).shape == (1, 3)   # fine at evaluation
