"""dlcourse.text and dlcourse.metrics: the character pipeline (tokens, vocabulary with <unk>),
minibatches for truncated BPTT (sequential ones continue each other, random ones cover the
text once), clipping by global norm against torch.nn.utils.clip_grad_norm_, perplexity and its
baselines, greedy and temperature sampling, and a short training on The Time Machine that ends
well below the unigram model's perplexity."""
import math
import time

import pytest
import torch
from torch import nn

from dlcourse import text as X
from dlcourse.metrics import perplexity, perplexity_from_nll, unigram_perplexity
from dlcourse.models.rnn import CharLM, cfgs, char_lm
from suite_helpers import require_data


# ------------------------------------------------------------------ tokens and vocabulary
def test_characters_vocab_and_unknown_token():
    assert X.characters("ab a") == ["a", "b", " ", "a"]
    vocab = X.Vocab("abca a")
    assert vocab.itos[0] == X.UNK and len(vocab) == 1 + 4          # <unk>, a, ' ', b, c
    assert vocab.itos[1] == "a"                                      # most frequent first
    assert vocab.decode(vocab.encode("cab")) == "cab"
    assert vocab.encode("z!").tolist() == [0, 0]                     # unseen characters -> <unk>


def test_split_keeps_the_held_out_text_at_the_end():
    ids = torch.arange(100)
    train, held = X.split_corpus(ids, 0.2)
    assert torch.equal(train, ids[:80]) and torch.equal(held, ids[80:])
    with pytest.raises(ValueError):
        X.split_corpus(ids, 1.0)


# ------------------------------------------------------------------ minibatches for truncated BPTT
# On the corpus 0, 1, 2, ... every id is its own position, so positions can be read off the batches.
N = 2_000


@pytest.mark.parametrize("B, T, seed", [(4, 10, 0), (8, 7, 3), (1, 35, 1)])
def test_sequential_batches_continue_each_other_across_minibatches(B, T, seed):
    batches = list(X.sequence_batches(torch.arange(N), B, T, seed=seed, sequential=True))
    assert len(batches) >= N // (B * T) - 1
    for x, y in batches:
        assert x.shape == y.shape == (B, T)
        assert torch.equal(y, x + 1)                                 # targets: the next character
        assert torch.equal(x[:, 1:], x[:, :-1] + 1)                  # a window is contiguous text
    for (x0, _), (x1, _) in zip(batches, batches[1:]):
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)                  # row i goes on where it stopped
    # the B rows are B disjoint streams through the text
    starts = batches[0][0][:, 0]
    assert torch.all(starts[1:] - starts[:-1] >= len(batches) * T)


@pytest.mark.parametrize("B, T, seed", [(4, 10, 0), (8, 7, 3), (16, 35, 1)])
def test_random_batches_cover_the_corpus_once_per_epoch(B, T, seed):
    batches = list(X.sequence_batches(torch.arange(N), B, T, seed=seed, sequential=False))
    x = torch.cat([b[0] for b in batches])                           # (pieces, T)
    assert torch.equal(torch.cat([b[1] for b in batches]), x + 1)
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    starts = x[:, 0]
    assert len(set(starts.tolist())) == len(starts)                  # no piece twice
    assert len(set((starts % T).tolist())) == 1                      # all on one grid: pieces do not overlap
    covered = len(starts) * T
    assert covered > N - (B + 1) * T - 1          # left out: the random offset and a final partial batch
    assert not torch.equal(starts, starts.sort().values)             # in random order
    other = torch.cat([b[0] for b in X.sequence_batches(torch.arange(N), B, T, seed=seed + 1)])
    assert not torch.equal(other, x)                                 # another epoch, another cut or order


def test_detach_state_cuts_the_graph_and_keeps_values():
    h = torch.ones(2, 3, requires_grad=True) * 2
    assert X.detach_state(None) is None
    d = X.detach_state(h)
    assert not d.requires_grad and torch.equal(d, h)
    pair = X.detach_state((h, h + 1))
    assert isinstance(pair, tuple) and not any(t.requires_grad for t in pair)


# ------------------------------------------------------------------ clipping by global norm
def _params_with_grads(seed, scale):
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (7,), (2, 2, 5), (1,)]
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * scale
    params.append(nn.Parameter(torch.randn(3)))                     # no gradient: skipped
    return params


@pytest.mark.parametrize("max_norm", [0.01, 1.0, 5.0, 1e6])
@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_clip_grad_norm_matches_torch(max_norm, scale):
    ours, ref = _params_with_grads(0, scale), _params_with_grads(0, scale)
    total = X.clip_grad_norm(ours, max_norm)
    total_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert total == pytest.approx(float(total_ref), rel=1e-6)
    for a, b in zip(ours, ref):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)


def test_clipping_rescales_the_whole_gradient_keeping_its_direction():
    params = _params_with_grads(1, 10.0)
    before = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    total = X.clip_grad_norm(params, 1.0)
    after = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    assert total == pytest.approx(float(before.norm()), rel=1e-6)
    assert float(after.norm()) == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(after, before / before.norm())        # one common factor, not one per tensor
    assert X.clip_grad_norm([nn.Parameter(torch.zeros(2))], 1.0) == 0.0


# ------------------------------------------------------------------ perplexity
@pytest.mark.parametrize("V", [2, 28, 1000])
def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(V):
    targets = torch.randint(V, (4, 9))
    assert perplexity(torch.zeros(4, 9, V), targets) == pytest.approx(V, rel=1e-5)
    assert perplexity(torch.full((4, 9, V), 3.7), targets) == pytest.approx(V, rel=1e-5)  # any constant logits
    assert unigram_perplexity(torch.arange(V).repeat(3), targets, V, smoothing=0.0) == pytest.approx(V, rel=1e-9)


