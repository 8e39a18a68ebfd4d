"""dlcourse.activations against PyTorch: forward values, autograd derivatives, losses, dropout."""
import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse import activations as A

# Random inputs in float64, including large magnitudes, exact zeros and the kinks.
X = torch.cat([
    torch.randn(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5,
    torch.tensor([0.0, 1e-8, -1e-8, 30.0, -30.0, 700.0, -700.0, 1e3, -1e3, 1e4, -1e4], dtype=torch.float64),
])

TORCH_REFERENCE = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.1),
    "elu": F.elu,
    "swish": F.silu,
}


def autograd_derivative(f, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_forward_matches_torch(name):
    f, _ = A.ACTIVATIONS[name]
    torch.testing.assert_close(f(X), TORCH_REFERENCE[name](X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_analytic_derivative_matches_autograd_of_torch(name):
    _, df = A.ACTIVATIONS[name]
    torch.testing.assert_close(df(X), autograd_derivative(TORCH_REFERENCE[name], X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_own_forward_is_differentiable_without_nan(name):
    f, df = A.ACTIVATIONS[name]
    g = autograd_derivative(f, X)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, df(X), rtol=1e-10, atol=1e-12)


def test_tanh_is_a_scaled_sigmoid():
    torch.testing.assert_close(2 * torch.sigmoid(2 * X) - 1, torch.tanh(X))
    torch.testing.assert_close(A.tanh(X), torch.tanh(X))


def test_leaky_relu_uses_the_lecture_slope():
    x = torch.tensor([-10.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(A.leaky_relu(x), torch.maximum(0.1 * x, x))


def test_swish_tends_to_relu_for_large_beta():
    torch.testing.assert_close(A.swish(X[:200], beta=1e4), F.relu(X[:200]), atol=1e-3, rtol=0)


def test_maxout_forward_and_input_gradient():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    b = torch.randn(3, 4, generator=g, dtype=torch.float64)
    y = A.maxout(x, w, b)
    ref = torch.stack([F.linear(x, w[k], b[k]) for k in range(3)]).amax(dim=0)
    torch.testing.assert_close(y, ref)
    go = torch.randn(7, 4, generator=g, dtype=torch.float64)
    (gx,) = torch.autograd.grad(ref, x, go)
    torch.testing.assert_close(A.maxout_grad_input(x.detach(), w, b, go), gx)
    # two pieces (identity, zero) reproduce ReLU
    eye = torch.eye(5, dtype=torch.float64)
    relu_like = A.maxout(x.detach(), torch.stack([eye, 0 * eye]), torch.zeros(2, 5, dtype=torch.float64))
    torch.testing.assert_close(relu_like, F.relu(x.detach()))
    with pytest.raises(ValueError, match="maxout shapes"):
        A.maxout(x, w, b[:, :2])


LOGIT_CASES = {
    "random": torch.randn(16, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3,
    "extreme": torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=torch.float64),
    "float32_large": torch.tensor([[1000.0, 0.0, -1000.0], [88.0, 89.0, 90.0]], dtype=torch.float32),
}


@pytest.mark.parametrize("case", sorted(LOGIT_CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(case, reduction):
    x = LOGIT_CASES[case]
    t = torch.arange(x.shape[0]) % x.shape[1]
    ours = A.cross_entropy(x, t, reduction=reduction)
    ref = F.cross_entropy(x, t, reduction=reduction)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, ref)


def test_cross_entropy_gradient_matches_torch():
    x = LOGIT_CASES["extreme"].clone().requires_grad_(True)
    t = torch.tensor([1, 0, 2, 1])
    (g1,) = torch.autograd.grad(A.cross_entropy(x, t), x)
    (g2,) = torch.autograd.grad(F.cross_entropy(x, t), x)
    torch.testing.assert_close(g1, g2)


def test_naive_cross_entropy_breaks_on_extreme_logits():
    x, t = LOGIT_CASES["extreme"], torch.tensor([1, 0, 2, 1])
    assert not torch.isfinite(A.naive_cross_entropy(x, t, reduction="none")).all()
    small = LOGIT_CASES["random"]
    tt = torch.zeros(small.shape[0], dtype=torch.long)
    torch.testing.assert_close(A.naive_cross_entropy(small, tt), F.cross_entropy(small, tt))


def test_cross_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits must have shape"):
        A.cross_entropy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must be integer"):
        A.cross_entropy(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        A.cross_entropy(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), reduction="avg")


@pytest.mark.parametrize("case", sorted(LOGIT_CASES))
def test_softmax_and_log_softmax_match_torch(case):
    x = LOGIT_CASES[case]
    torch.testing.assert_close(A.softmax(x), torch.softmax(x, dim=-1))
    torch.testing.assert_close(A.log_softmax(x), torch.log_softmax(x, dim=-1))
    torch.testing.assert_close(A.softmax(x.T, dim=0), torch.softmax(x.T, dim=0))


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_hinge_loss_is_c_times_multi_margin_loss(margin):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(12, 6, generator=g, dtype=torch.float64)
    t = torch.randint(0, 6, (12,), generator=g)
    for reduction in ("mean", "sum", "none"):
        ref = F.multi_margin_loss(s, t, margin=margin, reduction=reduction) * s.shape[1]
        torch.testing.assert_close(A.multiclass_hinge_loss(s, t, margin=margin, reduction=reduction), ref)


def test_hinge_loss_hand_example():
    # scores of 3 classes, correct class 0: max(0, 5.1-3.2+1) + max(0, -1.7-3.2+1) = 2.9
    s = torch.tensor([[3.2, 5.1, -1.7]], dtype=torch.float64)
    torch.testing.assert_close(A.multiclass_hinge_loss(s, torch.tensor([0])), torch.tensor(2.9, dtype=torch.float64))


def test_dropout_train_statistics():
    p_keep, n = 0.3, 200_000
    x = torch.full((n,), 2.0, dtype=torch.float64)
    y = A.dropout(x, p_keep, training=True, generator=torch.Generator().manual_seed(4))
    kept = y != 0
    # kept fraction within 5 standard deviations of p_keep
    assert abs(kept.double().mean().item() - p_keep) < 5 * math.sqrt(p_keep * (1 - p_keep) / n)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / p_keep))
    assert abs(y.mean().item() - 2.0) < 0.05  # expectation preserved (inverted scaling)


def test_dropout_is_seeded_and_identity_in_eval():
    x = torch.randn(50, 20, generator=torch.Generator().manual_seed(5))
    a = A.dropout(x, 0.5, generator=torch.Generator().manual_seed(6))
    b = A.dropout(x, 0.5, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert torch.equal(A.dropout(x, 0.5, training=False), x)
    assert torch.equal(A.dropout(x, 1.0, training=True), x)
    m = A.Dropout(0.8)
    m.eval()
    assert torch.equal(m(x), x)
    m.train()
    assert (m(x) == 0).any()


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, True, "0.5"])
def test_dropout_rejects_invalid_p(bad):
    with pytest.raises(ValueError, match="p_keep"):
        A.dropout(torch.ones(3), bad)
