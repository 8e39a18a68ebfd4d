"""The figures chapters 1 and 3 draw (dlcourse.plots): what they label comes from the model and the tensors."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dlcourse.models import lenet1, lenet5, lenet5_1998  # noqa: E402
from dlcourse.plots import feature_map_diagram, multichannel_conv_figure  # noqa: E402


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_feature_map_diagram_labels_every_stage_with_the_models_shapes():
    fig = feature_map_diagram(lenet5())
    texts = _texts(fig)
    for label in ("input", "C1", "S2", "C3", "S4", "F5", "F6", "output",
                  "1@28x28", "6@28x28", "6@14x14", "16@10x10", "16@5x5", "120", "84", "10",
                  "5x5 conv\npad 2", "2x2\nmax pool", "full\nconnection"):
        assert label in texts, label
    plt.close(fig)
    old = _texts(feature_map_diagram(lenet5_1998()))
    assert "120@1x1" in old and "5x5 conv\n(sparse)" in old and "2x2 sub-\nsampling" in old
    assert "4@24x24" in _texts(feature_map_diagram(lenet1()))  # no padding: 28 - 4
    plt.close("all")


def test_multichannel_figure_adds_up_to_the_library_value():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (3, 5, 5), generator=g).double()
    w = torch.randint(-1, 2, (2, 3, 3, 3), generator=g).double()
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)
    fig = multichannel_conv_figure(x, w, b, i=1, j=2, out_channel=1, stride=1, padding=1)
    value = F.conv2d(x[None], w, b, padding=1)[0, 1, 1, 2].item()
    partial = [(F.pad(x, (1, 1, 1, 1))[c, 1:4, 2:5] * w[1, c]).sum().item() for c in range(3)]
    texts = _texts(fig)
    assert any(t.endswith(f"= {value:g}") and "bias -2" in t for t in texts), texts
    for p in partial:
        assert f"sum of\nproducts\n= {p:g}" in texts
    plt.close(fig)
