"""The graded questions of an assignment as the student's notebook presents them.

Feedback and the report speak of "Question 4: Convolution with loops (5 points)", not of
`test_conv2d_naive`: the number is the graded cell's place among the graded cells, the title
is the heading the notebook shows above it (the nearest Markdown heading before the cell),
the points are nbgrader's. Several graded cells under one heading are told apart by their
position ("Pooling, forward and backward (2)").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder import notebook_checks as checks

HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Question:
    grade_id: str
    number: int
    title: str
    points: float
    manual: bool = False   # a written answer, graded by hand

    @property
    def label(self) -> str:
        return f"Question {self.number}: {self.title}"


def _plain(heading: str) -> str:
    """A heading's text without Markdown emphasis, code marks, a leading "1." or a trailing "(5 points)"."""
    text = re.sub(r"[*_`]", "", heading)
    text = re.sub(r"\s*\(\d+(\.\d+)? points?(, [^)]*)?\)\s*$", "", text)   # the points are shown beside it
    return re.sub(r"^\d+[.)]\s+", "", text).strip()


def questions(source: nbformat.NotebookNode) -> dict[str, Question]:
    """grade_id -> Question, in the notebook's order."""
    found: dict[str, Question] = {}
    heading, under = "", 0
    for cell in source.cells:
        if checks.is_manual_answer(cell):  # a written answer: a question, and no heading of its own
            meta = checks.nbgrader_meta(cell)
            under += 1
            title = heading or meta["grade_id"]
            found[meta["grade_id"]] = Question(meta["grade_id"], len(found) + 1, title if under == 1 else f"{title} ({under})",
                                               float(meta.get("points", 0) or 0), manual=True)
        elif cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                m = HEADING.match(line)
                if m:
                    heading, under = _plain(m.group(1)), 0
        elif checks.is_graded_test(cell):
            meta = checks.nbgrader_meta(cell)
            under += 1
            title = heading or meta["grade_id"]
            found[meta["grade_id"]] = Question(meta["grade_id"], len(found) + 1, title if under == 1 else f"{title} ({under})",
                                               float(meta.get("points", 0) or 0))
    # the first of several cells under one heading is "(1)" once a second one is seen
    counts: dict[str, int] = {}
    for q in found.values():
        base = q.title.rsplit(" (", 1)[0] if q.title.endswith(")") and q.title.rsplit(" (", 1)[-1][:-1].isdigit() else q.title
        counts[base] = counts.get(base, 0) + 1
    return {g: (Question(q.grade_id, q.number, f"{q.title} (1)", q.points, q.manual) if counts.get(q.title, 0) > 1 else q)
            for g, q in found.items()}


def load(root: Path | str, assignment: str) -> dict[str, Question]:
    """The questions of `assignment` under `root`/solutions; {} when its source is not there."""
    folder = Path(root) / "solutions" / assignment
    source = next(iter(sorted(folder.glob("*.ipynb"))), None) if folder.is_dir() else None
    return questions(nbformat.read(source, as_version=4)) if source else {}
