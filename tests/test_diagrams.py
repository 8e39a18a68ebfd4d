"""Architecture diagrams: the traced boxes are the model's layers, in order, with their shapes."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from dlcourse.diagrams import draw, trace  # noqa: E402
from dlcourse.models.alexnet import alexnet  # noqa: E402
from dlcourse.models.googlenet import Inception, googlenet  # noqa: E402


def test_alexnet_boxes_follow_the_forward_pass():
    with torch.device("meta"):
        model = alexnet()
    boxes = trace(model, (3, 227, 227))
    assert [b.label for b in boxes[:3]] == ["conv 11x11/4", "LRN", "max 3x3/2"]
    assert [b.shape for b in boxes if b.kind == "conv"][0] == (96, 55, 55)
    assert [b.shape for b in boxes if b.kind == "fc"] == [(4096,), (4096,), (1000,)]
    assert sum(b.params for b in boxes) == sum(p.numel() for p in model.parameters())


def test_blocks_are_drawn_whole_and_skipped_heads_left_out():
    with torch.device("meta"):
        model = googlenet(aux_logits=True)
    boxes = trace(model, (3, 224, 224), blocks=(Inception,), skip=("aux",))
    blocks = [b for b in boxes if b.kind == "block"]
    assert [b.label for b in blocks][:2] == ["inception3a", "inception3b"] and len(blocks) == 9
    assert blocks[-1].shape == (1024, 7, 7)
    assert not any(b.name.startswith("aux") for b in boxes)
    assert not any(".branch" in b.name for b in boxes)       # inside a block: not drawn
    assert boxes[-2].kind == "gap" and boxes[-1].shape == (1000,)


def test_draw_returns_a_figure_and_refuses_nothing():
    with torch.device("meta"):
        boxes = trace(alexnet(), (3, 227, 227))
    fig = draw(boxes, title="AlexNet", input_size=(3, 227, 227))
    assert len(fig.axes[0].patches) == len(boxes) + 1          # one per layer plus the input
    with pytest.raises(ValueError):
        draw([])
