"""VGG reference models: the paper's configurations as a table, every published parameter count
(built on `meta`), and the per-layer memory/parameter table against the lecture's VGG-16 numbers."""
import pytest
import torch
from torch import nn

from dlcourse.flops import count_macs
from dlcourse.models.alexnet import LocalResponseNorm
from dlcourse.models.vgg import VGG, cfgs, layer_table, vgg16, vgg_small, weight_layers
from suite_helpers import n_params


def on_meta(cfg, **kwargs):
    with torch.device("meta"):
        return VGG(cfgs[cfg], **kwargs)


@pytest.mark.parametrize("cfg, published, layers", [
    ("A", 132_863_336, 11), ("A-LRN", 132_863_336, 11), ("B", 133_047_848, 13),
    ("C", 133_638_952, 16), ("D", 138_357_544, 16), ("E", 143_667_240, 19),
])
def test_published_counts_and_weight_layers(cfg, published, layers):
    # SYLLABUS ch. 5 (computed with PyTorch); the paper's Table 2 rounds to 133/133/134/138/144 M
    model = on_meta(cfg)
    assert n_params(model) == published
    assert weight_layers(cfgs[cfg]) == layers
    assert round(published / 1e6) == {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}[cfg]
    assert model.eval()(torch.zeros(2, 3, 224, 224, device="meta")).shape == (2, 1000)


def test_configuration_c_has_three_1x1_convolutions_and_d_none():
    def kernels(cfg):
        return [m.kernel_size[0] for m in on_meta(cfg).features if isinstance(m, nn.Conv2d)]
    assert kernels("C").count(1) == 3 and kernels("D").count(1) == 0
    assert len(kernels("C")) == len(kernels("D")) == 13
    # C's extra parameters over B are exactly its three 1x1 layers
    assert n_params(on_meta("C")) - n_params(on_meta("B")) == (256 * 256 + 256) + 2 * (512 * 512 + 512)


def test_a_lrn_has_one_parameter_free_normalisation():
    lrn = [m for m in on_meta("A-LRN").features if isinstance(m, LocalResponseNorm)]
    assert len(lrn) == 1 and n_params(lrn[0]) == 0


def test_only_3x3_stride1_pad1_convs_and_2x2_stride2_pools():
    model = on_meta("E")
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            assert (m.kernel_size, m.stride, m.padding) == ((3, 3), (1, 1), (1, 1))
        if isinstance(m, nn.MaxPool2d):
            assert (m.kernel_size, m.stride) == (2, 2)
    assert model.feature_shape == (512, 7, 7)


# --- per-layer table (deck 000 / deck 003's VGG-16 walk-through) ----------------------------

@pytest.fixture(scope="module")
def table():
    with torch.device("meta"):
        return layer_table(vgg16())


def test_table_rows_are_the_slides_rows(table):
    assert [r.kind for r in table] == (["input"] + ["conv"] * 2 + ["pool"] + ["conv"] * 2 + ["pool"]
                                       + (["conv"] * 3 + ["pool"]) * 3 + ["fc"] * 3)
    # the slide's memory column: 224*224*3, 224*224*64, ..., 7*7*512, 4096, 4096, 1000
    slide_memory = [224 * 224 * 3, 224 * 224 * 64, 224 * 224 * 64, 112 * 112 * 64, 112 * 112 * 128,
                    112 * 112 * 128, 56 * 56 * 128] + [56 * 56 * 256] * 3 + [28 * 28 * 256] \
        + [28 * 28 * 512] * 3 + [14 * 14 * 512] * 4 + [7 * 7 * 512, 4096, 4096, 1000]
    assert [r.activations for r in table] == slide_memory
    assert all(r.bytes == 4 * r.activations for r in table)          # float32


def test_table_weights_match_the_slides_without_biases(table):
    convs = [r for r in table if r.kind == "conv"]
    weights = [r.params - r.output_shape[0] for r in convs]          # minus one bias per filter
    assert weights[:7] == [1_728, 36_864, 73_728, 147_456, 294_912, 589_824, 589_824]
    assert weights[7] == 3 * 3 * 256 * 512 == 1_179_648             # deck 000's table prints 117,648
    assert weights[8:] == [2_359_296] * 5


def test_first_fc_layer_holds_most_parameters(table):
    fc6 = next(r for r in table if r.name.endswith("fc6"))
    assert fc6.params == 7 * 7 * 512 * 4096 + 4096 == 102_764_544        # "~102.8M"
    assert fc6.params - 4096 == 102_760_448                              # the slide's weights-only figure
    total = sum(r.params for r in table)
    assert total == 138_357_544
    assert sum(r.params for r in table if r.kind == "conv") == 14_714_688   # "~16M" on deck 001's slide is loose
    assert fc6.params / total > 0.74


def test_activation_memory_totals(table):
    # The slides print "TOTAL memory: 24M * 4 bytes ~ 96MB / image", but their own memory column
    # sums to 15.2M values (61 MB at float32). Counting every ReLU output as a separate tensor
    # too (no in-place ReLU) gives 28.8M values. Neither accounting gives 24M.
    values = sum(r.activations for r in table)
    assert values == 15_237_608
    assert sum(r.bytes for r in table) == 60_950_432
    relu_outputs = sum(r.activations for r in table if r.kind in ("conv", "fc") and not r.name.endswith("fc8"))
    assert values + relu_outputs == 28_793_320


def test_table_of_a_cpu_model_does_not_allocate_or_change_it():
    model = vgg_small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = layer_table(model, (1, 28, 28))
    assert [r.output_shape for r in rows if r.kind == "pool"] == [(16, 14, 14), (32, 7, 7), (64, 3, 3)]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    assert sum(r.params for r in rows) == n_params(model)


def test_vgg16_multiply_adds():
    # 15.47 G with the FC layers; the ResNet paper rounds VGG-16 to 15.3 G
    assert count_macs(on_meta("D"), (3, 224, 224)) == 15_470_264_320


def test_three_3x3_layers_cost_27_c2_against_49_c2():
    c = 64
    with torch.device("meta"):
        stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
        single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    assert n_params(stack) == 27 * c * c and n_params(single) == 49 * c * c
    # same receptive field: a single input pixel reaches a 7x7 output window through both
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    ones3 = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(3)])
    for m in ones3:
        nn.init.ones_(m.weight)
    reach = (ones3(x)[0, 0] != 0).nonzero()
    assert reach.min(0).values.tolist() == [4, 4] and reach.max(0).values.tolist() == [10, 10]


def test_small_vgg_forward_and_classifier_width():
    model = vgg_small()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert model.feature_shape == (64, 3, 3) and model.classifier.fc6.in_features == 576


def test_too_small_image_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        on_meta("D", image_size=16)
