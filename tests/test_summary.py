"""dlcourse.summary: per-layer output shapes and parameter counts agree with PyTorch."""
import torch
from torch import nn

from dlcourse.models import lenet5, lenet5_1998
from dlcourse.summary import format_table, summary


def test_total_equals_numel_sum_for_every_lenet():
    for model in (lenet5(), lenet5_1998(), lenet5(activation="sigmoid", pool="avg")):
        rows = summary(model, print_table=False)
        assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())


def test_shapes_match_intermediate_tensors():
    torch.manual_seed(0)
    model = lenet5()
    x = torch.randn(2, 1, 28, 28)
    rows = {r.name: r.output_shape for r in summary(model, print_table=False)}
    h = model.features.C1(x)
    assert rows["features.C1"] == tuple(h.shape[1:])
    assert rows["features.S4"] == tuple(model.features(x).shape[1:]) == (16, 5, 5)


def test_shared_module_is_counted_once_and_container_params_are_kept():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.scale = nn.Parameter(torch.ones(4))       # held by the container, not a leaf

        def forward(self, x):
            return self.lin(self.lin(x)) * self.scale

    model = Odd()
    rows = summary(model, input_size=(4,), print_table=False)
    assert [r.name for r in rows] == ["lin", "lin", "(held by containers)"]
    assert [r.params for r in rows] == [20, 0, 4]
    assert sum(r.params for r in rows) == 24


def test_mode_is_restored_and_frozen_params_are_not_trainable():
    model = lenet5().train()
    for p in model.features.parameters():
        p.requires_grad_(False)
    rows = summary(model, print_table=False)
    assert model.training
    assert sum(r.trainable for r in rows) == 61_706 - (156 + 2_416)


def test_printed_table(capsys):
    summary(lenet5())
    out = capsys.readouterr().out
    assert "features.C1" in out and "[6, 28, 28]" in out and "61,706" in out
    assert format_table([]).splitlines()[-2].strip().endswith("0")
