"""DenseNet reference models: DenseNet-121's published count (exact, on meta), the layer, block and
transition contracts, concatenation (not addition), channel bookkeeping k0 + L k and the
L (L + 1) / 2 connections, compression, stage shapes, and the small variant."""
import pytest
import torch
from torch import nn

from dlcourse.models import densenet as D
from dlcourse.models.resnet import stage_shapes
from suite_helpers import n_params


def test_densenet121_has_7978856_parameters():
    with torch.device("meta"):
        m = D.densenet121()
    assert n_params(m) == 7_978_856                                     # SYLLABUS ch. 9 (torchvision)
    assert m.growth_rate == 32 and m.block_config == (6, 12, 24, 16)


def test_other_table_one_networks_match_torchvision():
    with torch.device("meta"):
        assert n_params(D.densenet169()) == 14_149_480
        assert n_params(D.densenet201()) == 20_013_928


def test_densenet121_has_121_weight_layers():
    with torch.device("meta"):
        m = D.densenet121()
    convs = sum(isinstance(x, nn.Conv2d) for x in m.modules())
    linears = sum(isinstance(x, nn.Linear) for x in m.modules())
    assert convs + linears == 121 == 2 * sum(m.block_config) + (len(m.block_config) - 1) + 2


def test_dense_layer_is_bn_relu_1x1_to_4k_then_bn_relu_3x3_to_k():
    layer = D.DenseLayer(10, growth_rate=6)
    assert layer.conv1.kernel_size == (1, 1) and layer.conv1.out_channels == 24
    assert layer.conv2.kernel_size == (3, 3) and layer.conv2.out_channels == 6
    assert layer.conv1.bias is None and layer.conv2.bias is None
    torch.manual_seed(0)
    layer.eval()
    x = torch.randn(2, 10, 5, 5)
    with torch.no_grad():
        ref = layer.conv2(torch.relu(layer.norm2(layer.conv1(torch.relu(layer.norm1(x))))))
        torch.testing.assert_close(layer(x), ref)
    assert layer(x).shape == (2, 6, 5, 5)


@pytest.mark.parametrize("k0, k, L", [(16, 12, 4), (64, 32, 6), (3, 5, 1), (24, 8, 10)])
def test_block_channels_and_connections(k0, k, L):
    block = D.DenseBlock(L, k0, k)
    assert block.out_channels == k0 + L * k
    assert D.block_channels(block) == [k0 + i * k for i in range(L + 1)]
    assert D.block_connections(block) == L * (L + 1) // 2
    assert block(torch.randn(2, k0, 4, 4)).shape == (2, k0 + L * k, 4, 4)


def test_block_concatenates_its_input_unchanged_and_each_layers_output():
    torch.manual_seed(0)
    block = D.DenseBlock(3, 5, 4).eval()
    x = torch.randn(2, 5, 6, 6)
    with torch.no_grad():
        y = block(x)
        assert torch.equal(y[:, :5], x)                                  # the block input is passed through
        layers = list(block.values())
        f1 = layers[0](x)
        f2 = layers[1](torch.cat([x, f1], 1))
        f3 = layers[2](torch.cat([x, f1, f2], 1))
        torch.testing.assert_close(y, torch.cat([x, f1, f2, f3], 1))


@pytest.mark.parametrize("compression, expected", [(0.5, 128), (1.0, 256), (0.3, 76)])
def test_transition_compresses_and_halves(compression, expected):
    m = D.DenseNet(growth_rate=32, block_config=(6, 2), num_init_features=64, compression=compression, num_classes=5)
    t = m.features.transition1
    assert t.conv.in_channels == 256 and t.conv.out_channels == expected        # floor(theta * (64 + 6 * 32))
    assert t(torch.randn(1, 256, 8, 8)).shape == (1, expected, 4, 4)
    assert isinstance(t.pool, nn.AvgPool2d) and t.pool.kernel_size == 2 and t.pool.stride == 2


def test_densenet121_stage_shapes():
    with torch.device("meta"):
        m = D.densenet121()
    shapes = stage_shapes(m.features, (3, 224, 224))
    assert shapes["pool0"] == (64, 56, 56)
    assert shapes["denseblock1"] == (256, 56, 56) and shapes["transition1"] == (128, 28, 28)
    assert shapes["denseblock2"] == (512, 28, 28) and shapes["transition2"] == (256, 14, 14)
    assert shapes["denseblock3"] == (1024, 14, 14) and shapes["transition3"] == (512, 7, 7)
    assert shapes["denseblock4"] == (1024, 7, 7)


def test_state_dict_keys_follow_torchvision_names():
    with torch.device("meta"):
        keys = set(D.densenet121().state_dict())
    for k in ("features.conv0.weight", "features.norm0.running_mean", "features.denseblock1.denselayer1.norm1.weight",
              "features.denseblock1.denselayer6.conv2.weight", "features.transition1.conv.weight",
              "features.denseblock4.denselayer16.conv2.weight", "features.norm5.bias", "classifier.weight"):
        assert k in keys


def test_small_variant_on_mnist_sized_input():
    m = D.densenet_small()
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert [b.out_channels for b in m.blocks] == [24 + 4 * 12, 36 + 48, 42 + 48]
    assert n_params(m) < 150_000
    with pytest.raises(ValueError):
        D.DenseNet(compression=0.0)
