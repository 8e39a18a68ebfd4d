"""Manually graded answers: the written answers (and plots) that a human scores in nbgrader's
formgrader while the autograder scores the tests.

An assignment marks such a cell as nbgrader does ("Manually graded answer": graded and a
solution, Markdown or code). The autograder never scores it; it records whether the student
answered (an answer left as the release's stub gets 0 at once, as in nbgrader, and nobody
has to look at it) and a digest of the answer, so that a resubmission with a changed answer
is put back in front of the human. The human's score lives in nbgrader's gradebook, the
record of truth that feedback, the report and the exports read.

The formgrader shows a copy of the student's notebook (`review_copy`). Its page is served
from the instructor's own Jupyter server, so what a student wrote must not run there: the
copy keeps only inert outputs (text and bitmap images) and each written answer as Markdown
rendered to HTML and passed through an allow-list (bleach: no scripts, no event handlers, no
`javascript:` links), whatever the formgrader's own settings are.
"""
from __future__ import annotations

import copy
import hashlib
import re

import nbformat

from autograder import notebook_checks as checks
from autograder.restore import source_of

# Output data a review page may show: text and bitmaps. HTML, SVG, JavaScript and widget
# views can all carry script.
INERT_DATA = ("text/plain", "image/png", "image/jpeg")


def manual_cells(source: nbformat.NotebookNode) -> list[tuple[str, float, str]]:
    """(grade_id, points, cell type) of each manually graded answer, in the notebook's order."""
    return [(checks.nbgrader_meta(c)["grade_id"], float(checks.nbgrader_meta(c).get("points", 0) or 0), c.cell_type)
            for c in source.cells if checks.is_manual_answer(c)]


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def answers(source: nbformat.NotebookNode, graded: nbformat.NotebookNode,
            release: nbformat.NotebookNode | None) -> list[dict]:
    """Per manual cell of `source`: whether the graded notebook (restored from the submission)
    holds an answer other than the release's stub, and the answer's digest."""
    stubs = {checks.nbgrader_meta(c).get("grade_id"): source_of(c).strip() for c in (release.cells if release else [])}
    written = {checks.nbgrader_meta(c).get("grade_id"): source_of(c) for c in graded.cells if checks.is_manual_answer(c)}
    out = []
    for gid, points, _ in manual_cells(source):
        text = written.get(gid, "")
        answered = bool(text.strip()) and text.strip() != stubs.get(gid, "")
        out.append({"grade_id": gid, "points": points, "answered": answered, "digest": _digest(text) if answered else ""})
    return out


def _inert_outputs(outputs: list) -> list:
    kept = []
    for out in outputs:
        if out.get("output_type") in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in INERT_DATA}
            if data:
                kept.append({**out, "data": data, "metadata": {}})
        elif out.get("output_type") in ("stream", "error"):
            kept.append(out)
    return kept


def safe_markdown(text: str) -> str:
    """A student's Markdown as HTML that keeps its formatting (emphasis, lists, code, math) and
    loses anything that runs: raw HTML is escaped or dropped by the allow-list, links keep
    only the http, https and mailto schemes."""
    import bleach
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    allowed = set(bleach.sanitizer.ALLOWED_TAGS) | {"p", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr",
                                                    "table", "thead", "tbody", "tr", "th", "td", "sub", "sup", "span"}
    html = bleach.clean(markdown2html_mistune(text), tags=allowed, attributes={"a": ["href", "title"]},
                        protocols=["http", "https", "mailto"], strip=False)
    # The page renders this cell as Markdown again. HTML stays one raw block up to a blank line,
    # and text after one would be read as Markdown anew (an escaped "\\[x](javascript:...)" would
    # become a link): no line is left blank.
    return re.sub(r"\n[ \t]*(?=\n)", "\n&#8203;", html)


def review_copy(graded: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The graded notebook as the formgrader may show it: instructor cells as they are, the
    student's written answers sanitized, outputs reduced to text and bitmaps, no attachments."""
    nb = copy.deepcopy(graded)
    for cell in nb.cells:
        cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs = _inert_outputs(cell.get("outputs", []))
        elif cell.cell_type == "markdown" and checks.nbgrader_meta(cell).get("solution"):
            cell.source = safe_markdown(source_of(cell))
    return nb


def human_scores(gb, assignment: str, notebook: str, student: str, cells: list[str]) -> dict[str, dict]:
    """grade_id -> {"score": the human's score or None, "needs_grading": bool} from the gradebook."""
    from nbgrader.api import MissingEntry

    out = {}
    for gid in cells:
        try:
            g = gb.find_grade(gid, notebook, assignment, student)
        except MissingEntry:
            out[gid] = {"score": None, "needs_grading": True}
            continue
        score = g.manual_score if g.manual_score is not None else g.auto_score
        out[gid] = {"score": score, "needs_grading": bool(g.needs_manual_grade) or score is None}
    return out
