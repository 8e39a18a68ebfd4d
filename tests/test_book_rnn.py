"""Chapter 10's prose against the code: what the pages say about the models, the profiles, the data
and the explorer is what the library does (the numbers the pages print are computed by their cells)."""
from __future__ import annotations

import pathlib
import re

import nbformat
import torch

from dlcourse.models import rnn as R
from dlcourse.text import preprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "10-rnn"


def _markdown(name: str) -> str:
    nb = nbformat.read(str(BOOK / name), as_version=4)
    return re.sub(r"\s+", " ", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))


def _code(name: str) -> str:
    nb = nbformat.read(str(BOOK / name), as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_the_profiles_are_the_ones_the_chapter_describes():
    index = re.sub(r"\s+", " ", (BOOK / "index.md").read_text())
    lm = _markdown("char-lm.ipynb")
    fast, full = R.cfgs["fast"]["model"], R.cfgs["full"]["model"]
    assert "a one-layer GRU for a few seconds on a CPU" in index
    assert fast["cell"] == "gru" and fast.get("num_layers", 1) == 1 and fast["embed_dim"] is None
    assert "The fast profile's model is a GRU with one-hot inputs" in lm
    assert "two LSTM layers of 512 units" in index and "two LSTM layers of 512 units over a learned embedding" in lm
    assert (full["cell"], full["num_layers"], full["hidden_size"], full["impl"]) == ("lstm", 2, 512, "torch")
    assert full["embed_dim"]
    # the page trains and evaluates with the profile's own settings, not copies of them
    code = _code("char-lm.ipynb")
    assert "char_lm(V, cfg.profile)" in code and "**TRAIN)" in code and "split_corpus(tm.corpus, held_out=0.1)" in code
    assert "The last tenth of the book is held out" in lm


def test_the_vocabulary_sentence_matches_the_preprocessing():
    lm = _markdown("char-lm.ipynb")
    assert "26 letters and the space, plus a token `<unk>`" in lm
    kept = set(preprocess("The Time-Machine, 1895! An INVENTION; (by H. G. Wells) é"))
    assert kept <= set("abcdefghijklmnopqrstuvwxyz ")


def test_the_explorer_prose_matches_its_settings():
    lm = _markdown("char-lm.ipynb")
    code = _code("char-lm.ipynb")
    assert "five most likely next characters" in lm and "a continuation of 120 characters" in lm
    assert "num_chars=120" in code
    import inspect

    from dlcourse import sampling_explorer as sx
    assert inspect.signature(sx.compute_view).parameters["top"].default == 5


def test_parameter_ratios_stated_on_the_gates_page():
    text = _markdown("gates.ipynb")
    assert "so three quarters of the LSTM's parameters" in text
    count = lambda m: sum(p.numel() for p in m.parameters())
    for I, H in [(5, 8), (64, 256), (28, 64)]:
        assert 4 * count(R.GRU(I, H)) == 3 * count(R.LSTM(I, H))
        assert count(R.LSTM(I, H)) == 4 * count(R.RNN(I, H)) and count(R.GRU(I, H)) == 3 * count(R.RNN(I, H))


def test_lstm_at_default_initialisation_loses_its_gradient_and_an_open_forget_gate_keeps_it():
    """The recurrence page's conclusion, at the page's sizes (T = 60, H = 32, double precision)."""
    from dlcourse.datasets import adding_problem
    x, y = adding_problem(64, 60, seed=0)
    x, y = x.transpose(0, 1).double(), y.double()
    torch.manual_seed(0)
    readout = torch.nn.Linear(32, 1).double()
    loss = lambda h: ((readout(h).squeeze(-1) - y) ** 2).mean()
    text = _markdown("recurrence.ipynb")
    assert "its gradient vanishes as fast as the vanilla RNN's" in text
    ratios = {}
    for name, bias in [("lstm", None), ("open", 3.0)]:
        torch.manual_seed(0)
        cell = R.LSTMCell(2, 32).double()
        if bias is not None:
            with torch.no_grad():
                R.split_gates(cell.bias_ih, "LSTM")["f"].fill_(bias)
                R.split_gates(cell.bias_hh, "LSTM")["f"].zero_()
        norms = R.gradient_norms_through_time(cell, x, loss)
        ratios[name] = float(norms[0] / norms[-1])
    assert ratios["lstm"] < 1e-8 and ratios["open"] > 1e-3
