"""Assignment a10 (recurrent networks): the hidden tests reject subtly wrong solutions (each
mutant below is a plausible student mistake) and keep full marks for correct answers written
other valid ways.

Thresholds (fast profile: a CharLM of 64 GRU units over one-hot characters, 19,868 parameters,
200 Adam updates of 32 windows of 32 characters, learning rate 0.02, clipping at global norm 1,
one CPU thread), measured with the reference solution:

The notebook's own run, held-out perplexity on the last 10% of The Time Machine (17,343
characters; the unigram model's is 16.73, the uniform model's 28), SEED = 0..4:
    5.545, 5.646, 5.591, 5.596, 5.659      worst 5.659 against TARGET = 7.0 (a margin of 1.34)
On the offline stand-in (Python's help topics; unigram 17.04), the student's own run only:
    5.032, 5.005, 4.928, 4.982, 4.918      worst 5.032 against the same TARGET = 7.0

The grader's run (`bench/convergence/run.py --only a10-rnn`): the student's train_lm trains a
fresh CharLM on a text written from the secret seed (`autograder.sequences.markov_text`: an order-2
Markov source over 28 characters, 156,085 to train on, 17,343 held out; its unigram model's
perplexity is about 27.9 and the source's own about 5.0); the grader loads the trained weights into
nn.GRU and measures the held-out perplexity as a fraction of the unigram model's. Secret seeds 101,
202, ..., 1515 (SEED = 0), 11.8 to 15.7 s per grading of the whole notebook:
    0.407 0.424 0.411 0.436 0.413 0.420 0.414 0.423 0.416 0.410 0.423 0.413 0.412 0.413 0.413
worst 0.436, mean 0.4165 against _PPL_RATIO = 0.6 (a margin of 0.164). Weights trained elsewhere,
on The Time Machine, score a perplexity of about 740 on such a text, far above its unigram
model's 28 (tests/test_sequences.py).
"""
import pathlib
import re

import pytest

from mutation_helpers import grade_group, run_mutated
from suite_helpers import LoopbackServer, NotFound

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a10-rnn"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a10")]


# the given model and helpers live in the kernel (the grader calls CharLM there)
WELL_FORMED = dict(kernel_only=("train_helpers",))  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail[, message fragment]). Each group
# runs as one notebook; within a group the mutants target different tests. The bidirectional test
# runs RNN cells and then LSTM cells, so a wrong LSTM cell also fails it (after the RNN cases).
GATES_CLIP_PERPLEXITY_LAYERS = {
    "forget_gate_on_the_input": (   # c' = i * c + f * g: the forget gate scales the new content
        "        c = f * c + i * g\n", "        c = i * c + f * g\n", "test_lstm", "the new cell state c' differs"),
    "gru_update_gate_inverted": (   # h' = z * n + (1 - z) * h: the convention of some texts
        "        return (1 - z) * n + z * h\n", "        return z * n + (1 - z) * h\n", "test_gru"),
    "clipped_per_parameter": (      # each tensor clipped by its own norm: the direction changes
        """    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)) if grads else torch.tensor(0.0)
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g.mul_(scale)
    return total""",
        """    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)) if grads else torch.tensor(0.0)
    for g in grads:
        own = g.norm()
        if own > max_norm:
            g.mul_(max_norm / (own + 1e-6))
    return total""",
        "test_clip", "the clipped gradients have norm 1"),   # the visible check already sees it
    "perplexity_of_the_summed_loss": (
        "    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))\n",
        "    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=\"sum\")\n",
        "test_perplexity"),
    "every_layer_starts_from_the_first_layers_state": (
        "            x, h = unroll(cell, x, None if h0 is None else h0[l])\n",
        "            x, h = unroll(cell, x, None if h0 is None else h0[0])\n",
        "test_rnn_layer"),
}
ORDER_SIGMOID_RESET = {
    "bidirectional_backward_first": (
        "        out = torch.cat([out_f, out_b], dim=2)                     # (B, T, 2H)\n",
        "        out = torch.cat([out_b, out_f], dim=2)                     # (B, T, 2H)\n",
        "test_bidirectional", "Bidirectional of two RNNCells"),
    "candidate_squashed_by_sigmoid": (   # tanh and sigmoid swapped on the candidate g
        "        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)\n",
        "        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(g), torch.sigmoid(o)\n",
        "test_lstm"),
    "gru_reset_before_the_product": (   # Cho et al.'s form, which the task says not to use
        "        n = torch.tanh(xn + r * hn)\n",
        "        n = torch.tanh(xn + (r * h) @ self.weight_hh[2 * self.hidden_size:].T + self.bias_hh[2 * self.hidden_size:])\n",
        "test_gru"),
}
CELL_UNROLL = {
    "rnn_cell_without_the_hidden_bias": (
        "        pre = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh   # (B, H)\n",
        "        pre = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T   # (B, H)\n",
        "test_rnn_cell"),
    "reversed_outputs_left_reversed": (   # outputs stored in the order they were computed
        "        outputs[t] = state[0] if isinstance(state, tuple) else state     # (B, H)\n"
        "    return torch.stack(outputs, dim=1), state\n",
        "        outputs[t] = state[0] if isinstance(state, tuple) else state     # (B, H)\n"
        "    if reverse:\n        outputs = outputs[::-1]\n    return torch.stack(outputs, dim=1), state\n",
        "test_rnn_layer", "reverse=True"),
}
# the grader's own training run must catch a training loop that is wrong: the state carried
# across windows without being detached, so that the second window's backward pass runs into the
# first one's freed graph (the other mutants of its group leave the GRU and train_lm alone)
NOT_DETACHED = {
    "state_not_detached": (
        "            if state is not None:\n                state = state.detach()                  # keep the value, cut the graph\n",
        "",
        "test_convergence", "backward through the graph a second time"),
}
# weights that know another text earn nothing: a train_lm that trains on the notebook's own Time
# Machine (the kernel's train_ids) whatever text it is given brings the grader a model of English,
# which predicts the grader's text worse than its unigram model does
ELSEWHERE = {
    "trained_on_the_notebooks_text": (
        "        for x, y in sequence_batches(ids, batch_size, seq_len, seed=seed + epoch, sequential=True):\n",
        "        for x, y in sequence_batches(train_ids, batch_size, seq_len, seed=seed + epoch, sequential=True):\n",
        "test_convergence", "above 0.6 times the unigram model's"),
}
GROUPS = {
    "gates-clip-perplexity-layers": (GATES_CLIP_PERPLEXITY_LAYERS, {"test_bidirectional"}),
    "order-sigmoid-reset": (ORDER_SIGMOID_RESET, set()),
    "cell-unroll-detach": ({**CELL_UNROLL, **NOT_DETACHED}, {"test_bidirectional"}),
    "elsewhere": (ELSEWHERE, set()),
}


