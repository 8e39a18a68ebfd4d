"""ResNet reference models: published parameter counts (exact, on meta), the stage table, block
contracts and shapes, projection shortcuts, multiply-adds against the paper, the successors
(pre-activation, Wide ResNet, ResNeXt) and stochastic depth's training/evaluation behaviour."""
import pytest
import torch
from torch import nn

from dlcourse.flops import count_macs
from dlcourse.models import resnet as R
from suite_helpers import n_params, on_meta


# torchvision's counts (SYLLABUS ch. 8)
PUBLISHED = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# He et al. 2016, Table 1: multiply-adds ("FLOPs") at 224x224, in units of 10^9
PAPER_GMACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}


@pytest.mark.parametrize("depth", sorted(PUBLISHED))
def test_published_parameter_counts_exactly(depth):
    assert n_params(on_meta(R.resnet, depth=depth)) == PUBLISHED[depth]
    # the stride placement changes no parameter
    assert n_params(on_meta(R.resnet, depth=depth, stride_in_1x1=True)) == PUBLISHED[depth]


def test_stage_table_gives_the_named_depths():
    assert {d: R.weight_layers(*R.cfgs[d]) for d in R.cfgs} == {d: d for d in R.cfgs}
    assert R.cfgs[50][1] == R.cfgs[34][1] and R.cfgs[34][0] is R.BasicBlock and R.cfgs[50][0] is R.Bottleneck
    assert R.BasicBlock.expansion == 1 and R.Bottleneck.expansion == 4


@pytest.mark.parametrize("depth", sorted(PAPER_GMACS))
def test_multiply_adds_match_the_paper_with_its_stride_placement(depth):
    paper = count_macs(on_meta(R.resnet, depth=depth, stride_in_1x1=True)) / 1e9
    assert abs(paper - PAPER_GMACS[depth]) < 0.1, f"ResNet-{depth}: {paper:.2f} G vs {PAPER_GMACS[depth]} G"
    v15 = count_macs(on_meta(R.resnet, depth=depth)) / 1e9
    if depth >= 50:   # torchvision's stride on the 3x3 conv costs about 0.23 G more
        assert 0.2 < v15 - paper < 0.26
    else:
        assert v15 == paper


@pytest.mark.parametrize("depth, shapes", [
    (18, {"conv1": (64, 112, 112), "maxpool": (64, 56, 56), "layer1": (64, 56, 56), "layer2": (128, 28, 28),
          "layer3": (256, 14, 14), "layer4": (512, 7, 7), "avgpool": (512, 1, 1), "fc": (1000,)}),
    (50, {"conv1": (64, 112, 112), "maxpool": (64, 56, 56), "layer1": (256, 56, 56), "layer2": (512, 28, 28),
          "layer3": (1024, 14, 14), "layer4": (2048, 7, 7), "avgpool": (2048, 1, 1), "fc": (1000,)}),
])
def test_stage_output_shapes_of_table_one(depth, shapes):
    got = R.stage_shapes(on_meta(R.resnet, depth=depth), (3, 224, 224))
    assert {k: got[k] for k in shapes} == shapes


@pytest.mark.parametrize("block", [R.BasicBlock, R.Bottleneck, R.PreActBasicBlock, R.PreActBottleneck])
@pytest.mark.parametrize("in_ch, planes, stride", [(16, 16, 1), (16, 32, 2), (64, 16, 1), (8, 8, 2)])
def test_block_contract_and_projection_when_shape_changes(block, in_ch, planes, stride):
    b = block(in_ch, planes, stride)
    out_ch = planes * block.expansion
    y = b(torch.randn(2, in_ch, 8, 8))
    assert y.shape == (2, out_ch, 8 // stride, 8 // stride)
    needs_projection = stride != 1 or in_ch != out_ch
    assert (b.downsample is not None) == needs_projection
    if needs_projection:
        conv = next(m for m in b.downsample.modules() if isinstance(m, nn.Conv2d))
        assert conv.kernel_size == (1, 1) and conv.stride == (stride, stride)


def test_basic_block_is_relu_of_branch_plus_identity():
    torch.manual_seed(0)
    b = R.BasicBlock(4, 4).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        branch = b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x)))))
        torch.testing.assert_close(b(x), torch.relu(branch + x))
        # a block whose branch is zeroed is the identity on non-negative inputs (ReLU after the add)
        b.bn2.weight.zero_(); b.bn2.bias.zero_()
        xp = x.relu()
        torch.testing.assert_close(b(xp), xp)


