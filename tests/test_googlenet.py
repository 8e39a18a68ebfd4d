"""NiN and GoogLeNet reference models: torchvision's published counts (and which details give
them), inception channel bookkeeping, deck 003's multiply-add example, auxiliary heads and loss."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.flops import count_macs, macs_by_module
from dlcourse.models.googlenet import (AUX_WEIGHT, GOOGLENET_CFG, GoogLeNetOutputs, Inception,
                                       InceptionSpec, NaiveInception, NiNBlock, googlenet,
                                       googlenet_loss, googlenet_torchvision, inception_small, nin,
                                       nin_small)
from suite_helpers import n_params, on_meta


# --- GoogLeNet counts ----------------------------------------------------------------------

# Szegedy et al., "Going deeper with convolutions" (CVPR 2015), Table 1, written out here (not
# read from the library's GOOGLENET_CFG) so the count below is derived independently: per module
# #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj. (The table's own "params" column is
# rounded and inconsistent with its widths, e.g. 159K for 3a where the widths give 163K weights.)
TABLE1 = {
    "inception3a": (64, 96, 128, 16, 32, 32), "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64), "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64), "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128), "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


def conv_count(c_in, c_out, k):
    return k * k * c_in * c_out + c_out           # weights + biases (the paper's network has biases, no BN)


def paper_googlenet_count(per_part=None):
    """GoogLeNet's parameters from Table 1's widths alone (no auxiliary heads).

    Stem: conv 7x7/2 3 -> 64, then the "conv 3x3/1" row: a 1x1 reduce 64 -> 64 and a 3x3 64 -> 192.
    Each inception module: four branches reading c_in (1x1; 1x1 reduce then 3x3; 1x1 reduce then
    5x5; pool then 1x1 projection); its output width, #1x1 + #3x3 + #5x5 + pool proj, is the next c_in.
    Then the linear layer 1024 -> 1000 after global average pooling (dropout and pools hold nothing).
    """
    parts = {"stem": conv_count(3, 64, 7) + conv_count(64, 64, 1) + conv_count(64, 192, 3)}
    c_in = 192
    for name, (n1, r3, n3, r5, n5, pp) in TABLE1.items():
        parts[name] = (conv_count(c_in, n1, 1) + conv_count(c_in, r3, 1) + conv_count(r3, n3, 3)
                       + conv_count(c_in, r5, 1) + conv_count(r5, n5, 5) + conv_count(c_in, pp, 1))
        c_in = n1 + n3 + n5 + pp
    assert c_in == 1024                             # Table 1: 5b's output, the linear layer's input
    parts["fc"] = c_in * 1000 + 1000
    if per_part is not None:
        per_part.update(parts)
    return sum(parts.values())


def test_paper_googlenet_count_module_by_module_from_table1():
    paper = on_meta(googlenet)
    derived = {}
    total = paper_googlenet_count(derived)
    built = {"stem": n_params(paper.stem), "fc": n_params(paper.fc),
             **{name: n_params(getattr(paper.blocks, name)) for name in TABLE1}}
    assert built == derived
    # 124,416 (stem) + 5,849,136 (nine modules) + 1,025,000 (fc)
    assert total == n_params(paper) == 124_416 + 5_849_136 + 1_025_000 == 6_998_552

def test_torchvision_counts_without_and_with_auxiliary_heads():
    assert n_params(on_meta(googlenet_torchvision)) == 6_624_904
    assert n_params(on_meta(googlenet_torchvision, aux_logits=True)) == 13_004_888


def test_which_details_reproduce_torchvision():
    tv = on_meta(googlenet_torchvision)
    convs = [m for m in tv.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)                        # BN's shift replaces the bias
    assert sum(isinstance(m, nn.BatchNorm2d) for m in tv.modules()) == len(convs)
    # the "5x5" branch is 3x3 in torchvision (kept for its pretrained weights)
    assert {tv.blocks.inception3a.branch5[1].conv.kernel_size} == {(3, 3)}
    paper = on_meta(googlenet)
    assert paper.blocks.inception3a.branch5[1].conv.kernel_size == (5, 5)
    # changing only the kernel, or only BN-for-bias, does not give 6,624,904
    assert n_params(paper) == paper_googlenet_count() == 6_998_552
    assert n_params(on_meta(lambda: googlenet_torchvision().blocks)) != n_params(on_meta(lambda: googlenet().blocks))


def test_auxiliary_heads_add_their_layers_exactly():
    with_aux = on_meta(googlenet_torchvision, aux_logits=True)
    head1, head2 = with_aux.aux["aux_4a"], with_aux.aux["aux_4d"]
    # conv 1x1 -> 128 with BN (2 per channel), FC 2048 -> 1024, FC 1024 -> 1000
    assert n_params(head1) == 512 * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 == 3_188_968
    assert n_params(head2) == 528 * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 == 3_191_016
    assert n_params(with_aux) - n_params(on_meta(googlenet_torchvision)) == 3_188_968 + 3_191_016


@pytest.mark.parametrize("builder", [googlenet, googlenet_torchvision])
def test_stage_shapes_and_outputs(builder):
    model = on_meta(builder, aux_logits=True)
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in model.blocks.named_children()]
    hooks.append(model.stem.register_forward_hook(lambda mod, i, o: shapes.__setitem__("stem", tuple(o.shape[1:]))))
    x = torch.zeros(2, 3, 224, 224, device="meta")
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out.logits.shape == out.aux1.shape == out.aux2.shape == (2, 1000)
    assert shapes["stem"] == (192, 28, 28)
    assert shapes["inception3a"] == (256, 28, 28) and shapes["inception3b"] == (480, 28, 28)
    assert shapes["inception4a"] == (512, 14, 14) and shapes["inception4d"] == (528, 14, 14)
    assert shapes["inception4e"] == (832, 14, 14) and shapes["inception5b"] == (1024, 7, 7)
    for h in hooks:
        h.remove()
    assert model.eval()(x).shape == (2, 1000)                     # heads are dropped at inference


def test_table1_has_nine_modules_and_its_output_widths():
    rows = [r for r in GOOGLENET_CFG if r != "M"]
    assert len(rows) == 9
    assert [s.out_channels for _, s in rows] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


def test_googlenet_depth_is_22_layers_with_parameters():
    # the paper counts layers with parameters on the longest path: 3 in the stem, 2 per
    # inception module (reduce, then 3x3 or 5x5), and the classifier: 3 + 9 * 2 + 1 = 22
    stem = [m for m in on_meta(googlenet).stem.modules() if isinstance(m, nn.Conv2d)]
    assert len(stem) + 2 * 9 + 1 == 22


# --- inception modules and their cost ------------------------------------------------------

def test_deck003_naive_module_output_and_multiply_adds():
    module = on_meta(NaiveInception, 256, 128, 192, 96)
    assert module.out_channels == 672
    assert module(torch.zeros(1, 256, 28, 28, device="meta")).shape == (1, 672, 28, 28)
    # W_o * H_o * F * F * D * K summed over the three convolutions (the pool costs none)
    formula = sum(28 * 28 * f * f * 256 * k for f, k in [(1, 128), (3, 192), (5, 96)])
    assert count_macs(module, (256, 28, 28)) == formula == 854_196_224


def test_reduced_module_cost_beside_the_naive_one():
    spec = InceptionSpec(c1=128, c3_reduce=64, c3=192, c5_reduce=64, c5=96, pool_proj=64)
    module = on_meta(Inception, 256, spec)
    assert module(torch.zeros(1, 256, 28, 28, device="meta")).shape == (1, 480, 28, 28)
    per = macs_by_module(module, (256, 28, 28))
    hw = 28 * 28
    assert per["branch1"] == hw * 256 * 128
    assert per["branch3"] == hw * 256 * 64 + hw * 9 * 64 * 192
    assert per["branch5"] == hw * 256 * 64 + hw * 25 * 64 * 96
    assert per["branch_pool"] == hw * 256 * 64
    assert per[""] == 271_351_808                       # under a third of the naive module's
    assert n_params(module) == 346_720 and n_params(on_meta(NaiveInception, 256, 128, 192, 96)) == 1_089_952


def test_inception_branches_are_concatenated_in_order():
    torch.manual_seed(0)
    spec = InceptionSpec(3, 2, 4, 2, 5, 6)
    module = Inception(7, spec).eval()
    x = torch.randn(2, 7, 9, 9)
    out = module(x)
    assert out.shape == (2, 18, 9, 9)
    parts = [module.branch1(x), module.branch3(x), module.branch5(x), module.branch_pool(x)]
    torch.testing.assert_close(out, torch.cat(parts, 1))
    # the pool branch is a 3x3 stride-1 max-pool followed by a 1x1 projection
    proj = module.branch_pool[1].conv
    ref = F.relu(F.conv2d(F.max_pool2d(x, 3, 1, 1), proj.weight, proj.bias))
    torch.testing.assert_close(parts[3], ref)


# --- NiN -----------------------------------------------------------------------------------

def test_nin_block_is_conv_then_two_1x1():
    block = NiNBlock(3, 96, 11, 4)
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(11, 11), (1, 1), (1, 1)]
    assert n_params(block) == (11 * 11 * 3 * 96 + 96) + 2 * (96 * 96 + 96)
    assert sum(isinstance(m, nn.ReLU) for m in block) == 3


def test_nin_ends_in_class_maps_and_global_average_pooling():
    model = on_meta(nin)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert model.eval()(torch.zeros(2, 3, 224, 224, device="meta")).shape == (2, 1000)
    small = nin_small().eval()                                   # eval: dropout before the last block off
    x = torch.rand(3, 1, 28, 28)
    maps = small.net[:-2](x)                                     # before global pooling and flatten
    assert maps.shape == (3, 10, 6, 6)
    torch.testing.assert_close(small(x), maps.mean((2, 3)))


# --- auxiliary loss and the small variant ---------------------------------------------------

def test_aux_loss_weight_is_point_three():
    assert AUX_WEIGHT == 0.3
    torch.manual_seed(0)
    logits, a1, a2 = torch.randn(3, 4, 10).unbind(0)
    y = torch.tensor([1, 2, 3, 4])
    out = GoogLeNetOutputs(logits, a1, a2)
    expected = F.cross_entropy(logits, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
    torch.testing.assert_close(googlenet_loss(out, y), expected)
    torch.testing.assert_close(googlenet_loss(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(googlenet_loss(GoogLeNetOutputs(logits, a1), y),
                               F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(a1, y))


def test_small_inception_net_with_and_without_its_head():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    plain = inception_small()
    assert plain.train()(x).shape == (4, 10)
    with_aux = inception_small(aux_logits=True)
    out = with_aux.train()(x)
    assert isinstance(out, GoogLeNetOutputs) and out.aux1.shape == (4, 10) and out.aux2 is None
    assert with_aux.eval()(x).shape == (4, 10)
    googlenet_loss(with_aux.train()(x), torch.zeros(4, dtype=torch.long)).backward()
    assert with_aux.aux["aux_3b"].fc2.weight.grad is not None
