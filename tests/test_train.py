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


# The mixed-precision branch of train_one_epoch (autocast to float16 + GradScaler) used to be
# tested only on CUDA, so it never ran here. PyTorch runs both on the CPU too, so the branch is
# exercised on every machine (and on CUDA as well where there is one), against the float32 path.
AMP_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", AMP_DEVICES)
def test_mixed_precision_path_computes_in_float16_and_learns(device):
    from dlcourse.train import train_one_epoch

    device = torch.device(device)
    torch.manual_seed(0)
    train, val = loaders()
    model = mlp().to(device)
    dtypes = set()
    model[0].register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    # plain SGD: unlike Adam it is not invariant to the loss scale, so a scaled gradient that
    # reached the step without being unscaled (65536 times too large) would wreck the model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16)
    for _ in range(3):
        loss, acc = train_one_epoch(model, train, optimizer, device, nn.CrossEntropyLoss(), scaler, progress=False)
    assert dtypes == {torch.float16}                  # the forward pass ran under autocast
    assert scaler.get_scale() > 1                      # the loss really was scaled
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert evaluate(model, val, device, nn.CrossEntropyLoss())[1] > 0.97
    # fit() turns mixed precision on only for CUDA (its docstring: ignored on the CPU)
    dtypes.clear()
    fit(model, train, None, epochs=1, device=device, progress=False)
    assert dtypes == {torch.float16 if device.type == "cuda" else torch.float32}