def test_plain_blocks_have_no_shortcut_and_pad_shortcuts_no_parameters():
    plain = R.cifar_resnet(20, plain=True)
    assert all(blk.plain and blk.downsample is None for stage in plain.stages for blk in stage)
    padded, projected = R.cifar_resnet(20), R.cifar_resnet(20, shortcut="projection")
    assert n_params(plain) == n_params(padded)                     # option A adds no parameters
    extra = n_params(projected) - n_params(padded)
    assert extra == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)         # two 1x1 convs + their BNs
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = R.PadShortcut(3, 5, 2)(x)
    assert y.shape == (2, 5, 2, 2) and torch.equal(y[:, :3], x[:, :, ::2, ::2]) and not y[:, 3:].any()


@pytest.mark.parametrize("depth, published_m", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_cifar_resnets_match_the_paper(depth, published_m):
    # He et al. 2016, Table 6 (option A shortcuts); the paper rounds to two significant digits
    m = R.cifar_resnet(depth)
    assert R.weight_layers(R.BasicBlock, m.layers) == depth
    assert round(n_params(m) / 1e6, 2 if published_m < 1 else 1) == published_m
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert R.cifar_resnet(depth, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)   # MNIST-sized


def test_successors_torchvision_counts_and_paper_figures():
    assert n_params(on_meta(R.wide_resnet50_2)) == 68_883_240        # torchvision
    assert n_params(on_meta(R.resnext50_32x4d)) == 25_028_904        # torchvision; 25.0M in Xie et al. Table 1
    assert round(count_macs(on_meta(R.resnext50_32x4d)) / 1e9, 1) == 4.2     # Xie et al. Table 1
    # Zagoruyko and Komodakis, Table 4 (millions of parameters)
    for (d, k), published in {(40, 4): 8.9, (16, 8): 11.0, (28, 10): 36.5}.items():
        assert round(n_params(on_meta(R.wide_resnet_cifar, depth=d, k=k)) / 1e6, 1) == published
    # ResNeXt's grouped 3x3 convolution: 32 groups, 128 channels in the first stage
    conv = on_meta(R.resnext50_32x4d).layer1[0].conv2
    assert conv.groups == 32 and conv.in_channels == conv.out_channels == 128


def test_preactivation_block_is_identity_plus_branch_with_nothing_after():
    torch.manual_seed(0)
    b = R.PreActBasicBlock(4, 4).eval()
    x = torch.randn(2, 4, 6, 6)                                     # negative values survive: no ReLU after the add
    with torch.no_grad():
        a = torch.relu(b.bn1(x))
        torch.testing.assert_close(b(x), x + b.conv2(torch.relu(b.bn2(b.conv1(a)))))
    net = R.preact_resnet18()
    assert net.final_bn is not None and net(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)


def test_stochastic_depth_drops_in_training_and_scales_at_evaluation():
    torch.manual_seed(0)
    p = 0.3
    b = R.BasicBlock(4, 4, survival_prob=p)
    x = torch.rand(1, 4, 5, 5)                                      # non-negative, as after a ReLU
    with torch.no_grad():
        b.eval()
        branch = b.branch(x)
        torch.testing.assert_close(b(x), torch.relu(p * branch + x))           # scaled by p, not dropped
        assert torch.equal(b(x), b(x))                                           # deterministic
        b.train()
        outs = [b(x) for _ in range(400)]
    dropped = sum(torch.equal(o, x) for o in outs)                   # dropped: the block is the identity
    assert abs(dropped / 400 - (1 - p)) < 0.08
    # gradients flow through a dropped block (identity) in training
    b.train()
    x2 = torch.rand(1, 4, 5, 5, requires_grad=True)
    torch.manual_seed(1)
    sum(b(x2).sum() for _ in range(5)).backward()
    assert x2.grad is not None


def test_linear_decay_rule():
    probs = R.linear_survival_probs(54, 0.5)                        # ResNet-110 on CIFAR: 54 blocks
    assert probs[0] == pytest.approx(1 - 0.5 / 54) and probs[-1] == pytest.approx(0.5)
    m = R.cifar_resnet(110, stochastic_depth=0.5)
    got = [blk.survival_prob for stage in m.stages for blk in stage]
    assert got == pytest.approx(probs)


def test_zero_init_residual_makes_blocks_start_as_identity():
    m = R.resnet18(zero_init_residual=True)
    assert all(not blk.bn2.weight.any() for stage in m.stages for blk in stage)


def test_state_dict_keys_follow_torchvision_names():
    keys = set(on_meta(R.resnet50).state_dict())
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
              "layer1.0.downsample.1.weight", "layer4.2.bn3.bias", "fc.weight", "fc.bias"):
        assert k in keys


def test_bad_arguments():
    with pytest.raises(ValueError):
        R.resnet(26)
    with pytest.raises(ValueError):
        R.cifar_resnet(21)
    with pytest.raises(ValueError):
        R.BasicBlock(4, 4, survival_prob=0.0)
    with pytest.raises(ValueError):
        R.BasicBlock(4, 8, shortcut="sideways")
