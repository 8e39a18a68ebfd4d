"""The grader's convergence task (autograder.glyphs): well formed, secret-seeded, learnable, and
worthless to weights trained elsewhere."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from autograder.glyphs import glyph_task
from dlcourse.models import lenet5
from suite_helpers import require_data


def test_a_task_has_mnists_layout_balanced_classes_and_depends_only_on_its_seed():
    task = glyph_task(7, 300, 100)
    assert task.x_train.shape == (300, 1, 28, 28) and task.x_held.shape == (100, 1, 28, 28)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert 0.0 <= float(task.x_train.min()) and float(task.x_train.max()) <= 1.0
    assert torch.equal(task.y_train.bincount(minlength=10), torch.full((10,), 30))
    again = glyph_task(7, 300, 100)
    assert torch.equal(task.x_train, again.x_train) and torch.equal(task.y_held, again.y_held)
    other = glyph_task(8, 300, 100)
    assert not torch.equal(task.x_train, other.x_train)
    # every example is drawn: no two share their pixels, and the ink covers a glyph, not the canvas
    assert len({hash(x.numpy().tobytes()) for x in task.x_train}) == 300
    ink = (task.x_train > 0.5).float().mean(dim=(1, 2, 3))
    assert 0.03 < float(ink.min()) and float(ink.max()) < 0.4


def _train(model, x, y, epochs, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = order[i:i + 32]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def _accuracy(model, x, y):
    return float((model(x).argmax(1) == y).float().mean())


def test_honest_training_learns_the_classes_and_mnist_weights_do_not_carry_over():
    """A LeNet trained on the task's training examples classifies its held-out examples well; a
    LeNet trained on MNIST (what pasted-in weights would be), with its outputs matched to the
    task's labels by voting on the training examples, stays far below every assignment's target."""
    torch.manual_seed(0)
    task = glyph_task(11, 3000, 1000)
    honest = _train(lenet5(), task.x_train, task.y_train, epochs=2)
    assert _accuracy(honest, task.x_held, task.y_held) > 0.9
    require_data(["mnist-test-images", "mnist-test-labels"])
    from dlcourse import datasets

    x, y = datasets.mnist_tensors("test", progress=False)
    torch.manual_seed(0)
    elsewhere = _train(lenet5(), x[:3000], y[:3000], epochs=2)
    assert _accuracy(elsewhere, x[5000:6000], y[5000:6000]) > 0.9      # it does know MNIST
    votes = torch.zeros(10, 10)
    votes.index_put_((task.y_train, elsewhere(task.x_train).argmax(1)), torch.ones(len(task.y_train)), accumulate=True)
    mapping = votes.argmax(1)                                          # task label -> the output that predicts it
    predicted = (elsewhere(task.x_held).argmax(1)[:, None] == mapping[None, :]).float().argmax(1)
    assert float((predicted == task.y_held).float().mean()) < 0.5