@pytest.mark.mutation
@pytest.mark.parametrize("group", list(GROUPS))
def test_wrong_solutions_fail_their_graded_cell(tmp_path, group):
    grade_group(SOURCE, tmp_path, GROUPS[group])


# Correct answers written other valid ways keep full marks: nn.init and F.linear in the cells, a
# state of zeros made with torch.zeros, outputs collected in reading order and flipped back, the
# GRU's last line as n + z * (h - n), the bidirectional layer's backward pass as a forward pass
# over the flipped sequence, clipping that always multiplies by min(1, factor) and returns a float,
# perplexity from log_softmax and gather, and a training loop with a while loop, gradients set to
# None by hand and nll_loss.
OTHER_WAYS = {
    "rnn_cell": (
        """        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        ### END SOLUTION

    def forward(self, x, h=None):
        ### BEGIN SOLUTION
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        pre = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh   # (B, H)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)""",
        """        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        for p in self.parameters():
            nn.init.uniform_(p, -hidden_size ** -0.5, hidden_size ** -0.5)
        ### END SOLUTION

    def forward(self, x, h=None):
        ### BEGIN SOLUTION
        if h is None:
            h = torch.zeros(x.size(0), self.hidden_size, dtype=x.dtype, device=x.device)
        act = F.relu if self.nonlinearity == "relu" else torch.tanh
        return act(F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh))""",
        None),
    "unroll": (
        """    T = x.shape[1]
    outputs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        state = cell(x[:, t], state)
        outputs[t] = state[0] if isinstance(state, tuple) else state     # (B, H)
    return torch.stack(outputs, dim=1), state""",
        """    order = reversed(range(x.size(1))) if reverse else range(x.size(1))
    seen = []
    for t in order:
        state = cell(x[:, t, :], state)
        seen.append(state[0] if type(state) in (tuple, list) else state)
    if reverse:
        seen.reverse()
    return torch.stack(seen, 1), state""",
        None),
    "rnn_forward": (
        """        finals = []
        for l, cell in enumerate(self.cells):
            x, h = unroll(cell, x, None if h0 is None else h0[l])
            finals.append(h)
        return x, torch.stack(finals)""",
        """        starts = [None] * len(self.cells) if h0 is None else list(h0.unbind(0))
        out, last = x, []
        for cell, start in zip(self.cells, starts):
            out, h = unroll(cell, out, start)
            last.append(h)
        return out, torch.stack(last, dim=0)""",
        None),
    "lstm_forward": (
        """        gates = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh   # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c""",
        """        H = self.hidden_size
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        i = torch.sigmoid(gates[:, :H])
        f = torch.sigmoid(gates[:, H:2 * H])
        g = torch.tanh(gates[:, 2 * H:3 * H])
        o = torch.sigmoid(gates[:, 3 * H:])
        c_new = torch.addcmul(f * c, i, g)
        return o * c_new.tanh(), c_new""",
        None),
    "gru_forward": (
        """        xr, xz, xn = (x @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)   # (B, H) each
        hr, hz, hn = (h @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h""",
        """        H = self.hidden_size
        W_ir, W_iz, W_in = torch.split(self.weight_ih, H)
        W_hr, W_hz, W_hn = torch.split(self.weight_hh, H)
        b_ir, b_iz, b_in = torch.split(self.bias_ih, H)
        b_hr, b_hz, b_hn = torch.split(self.bias_hh, H)
        r = torch.sigmoid(F.linear(x, W_ir, b_ir) + F.linear(h, W_hr, b_hr))
        z = torch.sigmoid(F.linear(x, W_iz, b_iz) + F.linear(h, W_hz, b_hz))
        n = torch.tanh(F.linear(x, W_in, b_in) + r * F.linear(h, W_hn, b_hn))
        return n + z * (h - n)""",
        None),
    "bidirectional": (
        """        out_f, state_f = unroll(self.forward_cell, x)
        out_b, state_b = unroll(self.backward_cell, x, reverse=True)
        out = torch.cat([out_f, out_b], dim=2)                     # (B, T, 2H)
        if isinstance(state_f, tuple):                             # LSTM: (h, c)
            return out, tuple(torch.stack(pair) for pair in zip(state_f, state_b))
        return out, torch.stack([state_f, state_b])                # (2, B, H)""",
        """        fwd, last_f = unroll(self.forward_cell, x)
        bwd, last_b = unroll(self.backward_cell, torch.flip(x, dims=[1]))
        out = torch.cat((fwd, torch.flip(bwd, dims=[1])), dim=-1)
        if isinstance(last_f, torch.Tensor):
            return out, torch.stack((last_f, last_b), dim=0)
        h_n = torch.stack((last_f[0], last_b[0]))
        c_n = torch.stack((last_f[1], last_b[1]))
        return out, (h_n, c_n)""",
        None),
    "clip": (
        """    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)) if grads else torch.tensor(0.0)
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g.mul_(scale)
    return total""",
        """    if len(grads) == 0:
        return 0.0
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    factor = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(factor)
    return norm.item()""",
        None),
    "perplexity": (
        """    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return math.exp(nll.item())""",
        """    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return float(torch.exp(-picked.mean()))""",
        None),
    "train_lm": (
        """    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in itertools.count():
        state = None
        for x, y in sequence_batches(ids, batch_size, seq_len, seed=seed + epoch, sequential=True):
            x, y = x.to(device), y.to(device)
            if state is not None:
                state = state.detach()                  # keep the value, cut the graph
            logits, state = model(x, state)             # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm([p.grad for p in model.parameters() if p.grad is not None], clip)
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == steps:
                return losses""",
        """    params = list(model.parameters())
    device = params[0].device
    opt = torch.optim.Adam(params, lr=lr)
    losses, epoch = [], 0
    while len(losses) < steps:
        h = None
        for x, y in sequence_batches(ids, batch_size, seq_len, seed=seed + epoch, sequential=True):
            h = None if h is None else h.detach()
            logits, h = model(x.to(device), h)
            loss = F.nll_loss(F.log_softmax(logits, dim=-1).flatten(0, 1), y.to(device).flatten())
            for p in params:
                p.grad = None
            loss.backward()
            clip_grad_norm([p.grad for p in params], clip)
            opt.step()
            losses.append(float(loss))
            if len(losses) >= steps:
                break
        epoch += 1
    return losses""",
        None),
}


