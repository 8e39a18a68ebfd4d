"""Recurrent networks written from their equations: RNN, LSTM and GRU cells, multi-layer and
bidirectional layers over whole sequences, and a character language model.

Sources:
- Elman, "Finding structure in time", Cognitive Science 1990: the simple recurrent network.
- Hochreiter and Schmidhuber, "Long short-term memory", Neural Computation 1997; the forget
  gate is from Gers, Schmidhuber and Cummins, "Learning to forget", 2000.
- Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical
  machine translation", EMNLP 2014: the gated recurrent unit.
- Schuster and Paliwal, "Bidirectional recurrent neural networks", IEEE TSP 1997.

One step of each cell, for an input x (B, I) and the previous hidden state h (B, H):

    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)              (or relu)
    LSTM  i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)           input gate
          f  = sigmoid(W_if x + b_if + W_hf h + b_hf)           forget gate
          g  = tanh(W_ig x + b_ig + W_hg h + b_hg)              candidate cell content
          o  = sigmoid(W_io x + b_io + W_ho h + b_ho)           output gate
          c' = f * c + i * g                                    the cell: additive memory
          h' = o * tanh(c')
    GRU   r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)           reset gate
          z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)           update gate
          n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))        candidate
          h' = (1 - z) * n + z * h                              z = 1 keeps the old state

Conventions are PyTorch's (and cuDNN's), so that a cell here loads `nn.RNNCell`,
`nn.LSTMCell` or `nn.GRUCell`'s state dict as it is and `load_torch_weights` copies a whole
`nn.RNN` / `nn.LSTM` / `nn.GRU`:
- The gates' matrices are stacked row-wise into one `weight_ih` (G*H, I) and one `weight_hh`
  (G*H, H), in the order of `GATES` (i, f, g, o for the LSTM; r, z, n for the GRU), so one
  matrix product computes every gate.
- Two biases, b_ih and b_hh, where the papers have one. For the RNN and the LSTM only their
  sum matters; in the GRU's candidate b_hn sits inside the reset gate's product.
- Departure from Cho et al. 2014: the paper resets the state before the matrix product,
  n = tanh(W_in x + W_hn (r * h)); PyTorch and cuDNN multiply after it, r * (W_hn h + b_hn),
  which lets the hidden product for all three gates be one matrix multiplication. We follow
  PyTorch. (Some texts also swap z and 1 - z in the last line; that is the same family of
  functions with the gate's meaning inverted, but not the same function for given weights.)
- Layers take (T, B, I) input, or (B, T, I) with batch_first=True, and return the outputs of
  the last layer (T, B, D*H) and the final states (num_layers*D, B, H) indexed
  layer*D + direction (D = 2 when bidirectional); the LSTM's state is the pair (h, c).
- Initialisation: every parameter uniform in (-1/sqrt(H), 1/sqrt(H)), as in PyTorch. (A
  common refinement, a forget-gate bias of 1, is left to the caller.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GATES", "RNNCell", "LSTMCell", "GRUCell", "unroll", "gradient_norms_through_time", "RNN", "LSTM", "GRU",
    "load_torch_weights", "from_torch", "split_gates", "CharLM", "cfgs", "char_lm",
]

# mode -> names of the gates stacked in weight_ih / weight_hh, top to bottom
GATES = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


def split_gates(stacked: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """Name the row blocks of a stacked weight or bias: split_gates(lstm.weight_ih, "LSTM")["f"]."""
    return dict(zip(GATES[mode], stacked.chunk(len(GATES[mode]), dim=0)))


# ------------------------------------------------------------------------------ cells
class _Cell(nn.Module):
    """What the three cells share: stacked parameters, initialisation, the input half of a step.

    Contract: `input_projection(x)` is W_ih x + b_ih for any leading shape (it does not depend on
    the state, so a layer computes it for all T steps in one product); `step(xw, state)` does
    the sequential rest and returns the new state; `hidden(state)` is the output h.
    `forward(x, state)` = step(input_projection(x), state), as nn.*Cell's forward.
    """

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        g = len(GATES[self.mode])
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = nn.Parameter(torch.empty(g * hidden_size, input_size))    # (G*H, I)
        self.weight_hh = nn.Parameter(torch.empty(g * hidden_size, hidden_size))   # (G*H, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(g * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)                  # (..., G*H)

    def hidden_projection(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight_hh, self.bias_hh)                  # (B, G*H)

    def zero_state(self, batch: int, like: torch.Tensor):
        return like.new_zeros(batch, self.hidden_size)

    @staticmethod
    def hidden(state):
        return state

    def forward(self, x: torch.Tensor, state=None):
        if state is None:
            state = self.zero_state(x.shape[0], x)
        return self.step(self.input_projection(x), state)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """Elman's cell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). State: h (B, H)."""

    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias)
        self.mode = "RNN_" + nonlinearity.upper()          # PyTorch's name: RNN_TANH or RNN_RELU
        self.nonlinearity = nonlinearity

    def step(self, xw: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        pre = xw + self.hidden_projection(h)                              # (B, H)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class LSTMCell(_Cell):
    """Long short-term memory. State: the pair (h, c), each (B, H)."""

    mode = "LSTM"

    def zero_state(self, batch: int, like: torch.Tensor):
        return (like.new_zeros(batch, self.hidden_size), like.new_zeros(batch, self.hidden_size))

    @staticmethod
    def hidden(state):
        return state[0]

    def step(self, xw: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (xw + self.hidden_projection(h)).chunk(4, dim=-1)    # each (B, H), order of GATES
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * c + i * torch.tanh(g)       # forget part of the old memory, write part of the new
        h = o * torch.tanh(c)               # expose part of it
        return h, c


class GRUCell(_Cell):
    """Gated recurrent unit (PyTorch's variant: the reset gate multiplies W_hn h + b_hn). State: h (B, H)."""

    mode = "GRU"

    def step(self, xw: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x_r, x_z, x_n = xw.chunk(3, dim=-1)                               # input parts, each (B, H)
        h_r, h_z, h_n = self.hidden_projection(h).chunk(3, dim=-1)        # hidden parts, biases b_h* included
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)       # r gates the hidden product *and* its bias b_hn
        return (1 - z) * n + z * h


# ------------------------------------------------------------------------------ layers
def unroll(cell: _Cell, x: torch.Tensor, state, reverse: bool = False):
    """Run `cell` over a sequence x (T, B, I) from `state`; return (outputs (T, B, H), final state).

    reverse=True reads the sequence from its last step to its first (the backward direction
    of a bidirectional layer); outputs[t] is still the output at position t.
    """
    xw = cell.input_projection(x)                                         # (T, B, G*H): one product for all steps
    outputs = [None] * x.shape[0]
    for t in (reversed(range(x.shape[0])) if reverse else range(x.shape[0])):
        state = cell.step(xw[t], state)       # only this part is sequential
        outputs[t] = cell.hidden(state)
    return torch.stack(outputs), state


def gradient_norms_through_time(cell: _Cell, x: torch.Tensor, loss_fn, state=None) -> torch.Tensor:
    """(T,) the norms ||dL/dh_t|| for L = loss_fn(h_T), x (T, B, I): how much of the loss's gradient
    reaches each earlier step (the many-to-one case, e.g. the adding problem). Through a vanilla
    RNN each step back multiplies by W_hh^T and tanh', so the norms shrink (or grow) geometrically
    (Bengio, Simard and Frasconi 1994). An LSTM whose forget gates stay near 1 carries them back
    through its additive cell; at PyTorch's initialisation f is about 0.5 and they shrink too,
    which is why a forget-gate bias of a few units is a common start (split_gates(bias_ih)["f"])."""
    state = cell.zero_state(x.shape[1], x) if state is None else state
    xw, hs = cell.input_projection(x), []
    for t in range(x.shape[0]):
        state = cell.step(xw[t], state)
        hs.append(cell.hidden(state))                                     # h_t, which step t + 1 reads
    grads = torch.autograd.grad(loss_fn(hs[-1]), hs, allow_unused=True)   # total derivatives dL/dh_t
    return torch.stack([g.norm() if g is not None else x.new_zeros(()) for g in grads])


class _Recurrent(nn.Module):
    """A stack of `num_layers` recurrent layers, each one or two directions; nn.RNN's interface.

    cells[layer * D + direction] reads the input sequence (layer 0) or the concatenated outputs
    of both directions of the layer below; with `dropout` > 0, dropout is applied to the outputs
    of every layer but the last, in training only (as in PyTorch).
    """

    cell_class: type[_Cell] = _Cell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, **cell_options):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        D = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            self.cell_class(input_size if layer == 0 else D * hidden_size, hidden_size, bias, **cell_options)
            for layer in range(num_layers) for _ in range(D))
        self.mode = self.cells[0].mode

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _initial(self, state, k: int, batch: int, x: torch.Tensor):
        """The state cell k starts from: the caller's state[k] (each part, for the LSTM) or zeros."""
        if state is None:
            return self.cells[k].zero_state(batch, x)
        return tuple(s[k] for s in state) if isinstance(state, tuple) else state[k]

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() != 3:
            raise ValueError(f"expected input of shape (T, B, I) (or (B, T, I) with batch_first), got {tuple(x.shape)}")
        if self.batch_first:
            x = x.transpose(0, 1)                                         # (T, B, I)
        D, batch = self.num_directions, x.shape[1]
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                y, final = unroll(self.cells[k], x, self._initial(state, k, batch, x), reverse=direction == 1)
                outs.append(y)                                            # (T, B, H)
                finals.append(final)
            x = torch.cat(outs, dim=-1) if D == 2 else outs[0]            # (T, B, D*H): forward first
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        output = x.transpose(0, 1) if self.batch_first else x
        if isinstance(finals[0], tuple):                                  # LSTM: (h_n, c_n)
            return output, tuple(torch.stack(parts) for parts in zip(*finals))
        return output, torch.stack(finals)                                # (num_layers*D, B, H)

    def extra_repr(self) -> str:
        options = [f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"]
        options += [f"{k}={getattr(self, k)}" for k in ("batch_first", "dropout", "bidirectional") if getattr(self, k)]
        return ", ".join(options)


class RNN(_Recurrent):
    """Multi-layer Elman RNN, nn.RNN's interface (nonlinearity "tanh" or "relu")."""

    cell_class = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         nonlinearity=nonlinearity)
        self.nonlinearity = nonlinearity


