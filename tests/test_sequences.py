"""The grader's text for language models (autograder.sequences): well formed, secret-seeded,
learnable, and worthless to weights trained elsewhere."""
from __future__ import annotations

import math

import torch

from autograder.sequences import markov_text
from dlcourse.models.rnn import char_lm
from dlcourse.text import evaluate_lm, train_lm
from suite_helpers import require_data


def test_a_text_is_ids_of_the_vocabulary_and_depends_only_on_its_seed():
    task = markov_text(5, 4000, 1000, vocab_size=28)
    assert task.train.shape == (4000,) and task.held.shape == (1000,)
    assert task.train.dtype == torch.int64 and int(task.train.min()) >= 0 and int(task.train.max()) < 28
    again = markov_text(5, 4000, 1000, vocab_size=28)
    assert torch.equal(task.train, again.train) and torch.equal(task.held, again.held)
    assert not torch.equal(task.train, markov_text(6, 4000, 1000, vocab_size=28).train)
    assert not torch.equal(task.train[:1000], task.held)          # the held-out part is other text
    # the reported unigram perplexity is the add-one unigram model's, recomputed here
    counts = torch.bincount(task.train, minlength=28).double() + 1
    assert math.isclose(task.unigram, math.exp(-float((counts / counts.sum()).log()[task.held].mean())), rel_tol=1e-9)
    # a source with structure: the next character is far more predictable than its frequency says
    assert 1.0 < task.source < 0.4 * task.unigram


def _trained(ids, seed=0):
    torch.manual_seed(seed)
    model = char_lm(28, "fast")
    train_lm(model, ids, steps=200, batch_size=32, seq_len=32, lr=0.02, clip=1.0, seed=seed, device="cpu")
    return model


def test_honest_training_learns_the_text_and_book_weights_do_not_carry_over():
    """The fast profile's model trained on the text's training part beats 0.6 times the unigram
    model on its held-out part (a10's _PPL_RATIO); the same model trained on The Time Machine (what
    pasted-in weights would be) does far worse than the unigram model, even with its characters
    matched to the text's by frequency, which is all a substitution could tell it."""
    task = markov_text(11, 156_085, 17_343, vocab_size=28)
    assert evaluate_lm(_trained(task.train), task.held) < 0.6 * task.unigram
    require_data(["timemachine"])
    from dlcourse import datasets

    book = datasets.time_machine(source="book").corpus
    cut = int(0.9 * len(book))
    elsewhere = _trained(book[:cut])
    assert evaluate_lm(elsewhere, book[cut:]) < 8.0                      # it does know the book
    assert evaluate_lm(elsewhere, task.held) > task.unigram
    # rename the text's characters so that its k-th most frequent is the book's k-th most frequent
    book_rank = torch.bincount(book[:cut], minlength=28).argsort(descending=True)
    text_rank = torch.bincount(task.train, minlength=28).argsort(descending=True)
    to_book = torch.empty(28, dtype=torch.int64)
    to_book[text_rank] = book_rank
    assert evaluate_lm(elsewhere, to_book[task.held]) > task.unigram
