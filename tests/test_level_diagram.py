"""dlcourse.level_diagram: the steps it traces are the modules and the functional poolings of the
forward pass, in call order, at the level their output's height says; the drawing has a box per step."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from torch import nn  # noqa: E402

from dlcourse.level_diagram import draw_levels, trace_levels  # noqa: E402
from dlcourse.models import segmentation as S  # noqa: E402
from dlcourse.models.densenet import DenseBlock  # noqa: E402

KINDS = {S.ConvBlock: "conv", DenseBlock: "dense", S.TransitionDown: "down", nn.ConvTranspose2d: "up",
         nn.Conv2d: "score"}


def test_unet_steps_follow_the_forward_pass():
    model = S.unet(4, cfg="unet_small", in_channels=3)
    steps = trace_levels(model, (3, 32, 32), KINDS)
    assert [s.name for s in steps] == ["down.0", "pool1", "down.1", "pool2", "down.2", "pool3", "bottom", "up.0",
                                       "decode.0", "up.1", "decode.1", "up.2", "decode.2", "classifier"]
    assert [s.level for s in steps] == [0, 1, 1, 2, 2, 3, 3, 2, 2, 1, 1, 0, 0, 0]
    assert steps[-1].shape == (4, 32, 32) and steps[-1].kind == "score"
    assert {s.kind for s in steps if s.name.startswith("pool")} == {"down"}
    # the parameters are each module's own; functional poolings have none
    assert steps[0].params == sum(p.numel() for p in model.down[0].parameters()) and steps[1].params == 0


def test_segnet_unpoolings_and_fcn_names_and_labels():
    segnet = trace_levels(S.segnet(4, cfg="small"), (3, 32, 32), KINDS)
    names = [s.name for s in segnet]
    assert names.count("pool5") == 1 and [n for n in names if n.startswith("unpool")] == [f"unpool{i}" for i in
                                                                                          range(1, 6)]
    assert next(s for s in segnet if s.name == "pool5").level == 5
    assert next(s for s in segnet if s.name == "unpool5").level == 0
    fcn = trace_levels(S.fcn8s(4, cfg="small"), (3, 32, 32), {"head": "conv", **KINDS}, labels={"head": "fc6, fc7"})
    head = next(s for s in fcn if s.name == "head")
    assert head.kind == "conv" and head.label == "fc6, fc7" and head.level == 5
    assert not any(s.name.startswith("head.") for s in fcn)                # outermost modules only
    assert fcn[-1].name == "up_final" and fcn[-1].level == 0


def test_poolings_inside_a_traced_module_are_not_steps_of_their_own():
    steps = trace_levels(S.fc_densenet("small", 4), (3, 32, 32), {"stem": "conv", **KINDS})
    assert not any(s.name.startswith("pool") for s in steps)                 # TransitionDown's nn.MaxPool2d
    assert [s.name for s in steps if s.kind == "down"] == ["transitions.0", "transitions.1", "transitions.2"]


def test_the_drawing_has_a_box_per_step_and_rejects_nothing_to_draw():
    model = S.unet(4, cfg="unet_small", in_channels=3)
    steps = trace_levels(model, (3, 32, 32), KINDS)
    fig = draw_levels(steps, [("down.0", "decode.2", "concatenate")], title="U-Net", input_size=(3, 32, 32))
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(steps) + 1                                       # and the input
    assert any(t.get_text() == "concatenate" for t in fig.axes[0].texts)
    plt.close(fig)
    with pytest.raises(ValueError):
        draw_levels([])
    with pytest.raises(KeyError):
        draw_levels(steps, [("down.0", "nowhere", "x")])
    assert torch.is_grad_enabled()                                            # tracing left autograd as it was