class LSTM(_Recurrent):
    """Multi-layer LSTM, nn.LSTM's interface (without proj_size); state and result state are (h, c)."""

    cell_class = LSTMCell


class GRU(_Recurrent):
    """Multi-layer GRU, nn.GRU's interface."""

    cell_class = GRUCell


_OURS = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU}


def _check_same_configuration(ours: _Recurrent, theirs: nn.RNNBase) -> None:
    if getattr(theirs, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 have no counterpart here")
    mine = (ours.mode, ours.input_size, ours.hidden_size, ours.num_layers, ours.bias, ours.bidirectional)
    other = (theirs.mode, theirs.input_size, theirs.hidden_size, theirs.num_layers, theirs.bias, theirs.bidirectional)
    if mine != other:
        names = "(mode, input_size, hidden_size, num_layers, bias, bidirectional)"
        raise ValueError(f"configurations differ {names}: ours {mine}, torch's {other}")


@torch.no_grad()
def load_torch_weights(ours: _Recurrent, theirs: nn.RNNBase) -> _Recurrent:
    """Copy the parameters of nn.RNN / nn.LSTM / nn.GRU `theirs` into our layer of the same configuration.

    PyTorch names them `weight_ih_l{layer}` (+ `_reverse` for the backward direction), likewise
    weight_hh, bias_ih, bias_hh; the gate blocks inside are already in our order (GATES), so
    each tensor is copied whole into cells[layer * D + direction]. Returns `ours`.
    """
    _check_same_configuration(ours, theirs)
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if ours.bias else ())
    for layer in range(ours.num_layers):
        for direction in range(ours.num_directions):
            cell = ours.cells[layer * ours.num_directions + direction]
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name in names:
                getattr(cell, name).copy_(getattr(theirs, name + suffix))
    return ours


