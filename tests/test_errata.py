"""The errata boxes of chapter 3 quote deck 001 exactly and state counts the model confirms.

Deck 001 writes LeNet-5's parameter counts without biases: "5 x 5 x 6 = 150" for C1,
"5 x 5 x 6 x 16 = 2400" for a full C3 and "84 x 10 = 850" for the output layer (where the
product is 840 and 850 counts the biases). Both boxes (the chapter page and the architecture
page) must quote those formulas as the slide prints them, and every count they state must be
the model's. The slide text lives in ../shared/seeds beside a checkout; where it is missing,
the quotes are checked against the copy below (taken from the deck) only.
"""
from __future__ import annotations

import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DECKS = ROOT.parent / "shared" / "seeds"
# The slide's formulas, in its own LaTeX (deck 001, "Calculation of no of parameters").
QUOTES = {
    "C1": r"5 \times 5 \times 6 = 150",
    "C3": r"5 \times 5 \times 6 \times 16 = 2400",
    "output": r"84 \times 10 = 850",
}


def _boxes() -> dict[str, str]:
    """The text of every erratum admonition about deck 001's LeNet counts, by page."""
    pages = {"index.md": (ROOT / "book/03-lenet/index.md").read_text()}
    nb = nbformat.read(str(ROOT / "book/03-lenet/architectures.ipynb"), as_version=4)
    pages["architectures.ipynb"] = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    boxes = {}
    for page, text in pages.items():
        found = re.findall(r":::\{admonition\} Erratum: deck 001.*?\n:::", text, re.S)
        assert len(found) == 1, f"{page}: expected one deck-001 erratum, found {len(found)}"
        boxes[page] = found[0]
    return boxes


def _normalise(text: str) -> str:
    """The deck's LaTeX and the notebook's printed strings compare alike: x/× -> \\times, spaces folded."""
    text = text.replace("×", r"\times")
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("page, box", list(_boxes().items()))
def test_erratum_quotes_the_slide_exactly(page, box):
    for layer, quote in QUOTES.items():
        assert f"${quote}$" in box, f"{page}: the {layer} formula is not quoted as the slide writes it"
    # the misquote of the first version of the book
    assert "84 x 10 = 840" not in box and r"84 \times 10 = 840" not in box


@pytest.mark.skipif(not DECKS.is_dir(), reason="the slide decks (../shared/seeds) are not beside this checkout")
def test_quotes_are_in_deck_001():
    deck = _normalise(next(DECKS.glob("001_*.txt")).read_text(encoding="utf-8"))
    for layer, quote in QUOTES.items():
        assert _normalise(quote) in deck, f"{layer}: {quote!r} is not what deck 001 writes"


def _counts() -> dict[str, int]:
    from dlcourse.models import lenet5, lenet5_1998

    def own(module):
        return sum(p.numel() for p in module.parameters())

    modern, old = lenet5(), lenet5_1998()
    return {"C1": own(modern.features.C1), "C3": own(modern.features.C3), "sparse C3": own(old.C3),
            "output": own(modern.classifier.output), "output weights": modern.classifier.output.weight.numel()}


def test_counts_in_the_boxes_are_the_models():
    counts = _counts()
    assert counts == {"C1": 156, "C3": 2416, "sparse C3": 1516, "output": 850, "output weights": 840}
    for page, box in _boxes().items():
        prose = re.sub(r"\$[^$]*\$", " ", box)  # the quoted formulas are the slide's, not ours
        stated = {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*\d|\d", prose)}
        for name in ("C1", "C3", "output weights", "output"):
            assert counts[name] in stated, f"{page}: the box does not give the {name} count {counts[name]:,}"
        # every count of 100 or more that the box states is one the model confirms (1998 is a year)
        assert {n for n in stated if n >= 100} - {1998} <= set(counts.values()), (page, sorted(stated))


def test_architecture_page_prints_the_slide_formulas_it_checks():
    nb = nbformat.read(str(ROOT / "book/03-lenet/architectures.ipynb"), as_version=4)
    code = next(c.source for c in nb.cells if c.cell_type == "code" and "checks = [" in c.source)
    printed = re.findall(r'"([\d ×]+= \d+)"', code)
    assert [_normalise(p) for p in printed] == [_normalise(q) for q in QUOTES.values()]
