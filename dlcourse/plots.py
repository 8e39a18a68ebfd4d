"""Learning curves: loss and accuracy per epoch, for one run or several runs side by side.

`learning_curves({"ReLU + max": h1, "sigmoid + avg": h2})` draws two panels (loss,
accuracy); each run is one colour, training dashed and validation solid.
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt

from dlcourse.train import History

__all__ = ["learning_curves"]


def learning_curves(histories: History | Mapping[str, History], title: str | None = None, ax=None):
    """Plot training/validation loss and accuracy against epochs; return the matplotlib Figure."""
    if isinstance(histories, History):
        histories = {"model": histories}
    if not histories:
        raise ValueError("learning_curves needs at least one History")
    if ax is None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        ax_loss, ax_acc = ax
        fig = ax_loss.figure
    for i, (name, h) in enumerate(histories.items()):
        colour = f"C{i}"
        ax_loss.plot(h.epoch, h.train_loss, "--", color=colour, label=f"{name} (train)")
        ax_loss.plot(h.epoch, h.val_loss, "-o", color=colour, ms=3, label=f"{name} (val)")
        ax_acc.plot(h.epoch, h.train_acc, "--", color=colour, label=f"{name} (train)")
        ax_acc.plot(h.epoch, h.val_acc, "-o", color=colour, ms=3, label=f"{name} (val)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for a in (ax_loss, ax_acc):
        a.grid(alpha=0.3)
        a.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