def test_perplexity_is_exp_of_the_mean_not_the_summed_loss():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 50, 6), torch.randint(6, (3, 50))
    nll = nn.functional.cross_entropy(logits.reshape(-1, 6), targets.reshape(-1), reduction="sum")
    assert perplexity(logits, targets) == pytest.approx(math.exp(float(nll) / 150), rel=1e-5)
    assert perplexity_from_nll(float(nll), 150) == pytest.approx(perplexity(logits, targets), rel=1e-5)
    certain = torch.nn.functional.one_hot(targets, 6).float() * 100
    assert perplexity(certain, targets) == pytest.approx(1.0)


def test_unigram_perplexity_is_exp_of_the_character_entropy():
    ids = torch.tensor([0, 0, 0, 1, 1, 2])                           # p = 1/2, 1/3, 1/6
    p = torch.tensor([3, 2, 1]) / 6
    entropy = float(-(p * p.log()).sum())
    assert unigram_perplexity(ids, ids, 3, smoothing=0.0) == pytest.approx(math.exp(entropy))
    assert math.isfinite(unigram_perplexity(ids, torch.tensor([3]), 4))  # smoothing: an unseen id costs a finite loss


# ------------------------------------------------------------------ sampling
class Successor(nn.Module):
    """A stand-in language model that is sure the next id is (id + 1) mod V; its state counts steps."""

    def __init__(self, V, sureness=20.0):
        super().__init__()
        self.V, self.sureness = V, sureness
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, state=None):
        logits = torch.nn.functional.one_hot((x + 1) % self.V, self.V).float() * self.sureness   # (B, T, V)
        return logits + self.dummy, (0 if state is None else state) + x.shape[1]


def test_greedy_generation_follows_the_most_likely_character():
    vocab = X.Vocab("abcde")
    model = Successor(len(vocab)).train()
    out = X.generate(model, vocab, "ab", 6)
    ids = vocab.encode("ab").tolist()
    expected = [(ids[-1] + k) % len(vocab) for k in range(1, 7)]
    assert out == "ab" + vocab.decode(expected)
    assert X.generate(model, vocab, "ab", 6) == out and model.training   # deterministic; mode restored
    with pytest.raises(ValueError):
        X.generate(model, vocab, "", 3)


def test_temperature_sampling_follows_softmax_and_its_limits():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    g = torch.Generator().manual_seed(0)
    draws = X.next_token(logits.expand(20_000, 4), 1.0, g)
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    torch.testing.assert_close(freq, torch.softmax(logits, 0), atol=0.015, rtol=0)
    cold = X.next_token(logits.expand(2_000, 4), 0.01, g)
    assert torch.all(cold == 0)                                      # T -> 0: greedy
    hot = torch.bincount(X.next_token(logits.expand(20_000, 4), 1e4, g), minlength=4).float() / 20_000
    torch.testing.assert_close(hot, torch.full((4,), 0.25), atol=0.015, rtol=0)   # T -> inf: uniform
    assert torch.equal(X.next_token(logits, 0.0), torch.tensor(0))
    a = X.next_token(logits.expand(50, 4), 1.0, torch.Generator().manual_seed(5))
    b = X.next_token(logits.expand(50, 4), 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)                                         # seeded: repeatable
    with pytest.raises(ValueError):
        X.next_token(logits, -1.0)


def test_evaluate_scores_every_position_once():
    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x, state=None):
            return torch.zeros(*x.shape, 7) + self.w, state

    assert X.evaluate_lm(Uniform(), torch.randint(7, (1001,)), batch_size=4, seq_len=30) == pytest.approx(7.0)


# ------------------------------------------------------------------ training on The Time Machine
@pytest.fixture(scope="module")
def time_machine():
    require_data(["timemachine"])
    from dlcourse.datasets import time_machine
    tm = time_machine()
    train, held = X.split_corpus(tm.corpus, 0.1)
    return tm, train, held, unigram_perplexity(train, held, len(tm.vocab))


def _train_and_measure(tm, train, held, model_options, train_options, seed=0):
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                         # the budget the course promises
    try:
        model = char_lm(len(tm.vocab), **model_options)
        start = time.perf_counter()
        history = X.train_lm(model, train, device="cpu", seed=seed, **train_options)
        seconds = time.perf_counter() - start
        return model, history, seconds, X.evaluate_lm(model, held)
    finally:
        torch.set_num_threads(threads)


def test_a_short_training_beats_the_unigram_model(time_machine):
    tm, train, held, unigram = time_machine
    assert 16 < unigram < 18                                         # letters and space, by frequency alone
    # a vanilla RNN, the cheapest cell, for 100 truncated-BPTT steps (well under a second on one thread)
    model, history, seconds, ppl = _train_and_measure(
        tm, train, held, dict(cell="rnn", hidden_size=64), dict(steps=100, batch_size=32, seq_len=32, lr=0.01))
    assert len(history) == 100 and history.loss[-1] < history.loss[0]
    assert ppl < 0.6 * unigram, (ppl, unigram, seconds)
    text = X.generate(model, tm.vocab, "the time ", 40, temperature=0.8, generator=torch.Generator().manual_seed(0))
    assert text.startswith("the time ") and len(text) == 49 and set(text) <= set(tm.vocab.itos[1:])


@pytest.mark.slow
def test_the_fast_profile_reaches_its_perplexity_in_seconds(time_machine):
    tm, train, held, unigram = time_machine
    model, history, seconds, ppl = _train_and_measure(tm, train, held, {}, cfgs["fast"]["train"])
    assert isinstance(model, CharLM) and model.cell == "gru"
    assert ppl < 0.45 * unigram, (ppl, unigram)                      # about 6 against 16.7
    assert seconds < 20, seconds                                     # a few seconds when the core is free