def from_torch(theirs: nn.RNNBase) -> _Recurrent:
    """Our layer with the configuration and the weights of nn.RNN / nn.LSTM / nn.GRU `theirs`."""
    kind = next(ours for cls, ours in _OURS.items() if isinstance(theirs, cls))
    options = {"nonlinearity": theirs.nonlinearity} if kind is RNN else {}
    p = next(theirs.parameters())
    with torch.device(p.device):
        ours = kind(theirs.input_size, theirs.hidden_size, theirs.num_layers, bias=theirs.bias,
                    batch_first=theirs.batch_first, dropout=theirs.dropout, bidirectional=theirs.bidirectional,
                    **options).to(p.dtype)
    return load_torch_weights(ours, theirs)


# ------------------------------------------------------------------------------ language model
class CharLM(nn.Module):
    """Character language model: (one-hot or embedding) -> recurrent layers -> linear to logits.

    forward(x (B, T) int64, state=None) -> (logits (B, T, V), state): logits[:, t] scores the
    character after x[:, t]. Pass the returned state to the next call to continue the text
    (truncated backpropagation through time: detach it first, dlcourse.text.detach_state).

    cell: "rnn", "lstm" or "gru". embed_dim=None feeds one-hot vectors (V inputs), as in the
    lecture; an int learns an embedding of that size. impl="ours" uses this module's layers,
    impl="torch" nn.RNN/LSTM/GRU (cuDNN on a GPU, the full profile's choice); both compute the
    same function (tests/test_rnn.py) and hold the same number of parameters.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 256, cell: str = "lstm", num_layers: int = 1,
                 embed_dim: int | None = None, dropout: float = 0.0, impl: str = "ours"):
        super().__init__()
        layers = {"ours": {"rnn": RNN, "lstm": LSTM, "gru": GRU},
                  "torch": {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}}
        if impl not in layers or cell not in layers[impl]:
            raise ValueError(f"impl must be 'ours' or 'torch' and cell 'rnn', 'lstm' or 'gru'; got {impl!r}, {cell!r}")
        self.vocab_size, self.cell, self.impl = vocab_size, cell, impl
        self.embedding = nn.Embedding(vocab_size, embed_dim) if embed_dim else None
        self.rnn = layers[impl][cell](embed_dim or vocab_size, hidden_size, num_layers, batch_first=True,
                                      dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        if self.embedding is not None:
            inputs = self.embedding(x)                                    # (B, T, E)
        else:
            inputs = F.one_hot(x, self.vocab_size).to(self.head.weight.dtype)   # (B, T, V)
        out, state = self.rnn(inputs, state)                              # (B, T, H)
        return self.head(out), state                                      # (B, T, V)


# profile -> model and training settings for The Time Machine (dlcourse.text.train_lm's arguments).
# "fast": a one-hot GRU that trains in a few seconds on one CPU thread and reaches a held-out
# perplexity near 6 against the unigram model's 16.7 (tests/test_text.py). "full": the
# lecture-scale model (two 512-unit LSTM layers over a learned embedding) for a GPU, where
# impl="torch" runs cuDNN's kernels; its settings have not yet been calibrated on a GPU run.
cfgs = {
    "fast": dict(model=dict(hidden_size=64, cell="gru", embed_dim=None),
                 train=dict(batch_size=32, seq_len=32, lr=0.02, clip=1.0, steps=150)),
    "full": dict(model=dict(hidden_size=512, cell="lstm", num_layers=2, embed_dim=64, dropout=0.2, impl="torch"),
                 train=dict(batch_size=64, seq_len=64, lr=0.002, clip=1.0, epochs=50)),
}


def char_lm(vocab_size: int, profile: str = "fast", **overrides) -> CharLM:
    """The character language model of a profile in `cfgs` (keyword arguments override it)."""
    return CharLM(vocab_size, **{**cfgs[profile]["model"], **overrides})