@pytest.mark.variants
def test_other_valid_answers_keep_full_marks(tmp_path):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, OTHER_WAYS, messages, train=True)
    assert not any(failed.values()), {gid: messages[gid] for gid, err in failed.items() if err}



def test_the_released_notebook_runs_offline_on_the_stand_in_and_says_so(tmp_path, monkeypatch):
    """A student with neither network, mirror nor cache: the released notebook, answered with the
    solutions, runs to the end on the stand-in text, says so, and its visible tests pass there
    (the grader itself never grades on the stand-in: it refuses to grade without the book)."""
    from nbclient import NotebookClient

    from autograder.demo import fill_release, load_assignment, solution_answers

    source, release, _ = load_assignment(ROOT, NAME)
    answers = solution_answers(source)
    nb = fill_release(release, answers, set(answers))
    with LoopbackServer(handler=NotFound) as server:
        for key, value in {"DLCOURSE_DATA_MIRROR": str(tmp_path / "no-mirror"), "DLCOURSE_DATA_DIR": str(tmp_path),
                           "DLCOURSE_DATA_URL": server.url, "DLCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1",
                           "DLCOURSE_PROGRESS": "0"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("DLCOURSE_OFFLINE", raising=False)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert re.search(r"^timemachine: not available \(.*\); the loaders will use the English text of Python's own "
                     r"help topics", out, re.M), out
    from dlcourse.datasets import time_machine

    stand_in = len(time_machine(source="stand-in").text)
    assert f"the offline stand-in (Python's help topics, not the book): {stand_in:,} characters" in out, out
    ppl = float(re.search(r"held-out perplexity ([0-9.]+)", out)[1])
    assert ppl <= 7.0, out   # the notebook's TARGET, calibrated on the stand-in too (docstring above)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
