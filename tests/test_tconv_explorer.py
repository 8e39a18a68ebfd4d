"""The transposed-convolution explorer (chapter 12): its sizes are nn.ConvTranspose2d's, its coverage
maps are what F.conv_transpose2d gives for ones through ones, the pattern it names is the one the
kernel and stride imply, and its controls are wired with jslinks so that it responds in the static
book."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from ipywidgets.widgets.widget_link import Link
from torch import nn

from dlcourse import tconv_explorer as tx

SETTINGS = list(itertools.product(tx.KERNELS, tx.STRIDES, tx.PADDINGS))


def _torch_coverage(n: int, k: int, s: int, p: int) -> torch.Tensor:
    return F.conv_transpose2d(torch.ones(1, 1, n, n, dtype=torch.float64), torch.ones(1, 1, k, k, dtype=torch.float64),
                              stride=s, padding=p)[0, 0].round().long()


@pytest.mark.parametrize("k, s, p", SETTINGS)
def test_every_view_s_size_and_map_are_pytorch_s(k, s, p):
    view = tx.compute_view(k, s, p)
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, device="meta")
    out = layer(torch.empty(1, 1, tx.INPUT, tx.INPUT, device="meta")).shape[-1]
    assert view["size"] == out
    want = _torch_coverage(tx.INPUT, k, s, p)
    assert torch.equal(torch.tensor(view["coverage"]), want)
    # the counts along one axis: the 2-D map is their outer product
    line = torch.tensor(view["row"])
    assert torch.equal(line[:, None] * line[None, :], want)
    assert view["most"] == int(want.max())


def _expected_pattern(k: int, s: int) -> tuple[str, list[int]]:
    """Away from the border a position r (mod s) receives one tap per kernel index t = r (mod s):
    ceil((k - r) / s) of them, 0 once r >= k."""
    counts = [max(0, -(-(k - r) // s)) for r in range(s)]
    if min(counts) == 0:
        return "gaps", counts
    return ("even" if k % s == 0 else "checkerboard"), counts


@pytest.mark.parametrize("k, s, p", SETTINGS)
def test_the_named_pattern_is_the_one_kernel_and_stride_imply(k, s, p):
    view = tx.compute_view(k, s, p)
    pattern, counts = _expected_pattern(k, s)
    assert view["pattern"] == pattern
    # the period starts at the first interior position, k - 1 - p after the crop (at least 0)
    lo, hi = view["interior"]
    assert lo == max(k - 1 - p, 0) and hi >= lo + s - 1
    start = lo + p                                          # that position in the uncropped output
    assert view["period"] == [counts[(start + j) % s] for j in range(s)]
    assert sorted(set(view["period"])) == sorted(set(counts))


def test_settings_without_an_output_say_so():
    view = tx.compute_view(1, 1, 2, size=2)                  # (2 - 1) - 4 + 1 = -2: nothing left
    assert view["size"] is None and "coverage" not in view
    assert "no output" in tx.render_view(view)
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1), padding=2)


def test_rendered_view_states_the_formula_the_size_and_the_pattern():
    view = tx.compute_view(3, 2, 1)
    html = tx.render_view(view)
    assert "(6 &minus; 1) &middot; 2 &minus; 2 &middot; 1 + 3 = 11" in html and "output 11 x 11" in html
    assert "checkerboard" in html and "2, 1 taps in turn" in html
    assert "<img class='tx-map' src='data:image/png;base64," in html and "alt='" in html
    assert "even overlap" in tx.render_view(tx.compute_view(4, 2, 1))
    assert "gaps" in tx.render_view(tx.compute_view(1, 3, 0))
    assert len(tx.map_uri(view["coverage"], view["most"])) < 1500               # a tiny PNG


def test_explorer_precomputes_every_view_and_links_its_controls():
    box = tx.tconv_explorer(kernels=(2, 3), strides=(1, 2), paddings=(0, 1, 2))
    assert len(box._dlcourse_views) == 2 * 2 * 3
    assert [(v["kernel"], v["stride"], v["padding"]) for v in box._dlcourse_views] == \
        list(itertools.product((2, 3), (1, 2), (0, 1, 2)))
    # one link for the kernel's stack, two for the stride stacks, 2 x 2 for the padding stacks
    assert all(type(link) is Link for link in box._dlcourse_links) and len(box._dlcourse_links) == 1 + 2 + 4
    kernel, stride, padding = box._dlcourse_controls
    assert (kernel.value, stride.value, padding.value) == ("3", "2", "0")      # opens on the checkerboard
    assert [c.description for c in box._dlcourse_controls] == ["kernel k", "stride s", "padding p"]
    full = tx.tconv_explorer()
    assert len(full._dlcourse_views) == len(SETTINGS)
    with pytest.raises(ValueError):
        tx.tconv_explorer(kernels=())


def test_the_chapter_s_upsampling_layers_are_where_the_page_puts_them():
    """The page sorts FCN's, U-Net's and the tiramisu's upsampling layers by their overlap."""
    from dlcourse.models import segmentation as S

    layers = {"fcn 2x": S.fcn8s(4, cfg="small").up2[0], "fcn 8x": S.fcn8s(4, cfg="small").up_final,
              "unet": S.unet(4, cfg="unet_small", in_channels=3).up[0], "tiramisu": S.fc_densenet("small", 4).up[0]}
    patterns = {name: tx.compute_view(m.kernel_size[0], m.stride[0], m.padding[0])["pattern"]
                for name, m in layers.items()}
    assert patterns == {"fcn 2x": "even", "fcn 8x": "even", "unet": "even", "tiramisu": "checkerboard"}
