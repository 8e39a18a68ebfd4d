"""dlcourse.models.rnn: cells and layers written from their equations compute what nn.RNN,
nn.LSTM and nn.GRU compute once the weights are copied (outputs, final states, gradients of the
input, the initial state and every parameter), for several batch sizes, sequence lengths,
layer counts, both directions and batch_first; parameter counts are PyTorch's; the character
language model has the shapes it promises and the same function with either implementation."""
import pytest
import torch
from torch import nn

from dlcourse.models import rnn as R
from suite_helpers import n_params

TORCH = {"RNN_TANH": (nn.RNN, {}), "RNN_RELU": (nn.RNN, {"nonlinearity": "relu"}), "LSTM": (nn.LSTM, {}),
         "GRU": (nn.GRU, {})}
CONFIGS = [  # (batch, seq_len, num_layers, bidirectional, batch_first)
    (1, 1, 1, False, False),     # a single step of a single example
    (4, 9, 1, False, True),
    (3, 6, 2, True, False),      # stacked and bidirectional: layer 2 reads both directions of layer 1
    (2, 5, 3, False, False),
    (5, 3, 2, True, True),
]


def pair(mode, input_size, hidden_size, num_layers, bidirectional, batch_first, seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    cls, options = TORCH[mode]
    ref = cls(input_size, hidden_size, num_layers, batch_first=batch_first, bidirectional=bidirectional,
              **options, **kw).to(dtype)
    return R.from_torch(ref), ref


def states(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "B{}-T{}-L{}-{}{}".format(
    c[0], c[1], c[2], "bi" if c[3] else "uni", "-bf" if c[4] else ""))
@pytest.mark.parametrize("mode", sorted(TORCH))
def test_outputs_states_and_gradients_match_torch(mode, config):
    B, T, L, bi, bf = config
    I, H, D = 3, 5, 2 if bi else 1
    ours, ref = pair(mode, I, H, L, bi, bf)
    assert n_params(ours) == n_params(ref)
    x = torch.randn((B, T, I) if bf else (T, B, I), dtype=torch.float64)
    h0 = tuple(torch.randn(L * D, B, H, dtype=torch.float64) for _ in range(2 if mode == "LSTM" else 1))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1 = tuple(s.clone().requires_grad_() for s in h0)
    s2 = tuple(s.clone().requires_grad_() for s in h0)
    out, final = ours(x1, s1 if mode == "LSTM" else s1[0])
    out_ref, final_ref = ref(x2, s2 if mode == "LSTM" else s2[0])
    assert out.shape == ((B, T, D * H) if bf else (T, B, D * H))
    torch.testing.assert_close(out, out_ref)
    for mine, theirs in zip(states(final), states(final_ref), strict=True):
        assert mine.shape == (L * D, B, H)
        torch.testing.assert_close(mine, theirs)
    # one scalar that depends on every output and every final state
    weights = [torch.randn_like(t) for t in (out, *states(final))]
    sum((w * t).sum() for w, t in zip(weights, (out, *states(final)))).backward()
    sum((w * t).sum() for w, t in zip(weights, (out_ref, *states(final_ref)))).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(a.grad, b.grad)
    for layer in range(L):
        for direction in range(D):
            cell = ours.cells[layer * D + direction]
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                torch.testing.assert_close(getattr(cell, name).grad, getattr(ref, name + suffix).grad,
                                           msg=f"{name}{suffix}")


@pytest.mark.parametrize("mode", sorted(TORCH))
def test_float32_agrees_to_float_tolerance_and_zero_state_is_the_default(mode):
    ours, ref = pair(mode, 7, 16, 2, True, True, dtype=torch.float32, seed=1)
    x = torch.randn(8, 20, 7)
    out, final = ours(x)
    out_ref, final_ref = ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(states(final), states(final_ref), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_without_biases_and_with_inter_layer_dropout_in_eval_mode(mode):
    ours, ref = pair(mode, 4, 6, 3, False, False, bias=False, dropout=0.5)
    assert n_params(ours) == n_params(ref) and ours.cells[0].bias_ih is None
    ours.eval(), ref.eval()                   # dropout acts in training only
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    torch.manual_seed(0)
    assert not torch.allclose(ours(x)[0], ref(x)[0])   # in training the layers below the last are dropped out


@pytest.mark.parametrize("cell, ref_cls, gates", [(R.RNNCell, nn.RNNCell, 1), (R.LSTMCell, nn.LSTMCell, 4),
                                                  (R.GRUCell, nn.GRUCell, 3)])
def test_cells_load_torch_cells_state_dicts_and_agree(cell, ref_cls, gates):
    torch.manual_seed(0)
    ref = ref_cls(6, 8).double()
    ours = cell(6, 8).double()
    assert n_params(ours) == n_params(ref) == gates * 8 * (6 + 8 + 2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, dtype=torch.float64)
    h = torch.randn(3, 8, dtype=torch.float64)
    state = (h, torch.randn(3, 8, dtype=torch.float64)) if ref_cls is nn.LSTMCell else h
    for mine, theirs in zip(states(ours(x, state)), states(ref(x, state)), strict=True):
        torch.testing.assert_close(mine, theirs)
    for mine, theirs in zip(states(ours(x)), states(ref(x)), strict=True):      # zero state by default
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("I, H, L, bi", [(1, 1, 1, False), (28, 256, 1, False), (64, 512, 2, False),
                                         (10, 20, 3, True)])
def test_parameter_counts_equal_torch(I, H, L, bi):
    ours_cls = {"RNN_TANH": R.RNN, "RNN_RELU": R.RNN, "LSTM": R.LSTM, "GRU": R.GRU}
    with torch.device("meta"):
        for mode, (cls, options) in TORCH.items():
            ours = ours_cls[mode](I, H, L, bidirectional=bi, **options)
            assert n_params(ours) == n_params(cls(I, H, L, bidirectional=bi, **options)), mode


def test_lstm_gates_in_torch_order_each_do_their_job():
    # With every weight zero, each gate is sigmoid/tanh of its bias alone, so biases name the gates.
    cell = R.LSTMCell(2, 3).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        gates = R.split_gates(cell.bias_ih, "LSTM")
        gates["i"].fill_(50.0)    # write everything
        gates["f"].fill_(-50.0)   # forget everything
        gates["g"].fill_(0.5)     # candidate tanh(0.5)
        gates["o"].fill_(50.0)    # expose everything
    c_old = torch.full((1, 3), 7.0, dtype=torch.float64)
    h, c = cell(torch.zeros(1, 2, dtype=torch.float64), (torch.zeros(1, 3, dtype=torch.float64), c_old))
    torch.testing.assert_close(c, torch.full((1, 3), torch.tanh(torch.tensor(0.5)).item(), dtype=torch.float64))
    torch.testing.assert_close(h, torch.tanh(c))


def test_gru_update_gate_one_keeps_the_state_and_reset_gate_multiplies_the_hidden_bias():
    cell = R.GRUCell(2, 3).double()
    h = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        R.split_gates(cell.bias_ih, "GRU")["z"].fill_(60.0)      # z = 1: h' = h
    torch.testing.assert_close(cell(x, h), h)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        R.split_gates(cell.bias_ih, "GRU")["z"].fill_(-60.0)     # z = 0: h' = n
        R.split_gates(cell.bias_ih, "GRU")["r"].fill_(-60.0)     # r = 0: n = tanh(b_in + 0 * (W_hn h + b_hn))
        R.split_gates(cell.bias_hh, "GRU")["n"].fill_(3.0)       # so b_hn is gated off with the rest
    torch.testing.assert_close(cell(x, h), torch.zeros(4, 3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_bidirectional_output_is_forward_then_backward_and_the_backward_reads_reversed():
    torch.manual_seed(0)
    bi = R.GRU(3, 4, bidirectional=True).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, h_n = bi(x)
    fwd_out, fwd_h = R.unroll(bi.cells[0], x, torch.zeros(2, 4, dtype=torch.float64))
    bwd_out, bwd_h = R.unroll(bi.cells[1], x.flip(0), torch.zeros(2, 4, dtype=torch.float64))
    torch.testing.assert_close(out[..., :4], fwd_out)
    torch.testing.assert_close(out[..., 4:], bwd_out.flip(0))    # position t holds the state after reading t..T-1
    torch.testing.assert_close(h_n, torch.stack([fwd_h, bwd_h]))
    torch.testing.assert_close(out[-1, :, :4], h_n[0])          # forward ends at the last step,
    torch.testing.assert_close(out[0, :, 4:], h_n[1])           # backward at the first


def test_gradient_norms_through_time_vanish_in_a_vanilla_rnn_and_not_through_an_open_forget_gate():
    from dlcourse.datasets import adding_problem
    x, y = adding_problem(32, 40, seed=0)
    x = x.transpose(0, 1).double()                                   # (T, B, 2)
    torch.manual_seed(0)
    head = nn.Linear(16, 1).double()

    def loss(h):                                                     # many-to-one: regress the sum from h_T
        return ((head(h).squeeze(-1) - y.double()) ** 2).mean()

    rnn, lstm = R.RNNCell(2, 16).double(), R.LSTMCell(2, 16).double()
    with torch.no_grad():
        R.split_gates(lstm.bias_ih, "LSTM")["f"].fill_(5.0)          # f near 1: the cell keeps its content
    vanilla = R.gradient_norms_through_time(rnn, x, loss)
    gated = R.gradient_norms_through_time(lstm, x, loss)
    assert vanilla.shape == gated.shape == (40,)
    h_T = torch.zeros(32, 16, dtype=torch.float64, requires_grad=True)
    assert vanilla[0] < 1e-6 * vanilla[-1]                           # vanished over 40 steps
    assert gated[0] > 0.01 * gated[-1]                               # survived (about 5 % here)
    with torch.no_grad():
        rnn.weight_hh.zero_()                                        # no recurrence: only h_T matters
    norms = R.gradient_norms_through_time(rnn, x, loss)
    assert torch.all(norms[:-1] == 0) and norms[-1] > 0
    torch.testing.assert_close(norms[-1], torch.autograd.grad(loss(h_T + rnn(x[-1], None)), h_T)[0].norm())


def test_copy_refuses_a_different_configuration():
    with pytest.raises(ValueError, match="configurations differ"):
        R.load_torch_weights(R.LSTM(3, 4, 2), nn.LSTM(3, 4, 1))
    with pytest.raises(ValueError, match="configurations differ"):
        R.load_torch_weights(R.GRU(3, 4), nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="configurations differ"):
        R.load_torch_weights(R.RNN(3, 4), nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(ValueError, match="proj_size"):
        R.load_torch_weights(R.LSTM(3, 4), nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError):
        R.RNN(3, 4)(torch.zeros(3, 4))    # (T, B, I) is required; unbatched input is not supported


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed_dim", [None, 8])
def test_char_lm_shapes_state_and_both_implementations_agree(cell, embed_dim):
    torch.manual_seed(0)
    V, B, T = 11, 3, 7
    ours = R.CharLM(V, hidden_size=12, cell=cell, num_layers=2, embed_dim=embed_dim)
    ref = R.CharLM(V, hidden_size=12, cell=cell, num_layers=2, embed_dim=embed_dim, impl="torch")
    assert n_params(ours) == n_params(ref)
    ref.head.load_state_dict(ours.head.state_dict())
    if embed_dim:
        ref.embedding.load_state_dict(ours.embedding.state_dict())
    R.load_torch_weights(ours.rnn, ref.rnn)
    x = torch.randint(V, (B, T))
    logits, state = ours(x)
    assert logits.shape == (B, T, V)
    torch.testing.assert_close(logits, ref(x)[0], rtol=1e-5, atol=1e-5)
    # reading the text in two pieces with the state carried over = reading it at once
    first, state1 = ours(x[:, :4])
    second, _ = ours(x[:, 4:], state1)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits, rtol=1e-5, atol=1e-5)


def test_profiles_build_and_are_reachable_from_the_package():
    from dlcourse.models import CharLM, char_lm
    fast = char_lm(28)
    assert isinstance(fast, CharLM) and fast.cell == R.cfgs["fast"]["model"]["cell"]
    full = char_lm(28, "full")            # on the CPU: the first nn.LSTM built on "meta" costs 1.7 s
    assert full.impl == "torch" and isinstance(full.rnn, nn.LSTM)
    # embedding 28 x 64, two LSTM layers (4 gates, two biases), head 512 -> 28
    lstm = 4 * 512 * (64 + 512 + 2) + 4 * 512 * (512 + 512 + 2)
    assert n_params(full) == 28 * 64 + lstm + 512 * 28 + 28
    assert set(R.cfgs) == {"fast", "full"}
