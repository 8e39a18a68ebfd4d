"""A feedback page as the student reads it (autograder.feedback): notes that place a problem in
the notebook's sections, never a bare cell index, and written answers shown as not answered,
awaiting their grade or graded by hand, with the total saying how many points are still to come."""
from __future__ import annotations

import nbformat

from autograder import feedback
from autograder.execute import _section
from autograder.questions import questions

TITLES = {"conv2d_naive": "Convolution with loops"}


def _note(message: str, section: str = "") -> str:
    return feedback._note({"message": message, "section": section}, TITLES)


def test_notes_name_the_section_never_a_cell_index():
    # the grader's three ways of naming a cell (autograder.execute._label), each placed for the student
    assert _note("cell 'conv2d_naive' (cell 21) raised NotImplementedError") == \
        "your code in \u201cConvolution with loops\u201d (conv2d_naive) raised NotImplementedError"
    assert _note("your added cell 12 (cell 12) raised KeyError: 'x'", "Pooling") == \
        "a cell you added under \u201cPooling\u201d raised KeyError: 'x'"
    assert _note("cell 30 (cell 30) raised NotImplementedError", "Convolution as one matrix product") == \
        ("a cell of the notebook under \u201cConvolution as one matrix product\u201d (not one you write) "
         "raised NotImplementedError")
    assert "(cell" not in _note("cell 'imports' (cell 4) raised ImportError", "Setup")
    assert _note("solution cell 'x' is missing from the submission") == "solution cell 'x' is missing from the submission"


def test_a_cells_section_is_the_heading_above_it_and_not_a_students_answer():
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Assignment\n## 5. Convolution as one matrix product (im2col)\ntext"),
        v4.new_code_cell("x = 1"),
        v4.new_markdown_cell("## I wrote this heading", metadata={"nbgrader": {"solution": True, "grade": True,
                                                                               "grade_id": "w", "points": 2}}),
        v4.new_code_cell("y = 2")])
    assert _section(nb, 1) == "Convolution as one matrix product (im2col)"
    assert _section(nb, 3) == "Convolution as one matrix product (im2col)"   # a student's text is no section
    assert _section(nb, 0) == ""


def _source():
    v4 = nbformat.v4
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("## Part 1: adding (1 point)"),
        v4.new_code_cell("assert add(1, 2) == 3", metadata={"nbgrader": {"grade": True, "solution": False,
                                                                          "grade_id": "test_add", "points": 1}}),
        v4.new_markdown_cell("## Part 2: in words (2 points, graded by hand)"),
        v4.new_markdown_cell("model answer", metadata={"nbgrader": {"grade": True, "solution": True,
                                                                    "grade_id": "why", "points": 2}})])


def test_written_answers_are_questions_and_their_state_is_on_the_page():
    qs = questions(_source())
    assert [(q.label, q.points, q.manual) for q in qs.values()] == [
        ("Question 1: Part 1: adding", 1.0, False), ("Question 2: Part 2: in words", 2.0, True)]
    entry = {"student": "ada", "flags": [], "diagnostics": [],
             "tests": [{"grade_id": "test_add", "points": 1.0, "score": 1.0, "status": "passed", "message": ""}],
             "manual": [{"grade_id": "why", "points": 2.0, "answered": True, "digest": "ab"}]}
    awaiting = feedback.page("a99", entry, "names", qs)
    assert "Score: <b>1 / 3</b>" in awaiting and "2 of the points are for written answers" in awaiting
    assert "awaiting grading \u00b7 \u2013 / 2 points" in awaiting and "class='msg'" not in awaiting
    blank = feedback.page("a99", {**entry, "manual": [{**entry["manual"][0], "answered": False}]}, "full", qs)
    assert "not answered \u00b7 0 / 2 points" in blank and "written answers your instructor" not in blank
    # as `results.with_human_scores` lists a graded answer among the tests
    graded = {**entry, "tests": entry["tests"] + [{"grade_id": "why", "points": 2.0, "score": 1.5, "manual": True,
                                                   "status": "graded by hand", "message": ""}]}
    page = feedback.page("a99", graded, "full", qs)
    assert "Score: <b>2.5 / 3</b>" in page and "graded by hand \u00b7 1.5 / 2 points" in page
    assert "written answers your instructor" not in page
    scores_only = feedback.page("a99", graded, "scores", qs)
    assert "1 of 1 tests passed" in scores_only and "2.5 / 3" in scores_only
