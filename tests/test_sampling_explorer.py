"""The sampling explorer (chapter 10): its views are what `generate` and the softmax give, and its
controls are wired with jslinks so that it responds in the static book."""
import math

import pytest
import torch
from ipywidgets.widgets.widget_link import Link

from dlcourse import sampling_explorer as sx
from dlcourse.models.rnn import CharLM
from dlcourse.text import Vocab, generate

TEXT = "the time traveller smiled round at us then "


@pytest.fixture(scope="module")
def model_and_vocab():
    torch.manual_seed(0)
    vocab = Vocab(TEXT)
    return CharLM(len(vocab), hidden_size=8, cell="gru"), vocab


def test_distribution_is_the_tempered_softmax_and_greedy_at_zero(model_and_vocab):
    model, vocab = model_and_vocab
    with torch.no_grad():
        logits = model(vocab.encode("the ")[None])[0][0, -1]
    for t in (0.5, 1.0, 2.0):
        torch.testing.assert_close(sx.next_char_distribution(model, vocab, "the ", t), torch.softmax(logits / t, -1))
    greedy = sx.next_char_distribution(model, vocab, "the ", 0.0)
    assert greedy.sum() == 1 and greedy[logits.argmax()] == 1


def test_views_hold_generate_s_text_and_sharpen_as_the_temperature_falls(model_and_vocab):
    model, vocab = model_and_vocab
    views = [sx.compute_view(model, vocab, "the ", t, num_chars=20, seed=3) for t in (0.0, 0.5, 1.0, 2.0)]
    for v in views:
        assert v["text"] == generate(model, vocab, "the ", 20, v["temperature"],
                                     generator=torch.Generator().manual_seed(3))
        assert sum(q for _, q in v["top"]) <= 1 + 1e-6 and len(v["top"]) == 5
    entropies = [v["entropy"] for v in views]
    assert entropies[0] == 0 and entropies == sorted(entropies)   # higher temperature, flatter distribution
    assert entropies[-1] <= math.log(len(vocab)) + 1e-6
    assert "the&nbsp;" not in sx.render_view(views[1]) and "<b>the </b>" in sx.render_view(views[1])


def test_explorer_precomputes_every_view_and_links_its_controls(model_and_vocab):
    model, vocab = model_and_vocab
    box = sx.sampling_explorer(model, vocab, ["the ", "time "], temperatures=(0.0, 0.5, 1.0), num_chars=10)
    assert len(box._dlcourse_views) == 6
    assert [(v["prefix"], v["temperature"]) for v in box._dlcourse_views] == \
        [(p, t) for p in ("the ", "time ") for t in (0.0, 0.5, 1.0)]
    assert all(type(link) is Link for link in box._dlcourse_links) and len(box._dlcourse_links) == 1 + 2
    prefix, temperature = box._dlcourse_controls
    assert prefix.index == 0 and temperature.value == "1"          # opens at the temperature nearest 1
    with pytest.raises(ValueError):
        sx.sampling_explorer(model, vocab, [])
