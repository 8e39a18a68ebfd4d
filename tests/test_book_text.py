"""What the book's chapters say in prose, checked against the code.

- Every exercise answer is a doctest (``>>>`` lines in a ```python block of a markdown cell):
  each one is run here, so an answer a reader copies gives what the page says.
- Sentences that state facts about the library, PyTorch or the data (the slope at an
  activation's kink, the conventions of the notes, what the loaders fall back to, the
  sizes quoted in prose) are checked against what the code does.
- Every section ends with a summary and exercises; the chapters list their references.
"""
from __future__ import annotations

import doctest
import pathlib
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = ["01-convolution", "02-building-blocks", "03-lenet", "04-alexnet", "05-vgg", "06-googlenet",
            "07-batchnorm", "08-resnet", "09-densenet", "10-rnn", "11-detection",
            "12-segmentation", "13-gans"]
NOTEBOOKS = sorted(p for c in CHAPTERS for p in (ROOT / "book" / c).glob("*.ipynb"))
FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _markdown(path: pathlib.Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _answers() -> list[tuple[str, str]]:
    """(id, code block) for every ```python block with >>> prompts in a notebook's markdown."""
    found = []
    for path in NOTEBOOKS:
        for k, block in enumerate(FENCE.findall(_markdown(path))):
            if ">>>" in block:
                found.append((f"{path.parent.name}/{path.stem}#{k}", block))
    return found


ANSWERS = _answers()


def test_every_section_ends_with_a_summary_and_exercises_with_checkable_answers():
    assert len(NOTEBOOKS) >= 2 * len(CHAPTERS) - 1  # every chapter has its sections
    # keyed by chapter and page: several chapters have a page named "training"
    per_page = {p: sum(1 for a, _ in ANSWERS if a.startswith(f"{p.parent.name}/{p.stem}#")) for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source]
        assert headings[-2:] == ["## Summary", "## Exercises"], f"{path.parent.name}/{path.name}: ends with {headings[-2:]}"
        assert per_page[path] >= 3, f"{path.parent.name}/{path.name}: only {per_page[path]} exercises with code answers"


@pytest.mark.parametrize("name, block", ANSWERS, ids=[a for a, _ in ANSWERS])
def test_exercise_answer_runs_as_printed(name, block):
    torch.set_default_dtype(torch.float32)  # what a fresh Python session has
    test = doctest.DocTestParser().get_doctest(block, {}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert test.examples, name


def _leaky_and_relu_slopes_at_zero():
    from dlcourse import activations as A

    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    slopes = {}
    for name, f in {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.1), "elu": F.elu}.items():
        (g,) = torch.autograd.grad(f(zero).sum(), zero)
        slopes[name] = (g.item(), A.ACTIVATIONS[name][1](zero.detach()).item())
    return slopes


def test_the_kink_sentence_states_the_left_hand_slope_that_torch_and_ours_use():
    text = _markdown(ROOT / "book/02-building-blocks/activations.ipynb")
    assert "right-hand value" not in text
    assert "the slope of the *left-hand* piece for ReLU and for Leaky ReLU" in text
    slopes = _leaky_and_relu_slopes_at_zero()
    assert slopes["relu"] == (0.0, 0.0)                        # left-hand piece of max(0, x)
    assert slopes["leaky_relu"] == pytest.approx((0.1, 0.1))   # left-hand piece of max(0.1x, x)
    assert slopes["elu"] == (1.0, 1.0)                         # both pieces have slope 1 at 0


def test_the_notes_on_conventions_match_the_libraries():
    from dlcourse import activations as A

    note = (ROOT / "book/02-building-blocks/index.md").read_text()
    assert "slope is $0.1$ (PyTorch's default is $0.01$)" in note
    assert A.LEAKY_SLOPE == 0.1
    x = torch.tensor([-1.0], requires_grad=True)
    F.leaky_relu(x).sum().backward()
    assert x.grad.item() == pytest.approx(0.01)
    # torch.nn.Dropout(p) drops with probability p: all zeros at p = 1
    assert torch.equal(torch.nn.Dropout(1.0).train()(torch.ones(5)), torch.zeros(5))


def test_the_training_page_says_what_its_data_is_and_what_it_falls_back_to():
    from sklearn.datasets import load_digits

    from dlcourse.datasets.splits import SOURCE_DESCRIPTIONS

    text = _markdown(ROOT / "book/03-lenet/training.ipynb")
    assert "Without internet access it falls back to the official" not in text  # the old, false sentence
    assert "MNIST's official **test set** of 10,000 images" in text
    assert f"scikit-learn's {len(load_digits().target):,} bundled 8x8 digits" in text
    assert "10,000-image test set" in SOURCE_DESCRIPTIONS["test10k"]
    # "auto" tries the test set first: the source "test10k" is the MNIST test set
    import inspect

    from dlcourse.datasets import mnist

    assert 'mnist_splits(seed, val_size, "test10k", limit)' in inspect.getsource(mnist.mnist_splits)
    assert 'mnist_tensors("test" if source == "test10k" else "train")' in inspect.getsource(mnist.mnist_splits)


def test_no_page_types_the_hardware_it_was_built_on():
    """Device and thread facts are printed by code at build time, never typed into prose."""
    typed = re.compile(r"no GPU was available|one thread\)|was built .{0,40}on a CPU", re.I)
    pages = [*NOTEBOOKS, *(ROOT / "book" / c / "index.md" for c in CHAPTERS), ROOT / "book/intro.md"]
    for page in pages:
        text = _markdown(page) if page.suffix == ".ipynb" else page.read_text()
        assert not typed.search(text), f"{page.relative_to(ROOT)}: {typed.search(text).group(0)!r}"
    training = nbformat.read(str(ROOT / "book/03-lenet/training.ipynb"), as_version=4)
    code = "\n".join(c.source for c in training.cells if c.cell_type == "code")
    assert "torch.cuda.device_count()" in code and "torch.get_num_threads()" in code


def test_explorer_sentences_hold_on_the_page_and_in_a_live_notebook():
    """The explorers respond through jslinks (resolved by the browser, with or without a kernel)."""
    from ipywidgets.widgets.widget_link import Link

    from dlcourse import explorer

    for build in (explorer.convolution_explorer, explorer.pooling_explorer):
        links = build()._dlcourse_links
        assert links and all(type(l) is Link for l in links)  # jslink, not a Python observer
    for page in ("sliding-window", "channels-and-pooling"):
        text = _markdown(ROOT / f"book/01-convolution/{page}.ipynb")
        assert "without a running Python kernel" not in text
        assert "running notebook" in text


def test_chapters_list_references_to_the_papers():
    needed = {
        "01-convolution": ["Dumoulin", "LeCun"],
        "02-building-blocks": ["Nair", "Maas", "Clevert", "Ramachandran", "Goodfellow", "Srivastava"],
        "03-lenet": ["Gradient-based learning applied to document recognition", "Comparison of learning algorithms"],
        "04-alexnet": ["Krizhevsky", "Zeiler"],
        "05-vgg": ["Simonyan"],
        "06-googlenet": ["Lin", "Szegedy"],
        "10-rnn": ["Elman", "Hochreiter", "Cho", "Schuster", "Bengio"],
        "11-detection": ["Girshick", "Ren", "Redmon", "Lin", "Everingham"],
        "12-segmentation": ["Long", "Badrinarayanan", "Ronneberger", "Jégou", "He"],
        "13-gans": ["Goodfellow", "Radford", "Isola", "Zhu"],
    }
    for chapter, names in needed.items():
        text = re.sub(r"\s+", " ", (ROOT / "book" / chapter / "index.md").read_text())
        assert "## References" in text, chapter
        references = text.split("## References", 1)[1]       # the list, not the chapter's prose
        for name in names:
            assert re.search(rf"\b{re.escape(name)}\b", references), f"{chapter}: no reference to {name}"
    for path in NOTEBOOKS:                                    # the pages end with their exercises
        assert "\n## References" not in "\n" + _markdown(path), f"{path.parent.name}/{path.name}"
