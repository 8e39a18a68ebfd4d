"""AlexNet and ZFNet reference models: published parameter counts (built on `meta`), per-stage
shapes, local response normalisation against PyTorch and deck 000's worked table."""
import pytest
import torch
from torch import nn

from dlcourse.flops import count_macs
from dlcourse.models.alexnet import (AlexNet, LocalResponseNorm, alexnet, alexnet_small,
                                     alexnet_torchvision, alexnet_two_stream, alexnet_unpadded,
                                     cfgs, count_weights, zfnet)
from suite_helpers import on_meta


def layer_counts(convs, fcs, biases=True):
    """Parameters per layer from the layer shapes alone: a k x k convolution from c_in to c_out
    maps holds k*k*c_in*c_out weights (+ c_out biases); a fully connected layer n_in*n_out (+ n_out)."""
    return ([k * k * c_in * c_out + biases * c_out for c_in, c_out, k in convs]
            + [n_in * n_out + biases * n_out for n_in, n_out in fcs])


def model_layer_counts(model, biases=True):
    """The model's parameters per convolution and fully connected layer, in order."""
    return [count_weights(m, biases=biases) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def stage_sizes(model, image_size, in_channels=3):
    """Spatial size after every convolution and pooling of `features`, in order."""
    sizes = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: sizes.append((n, o.shape[-1])))
             for n, m in model.features.named_children() if n.startswith(("conv", "pool"))]
    model.eval()(torch.zeros(1, in_channels, image_size, image_size, device="meta"))
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("builder, published", [
    (alexnet, 62_378_344),                 # SYLLABUS ch. 4: single stream, 227x227
    (alexnet_two_stream, 60_965_224),      # the paper's two-GPU network (grouped CONV2/4/5)
    (alexnet_torchvision, 61_100_840),     # torchvision's variant ("one weird trick")
])
def test_published_parameter_counts(builder, published):
    assert count_weights(on_meta(builder)) == published


def test_two_streams_group_exactly_conv2_conv4_conv5():
    single, grouped = on_meta(alexnet), on_meta(alexnet_two_stream)
    groups = {n: m.groups for n, m in grouped.features.named_children() if isinstance(m, nn.Conv2d)}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    # each grouped layer holds half the weights (biases unchanged): the whole difference
    saved = sum(count_weights(getattr(single.features, n), biases=False) // 2 for n in ("conv2", "conv4", "conv5"))
    assert count_weights(single) - count_weights(grouped) == saved == 1_413_120


def test_stage_shapes_at_227():
    sizes = stage_sizes(on_meta(alexnet), 227)
    assert sizes == [("conv1", 55), ("pool1", 27), ("conv2", 27), ("pool2", 13), ("conv3", 13),
                     ("conv4", 13), ("conv5", 13), ("pool5", 6)]
    model = on_meta(alexnet)
    assert model.feature_shape == (256, 6, 6)
    assert model.classifier.fc6.in_features == 256 * 6 * 6


def test_torchvision_variant_takes_224_and_other_sizes():
    model = on_meta(alexnet_torchvision)
    assert [s for _, s in stage_sizes(model, 224)] == [55, 27, 27, 13, 13, 13, 13, 6]
    out = model.eval()(torch.zeros(2, 3, 256, 256, device="meta"))   # adaptive pool: any size >= 63
    assert out.shape == (2, 1000)


def test_zfnet_first_layer_and_shapes():
    model = on_meta(zfnet)
    conv1 = model.features.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.out_channels) == ((7, 7), (2, 2), 96)
    # Zeiler & Fergus, Fig. 3: 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 13 -> 6
    sizes = [s for _, s in stage_sizes(model, 224)]
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]
    # Zeiler & Fergus, Fig. 3: (maps in, maps out, kernel) of the five convolutions, all dense
    # (one stream), then FC6 on pool5's maps (256 x 6 x 6, the last size above), 4096, 4096 and
    # the 1000 ImageNet classes.
    convs = [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
    fcs = [(256 * sizes[-1] ** 2, 4096), (4096, 4096), (4096, 1000)]
    derived = layer_counts(convs, fcs)
    assert model_layer_counts(model) == derived                  # layer by layer, biases included
    # 14,208 + 614,656 + 885,120 + 1,327,488 + 884,992 + 37,752,832 + 16,781,312 + 4,097,000
    assert sum(derived) == count_weights(model) == 62_357_608
    # cross-check: strides do not change a count, so ZFNet is AlexNet (one stream) with CONV1's
    # 11x11 filters made 7x7: (11^2 - 7^2) * 3 * 96 = 20,736 fewer weights
    assert count_weights(on_meta(alexnet)) - count_weights(model) == (11 ** 2 - 7 ** 2) * 3 * 96


def test_deck001_unpadded_weight_count():
    # deck 001 computes AlexNet without padding and without biases and ends with "27.55M", close to
    # (but not) the sum of its rounded per-layer figures, 27.561M (book/04-alexnet/architecture.ipynb,
    # "Erratum"); the exact
    # count follows from the paper's filters and the unpadded sizes:
    # 227 -(11/4)-> 55 -pool-> 27 -(5)-> 23 -pool-> 11 -(3)-> 9 -(3)-> 7 -(3)-> 5 -pool-> 2
    model = on_meta(alexnet_unpadded)
    sizes = [s for _, s in stage_sizes(model, 227)]

    def out(size, kernel, stride=1):  # (W - F) / S + 1 with no padding
        return (size - kernel) // stride + 1
    assert sizes == [out(227, 11, 4), out(55, 3, 2), out(27, 5), out(23, 3, 2), out(11, 3), out(9, 3), out(7, 3),
                     out(5, 3, 2)] == [55, 27, 23, 11, 9, 7, 5, 2]
    convs = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]   # Krizhevsky et al., fig. 2
    fcs = [(256 * sizes[-1] ** 2, 4096), (4096, 4096), (4096, 1000)]                  # FC6 reads 2x2x256 = 1,024
    derived = layer_counts(convs, fcs, biases=False)
    assert model_layer_counts(model, biases=False) == derived
    # 34,848 + 614,400 + 884,736 + 1,327,104 + 884,736 + 4,194,304 + 16,777,216 + 4,096,000
    assert sum(derived) == count_weights(model, biases=False) == 28_813_344


