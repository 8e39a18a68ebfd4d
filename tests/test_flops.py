"""dlcourse.flops counts multiply-adds like the lecture's formula W_o * H_o * F * F * D * K."""
import torch
from torch import nn

from dlcourse.conv import conv_cost, output_size
from dlcourse.flops import count_macs, macs_by_module


def formula(n, f, d, k, s=1, p=0):
    o = output_size(n, f, s, p)
    return conv_cost(o, o, f, d, k)


def test_conv_layers_match_the_formula_on_meta():
    for (n, f, d, k, s, p) in [(227, 11, 3, 96, 4, 0), (27, 5, 96, 256, 1, 2), (28, 1, 256, 128, 1, 0), (33, 3, 16, 32, 2, 1)]:
        with torch.device("meta"):
            layer = nn.Conv2d(d, k, f, stride=s, padding=p)
        assert count_macs(layer, (d, n, n)) == formula(n, f, d, k, s, p)


def test_linear_grouped_and_per_module():
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    per = macs_by_module(net, (8, 6, 6))
    assert per["0"] == 6 * 6 * 3 * 3 * 4 * 8      # each filter sees 8 / 2 input channels
    assert per["2"] == 8 * 6 * 6 * 10
    assert per[""] == per["0"] + per["2"] == count_macs(net, (8, 6, 6))


def test_batch_size_does_not_change_per_image_count():
    net = nn.Linear(5, 3)
    assert count_macs(net, (5,), batch_size=4) == count_macs(net, (5,)) == 15
