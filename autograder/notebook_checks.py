"""Static checks on nbgrader notebooks: is a source notebook well formed, and does a
released notebook leak anything it should not?

These run before and after nbgrader's generate step (see `autograder.release`). They read
notebooks only; nothing here executes code. Every problem is reported with the notebook
path and the cell (index and grade_id) so that an author can find it.
"""
from __future__ import annotations

import pathlib

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"

# Keys that editors, papermill or widget managers add and that carry no meaning for a
# released notebook: dropped so that regenerating gives the same bytes every time.
VOLATILE_NOTEBOOK_METADATA = ("language_info", "widgets", "papermill", "vscode", "toc", "celltoolbar")
VOLATILE_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime", "jupyter")


class NotebookError(Exception):
    """A notebook breaks a rule of the course; the message names the notebook and cell."""


def cell_label(index: int, cell) -> str:
    """'cell 7 (grade_id test_conv_naive)' - how errors point at a cell."""
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"cell {index}" + (f" (grade_id {gid})" if gid else "")


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_graded_test(cell) -> bool:
    """A code cell of autograder tests: graded, not a solution (nbgrader's 'tests' cell)."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_manual_answer(cell) -> bool:
    """A cell a human grades: graded and a solution (nbgrader's "manually graded answer"),
    Markdown (a written answer) or code (e.g. a plot). The autograder scores no part of it."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and bool(meta.get("solution"))


def graded_tests(nb) -> list[tuple[str, float]]:
    """(grade_id, points) of each autograded test cell, in the notebook's order."""
    return [(nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c).get("points", 0) or 0))
            for c in nb.cells if is_graded_test(c)]


def validate_source(path: pathlib.Path) -> list[str]:
    """Return the problems of a source (solution) notebook; empty when it is well formed.

    Checked: it parses as a notebook; grade_ids are present and unique on nbgrader cells;
    graded cells carry positive points; solution code cells have balanced solution
    markers; hidden-test markers are balanced and only in graded cells; exactly one code
    cell is tagged `parameters`; the kernel is python3.
    """
    path = pathlib.Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types on bad JSON
        return [f"{path}: cannot be read as a notebook ({exc})"]
    problems: list[str] = []
    seen: dict[str, int] = {}
    params = []
    for i, cell in enumerate(nb.cells):
        where = f"{path}: {cell_label(i, cell)}"
        src = cell.source
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags and cell.cell_type == "code":
            params.append(i)
        meta = nbgrader_meta(cell)
        if meta:
            gid = meta.get("grade_id")
            if not gid:
                problems.append(f"{where}: nbgrader cell without a grade_id")
            elif gid in seen:
                problems.append(f"{where}: duplicate grade_id {gid!r} (first used in cell {seen[gid]})")
            else:
                seen[gid] = i
            if meta.get("grade"):
                points = meta.get("points")
                if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
                    problems.append(f"{where}: graded cell has no positive 'points' (got {points!r})")
        if src.count(BEGIN_SOLUTION) != src.count(END_SOLUTION):
            problems.append(f"{where}: unbalanced '{BEGIN_SOLUTION}' / '{END_SOLUTION}'")
        if BEGIN_SOLUTION in src and not meta.get("solution"):
            problems.append(f"{where}: has '{BEGIN_SOLUTION}' but is not marked as a solution cell "
                            "(it would be released with the solution in it)")
        if src.count(BEGIN_HIDDEN) != src.count(END_HIDDEN):
            problems.append(f"{where}: unbalanced '{BEGIN_HIDDEN}' / '{END_HIDDEN}'")
        if BEGIN_HIDDEN in src and not is_graded_test(cell):
            problems.append(f"{where}: hidden tests outside a graded test cell would be released")
    if len(params) != 1:
        problems.append(f"{path}: needs exactly one code cell tagged 'parameters' (found {len(params)})")
    if not any(is_graded_test(c) for c in nb.cells):
        problems.append(f"{path}: has no graded test cell")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"{path}: kernelspec name must be 'python3' (got {kernel!r})")
    return problems


def _split_hidden(source: str) -> tuple[list[str], list[str]]:
    """Split a cell's lines into (outside hidden blocks, inside hidden blocks)."""
    outside, inside, hidden = [], [], False
    for line in source.splitlines():
        s = line.strip()
        if s.startswith(BEGIN_HIDDEN):
            hidden = True
        elif s.startswith(END_HIDDEN):
            hidden = False
        else:
            (inside if hidden else outside).append(s)
    return outside, inside


def hidden_only_lines(source_nb) -> set[str]:
    """Stripped, non-blank lines that occur in hidden tests and nowhere else in the source.

    A line that is also visible (say `import torch`) may legitimately be in the release,
    so only lines unique to the hidden blocks count as a leak.
    """
    visible, hidden = set(), set()
    for cell in source_nb.cells:
        outside, inside = _split_hidden(cell.source)
        visible.update(outside)
        hidden.update(inside)
    return {line for line in hidden - visible if line}


def check_released(source_path: pathlib.Path, released_path: pathlib.Path) -> list[str]:
    """Problems of a released notebook: leftover markers, hidden lines, outputs."""
    source_nb = nbformat.read(source_path, as_version=4)
    released_nb = nbformat.read(released_path, as_version=4)
    problems = []
    leaked = hidden_only_lines(source_nb)
    for i, cell in enumerate(released_nb.cells):
        where = f"{released_path}: {cell_label(i, cell)}"
        for marker in (BEGIN_SOLUTION, END_SOLUTION, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            if marker in cell.source:
                problems.append(f"{where}: still contains {marker!r}")
        for line in sorted({ln.strip() for ln in cell.source.splitlines()} & leaked):
            problems.append(f"{where}: leaks hidden test line {line!r}")
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            problems.append(f"{where}: has outputs or an execution count")
    return problems


def normalise(nb) -> "nbformat.NotebookNode":
    """Drop volatile metadata in place (see the tuples above) and return the notebook."""
    for key in VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    return nb