def test_conv1_macs_match_the_lecture_formula():
    # W_o * H_o * F * F * D * K for CONV1: 55 * 55 * 11 * 11 * 3 * 96
    from dlcourse.flops import macs_by_module
    per = macs_by_module(on_meta(alexnet), (3, 227, 227))
    assert per["features.conv1"] == 55 * 55 * 11 * 11 * 3 * 96
    assert per["features.conv2"] == 27 * 27 * 5 * 5 * 96 * 256
    assert per["classifier.fc6"] == 256 * 6 * 6 * 4096
    # two streams: CONV2 filters see 48 of the 96 maps, so half the multiply-adds
    assert macs_by_module(on_meta(alexnet_two_stream), (3, 227, 227))["features.conv2"] == per["features.conv2"] // 2


# --- local response normalisation ----------------------------------------------------------

def deck000_activities(dtype=torch.float64):
    """Deck 000's table: activities 4, 16, 100, 0, 17, 10, 16 at channels 2..8 (0 and 1 are zero)."""
    a = torch.zeros(1, 9, 1, 1, dtype=dtype)
    a[0, 2:9, 0, 0] = torch.tensor([4.0, 16, 100, 0, 17, 10, 16], dtype=dtype)
    return a


def test_lrn_reproduces_deck000_table():
    # k=2, n=5, alpha=1e-4, beta=0.75, as on the slide; alpha multiplies the plain sum
    b = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(deck000_activities())[0, :, 0, 0]
    assert [round(v, 2) for v in b[2:7].tolist()] == [1.74, 6.97, 43.26, 0.0, 7.34]
    # the slide's last two rows (5.78, 9.25) depend on channels 9 and 10, which it does not show
    assert [round(v, 2) for v in b[7:9].tolist()] == [5.81, 9.29]


def test_lrn_matches_the_formula_term_by_term():
    a = deck000_activities()[0, :, 0, 0]
    b = LocalResponseNorm()(deck000_activities())[0, :, 0, 0]
    for i in range(9):
        window = a[max(0, i - 2): min(8, i + 2) + 1]
        assert b[i].item() == pytest.approx(a[i].item() / (2 + 1e-4 * (window ** 2).sum().item()) ** 0.75)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_lrn_equals_torch_with_alpha_times_n(size):
    torch.manual_seed(size)
    x = torch.randn(3, 11, 6, 5, dtype=torch.float64) * 30
    ours = LocalResponseNorm(size=size, alpha=1e-4, beta=0.75, k=2.0)
    theirs = nn.LocalResponseNorm(size, alpha=1e-4 * size, beta=0.75, k=2.0)   # torch divides alpha by n
    torch.testing.assert_close(ours(x), theirs(x))
    # with the same alpha the two differ: the convention matters
    assert not torch.allclose(ours(x), nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=2.0)(x)) or size == 1


def test_lrn_gradients_and_other_ranks():
    torch.manual_seed(0)
    x = (torch.randn(2, 7, 4, 4, dtype=torch.float64) * 20).requires_grad_()
    torch.autograd.gradcheck(LocalResponseNorm(), (x,))
    x3 = torch.randn(2, 6, 9, dtype=torch.float64) * 20          # (B, C, L) works too
    torch.testing.assert_close(LocalResponseNorm()(x3), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x3))
    with pytest.raises(ValueError):
        LocalResponseNorm(size=0)


# --- small variant and configuration table -------------------------------------------------

def test_small_alexnet_shapes_and_training_mode():
    torch.manual_seed(0)
    model = alexnet_small()
    assert [s for _, s in stage_sizes(on_meta(alexnet_small), 28, 1)] == [28, 13, 13, 6, 6, 6, 6, 2]
    x = torch.rand(4, 1, 28, 28)
    assert model(x).shape == (4, 10)
    model.eval()
    torch.testing.assert_close(model(x), model(x))                # dropout off in eval mode
    model.train()
    assert not torch.equal(model(x), model(x))                    # and on in training
    kinds = {type(m) for m in model.modules()}
    assert LocalResponseNorm in kinds and nn.Dropout in kinds


def test_every_configuration_builds_with_its_own_input_size():
    for name, cfg in cfgs.items():
        with torch.device("meta"):
            model = AlexNet(cfg, num_classes=7)
        x = torch.zeros(2, cfg.in_channels, cfg.image_size, cfg.image_size, device="meta")
        assert model.eval()(x).shape == (2, 7), name


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        on_meta(alexnet, image_size=31)


def test_macs_of_the_whole_network_match_the_formula():
    # (output size, kernel, input depth, filters) of CONV1..CONV5, then the three FC layers
    convs = [(55, 11, 3, 96), (27, 5, 96, 256), (13, 3, 256, 384), (13, 3, 384, 384), (13, 3, 384, 256)]
    expected = sum(o * o * f * f * d * k for o, f, d, k in convs) + 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert count_macs(on_meta(alexnet), (3, 227, 227)) == expected == 1_135_256_096
