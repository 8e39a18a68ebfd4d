"""dlcourse.train: the loop learns, evaluation uses eval mode, histories and time-to-accuracy are sane."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.train import History, evaluate, fit, time_to_accuracy


def blobs(n=512, seed=0):
    """Two well-separated Gaussian classes in 2-D: any working loop reaches ~100%."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y.float() * 4 - 2).unsqueeze(1)
    return TensorDataset(x, y)


def loaders(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(blobs(512, 1), batch_size=32, shuffle=True, generator=g),
            DataLoader(blobs(256, 2), batch_size=64))


def mlp():
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    train, val = loaders()
    h = fit(mlp(), train, val, epochs=3, lr=1e-2, device="cpu", progress=False)
    assert isinstance(h, History) and h.epoch == [1, 2, 3] and len(h) == 3
    assert h.val_acc[-1] > 0.97 and h.train_loss[-1] < h.train_loss[0]
    assert all(b >= a for a, b in zip(h.seconds, h.seconds[1:]))     # cumulative training time
    assert set(h.as_dict()) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}


def test_evaluate_matches_manual_computation_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.5), nn.Linear(16, 2)).train()
    _, val = loaders()
    x, y = val.dataset.tensors
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    loss, acc = evaluate(model, val, device="cpu")
    assert model.training                                         # mode restored
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


def test_stop_at_accuracy_stops_early():
    torch.manual_seed(0)
    train, val = loaders()
    h = fit(mlp(), train, val, epochs=20, lr=1e-2, device="cpu", progress=False, stop_at_accuracy=0.9)
    assert len(h) < 20 and h.val_acc[-1] >= 0.9


def test_time_to_accuracy_is_seeded():
    a = time_to_accuracy(mlp, loaders(0), target=0.95, seed=3, max_epochs=5, device="cpu", progress=False, lr=1e-2)
    b = time_to_accuracy(mlp, loaders(0), target=0.95, seed=3, max_epochs=5, device="cpu", progress=False, lr=1e-2)
    assert a.reached and a.epochs == b.epochs and a.history.val_acc == b.history.val_acc
    assert 0 < a.seconds and a.final_acc >= 0.95


def test_unreachable_target_is_reported_not_reached():
    r = time_to_accuracy(mlp, loaders(0), target=1.0, seed=0, max_epochs=1, device="cpu", progress=False,
                         lr=1e-6)
    assert not r.reached and r.epochs == 1


def test_without_val_loader_history_has_nan():
    h = fit(mlp(), loaders()[0], None, epochs=1, device="cpu", progress=False)
    assert math.isnan(h.val_acc[0])


def test_progress_bar_can_be_turned_off(capsys, monkeypatch):
    fit(mlp(), loaders()[0], None, epochs=1, device="cpu", progress=True)
    assert "epoch 1" in capsys.readouterr().err                   # tqdm writes to stderr
    monkeypatch.setenv("DLCOURSE_PROGRESS", "0")
    fit(mlp(), loaders()[0], None, epochs=1, device="cpu")
    assert capsys.readouterr().err == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="epochs"):
        fit(mlp(), loaders()[0], epochs=0, device="cpu")
    with pytest.raises(ValueError, match="target accuracy"):
        time_to_accuracy(mlp, loaders(), target=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (mixed precision path)")
def test_amp_on_cuda_learns():
    torch.manual_seed(0)
    train, val = loaders()
    h = fit(mlp(), train, val, epochs=3, lr=1e-2, device="cuda", progress=False)
    assert h.val_acc[-1] > 0.97
