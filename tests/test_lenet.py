"""LeNet reference models: published parameter counts, per-layer shapes, the C3 table, agreement with torch ops."""
import pytest
import torch
import torch.nn.functional as F

from dlcourse.models import lenet1, lenet4, lenet5, lenet5_1998
from dlcourse.models.lenet import C3_TABLE, SparseConv2d, Subsampling
from dlcourse.summary import summary
from suite_helpers import n_params


def test_modern_lenet5_has_61706_parameters():
    assert n_params(lenet5()) == 61_706                      # SYLLABUS ch. 3, computed with PyTorch


def test_lenet5_1998_per_layer_counts_match_the_paper():
    m = lenet5_1998()
    published = {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}  # LeCun et al. 1998
    assert {name: n_params(getattr(m, name)) for name in published} == published
    # the RBF output is replaced by a linear 84 -> 10 layer: 84 * 10 + 10 (the slide's 840 misses the bias)
    assert n_params(m.output) == 84 * 10 + 10 == 850


def test_c3_table_is_table_one_of_the_paper():
    assert len(C3_TABLE) == 16 and sum(map(len, C3_TABLE)) == 60
    assert [len(r) for r in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    # rows of Table I (S2 map i -> the C3 maps that read it), transcribed from the paper
    table_rows = {0: {0, 4, 5, 6, 9, 10, 11, 12, 14, 15}, 1: {0, 1, 5, 6, 7, 10, 11, 12, 13, 15},
                  2: {0, 1, 2, 6, 7, 8, 11, 13, 14, 15}, 3: {1, 2, 3, 6, 7, 8, 9, 12, 14, 15},
                  4: {2, 3, 4, 7, 8, 9, 10, 12, 13, 15}, 5: {3, 4, 5, 8, 9, 10, 11, 13, 14, 15}}
    for i, maps in table_rows.items():
        assert {j for j, inputs in enumerate(C3_TABLE) if i in inputs} == maps


@pytest.mark.parametrize("builder, shapes", [
    (lenet1, [(4, 24, 24), (4, 12, 12), (8, 8, 8), (8, 4, 4), (10,)]),
    (lenet4, [(4, 28, 28), (4, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (10,)]),
    (lenet5, [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (84,), (10,)]),
])
def test_per_layer_output_shapes(builder, shapes):
    rows = summary(builder(), print_table=False)
    kept = [r.output_shape for r in rows if r.kind in ("Conv2d", "MaxPool2d", "AvgPool2d", "Linear")]
    assert kept == shapes


def test_lenet5_1998_shapes():
    rows = {r.name: r.output_shape for r in summary(lenet5_1998(), print_table=False)}
    assert rows["C1"] == (6, 28, 28) and rows["S2"] == (6, 14, 14) and rows["C3"] == (16, 10, 10)
    assert rows["S4"] == (16, 5, 5) and rows["C5"] == (120, 1, 1) and rows["F6"] == (84,) and rows["output"] == (10,)


def test_sparse_conv_equals_masked_dense_conv():
    torch.manual_seed(0)
    layer = SparseConv2d(6, C3_TABLE)
    x = torch.randn(3, 6, 14, 14)
    mask = torch.zeros(16, 6, 1, 1)
    for j, inputs in enumerate(C3_TABLE):
        mask[j, list(inputs)] = 1
    dense = layer.dense_weight()
    assert torch.equal(dense, dense * mask)                    # zeros where not connected
    ref = F.conv2d(x, dense, layer.bias)
    torch.testing.assert_close(layer(x), ref)
    # perturbing S2 map i changes exactly the C3 maps that Table I connects to it
    for i in range(6):
        x2 = x.clone()
        x2[:, i] += 1.0
        changed = {j for j in range(16) if not torch.allclose(layer(x2)[:, j], layer(x)[:, j])}
        assert changed == {j for j, inputs in enumerate(C3_TABLE) if i in inputs}


def test_sparse_conv_rejects_a_bad_table():
    with pytest.raises(ValueError, match="row 1"):
        SparseConv2d(6, ((0,), (7,)))


def test_subsampling_is_sum_times_coefficient_plus_bias():
    torch.manual_seed(0)
    s = Subsampling(3)
    with torch.no_grad():
        s.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
        s.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.randn(2, 3, 8, 8)
    ref = F.avg_pool2d(x, 2) * 4 * s.weight.view(1, 3, 1, 1) + s.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(s(x), ref)
    assert n_params(s) == 6


def test_modern_lenet5_matches_functional_torch():
    torch.manual_seed(0)
    m = lenet5().eval()
    x = torch.randn(4, 1, 28, 28)
    f, c = m.features, m.classifier
    h = F.max_pool2d(F.relu(F.conv2d(x, f.C1.weight, f.C1.bias, padding=2)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, f.C3.weight, f.C3.bias)), 2).flatten(1)
    h = F.relu(F.linear(h, c.F5.weight, c.F5.bias))
    h = F.relu(F.linear(h, c.F6.weight, c.F6.bias))
    torch.testing.assert_close(m(x), F.linear(h, c.output.weight, c.output.bias))


def test_classic_variant_uses_sigmoid_and_average_pooling():
    m = lenet5(activation="sigmoid", pool="avg")
    kinds = [type(layer).__name__ for layer in m.features]
    assert kinds == ["Conv2d", "Sigmoid", "AvgPool2d"] * 2
    assert n_params(m) == 61_706                               # pooling/activation add no parameters


def test_bad_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        lenet5(activation="swish")


def test_lenet5_1998_can_learn_a_batch():
    torch.manual_seed(0)
    m = lenet5_1998()
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = F.cross_entropy(m(x), y).item()
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < first / 4                             # gradients reach C3's packed weights too
