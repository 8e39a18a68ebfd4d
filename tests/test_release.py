"""`autograder release` with real nbgrader and real kernels on tiny fixture courses.

Each fixture is a throw-away course directory in tmp_path (an nbgrader_config.py copied
from the repository and one source notebook), named by scenario. Nothing touches the
repository's own solutions/ or assignments/.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import notebook_checks as checks
from autograder import release

REPO = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENT = "a99-tiny"
SECRET = "assert double(21) == 42  # hidden check"

pytestmark = pytest.mark.xdist_group("release")


def _meta(**kw):
    return {"nbgrader": dict(schema_version=3, **kw)}


def _cells(test_source=None, solution_body="    return 2 * x"):
    """Cells of a one-function assignment: parameters, instructions, solution, graded test."""
    if test_source is None:
        test_source = f"assert double(2) == 4\n### BEGIN HIDDEN TESTS\n{SECRET}\n### END HIDDEN TESTS"
    return [
        new_code_cell('PROFILE = "fast"\nDEVICE = "auto"\nSEED = 0', metadata={"tags": ["parameters"]}),
        new_markdown_cell("Write `double(x)`.", metadata=_meta(grade=False, solution=False, locked=True,
                                                               grade_id="intro")),
        new_code_cell(f"def double(x):\n    ### BEGIN SOLUTION\n{solution_body}\n    ### END SOLUTION",
                      metadata=_meta(grade=False, solution=True, locked=False, grade_id="double")),
        new_code_cell(test_source, metadata=_meta(grade=True, solution=False, locked=True, points=2,
                                                  grade_id="test_double")),
    ]


def make_course(root: pathlib.Path, cells) -> pathlib.Path:
    """Write a course directory with solutions/a99-tiny/a99-tiny.ipynb; return its root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    folder = root / "solutions" / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    return root


def released_nb(root):
    return nbformat.read(root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


@pytest.mark.slow
def test_good_assignment_is_released_with_stub_and_without_hidden_tests(tmp_path):
    root = make_course(tmp_path / "good", _cells())
    release.release_one(root, ASSIGNMENT, echo=lambda *_: None)  # includes both proofs
    nb = released_nb(root)
    solution = next(c for c in nb.cells if checks.nbgrader_meta(c).get("grade_id") == "double")
    assert "raise NotImplementedError()" in solution.source
    assert "return 2 * x" not in solution.source
    test = next(c for c in nb.cells if checks.is_graded_test(c))
    assert "assert double(2) == 4" in test.source  # visible part kept
    text = nbformat.writes(nb)
    assert SECRET not in text and "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    # the scratch gradebook never lands in the course directory
    assert not list(root.rglob("gradebook.db"))


@pytest.mark.slow
def test_graded_cell_passing_on_the_stub_is_reported(tmp_path):
    # This test never calls the student's function, so it passes on the untouched release.
    root = make_course(tmp_path / "free-points", _cells(test_source="assert 1 + 1 == 2"))
    with pytest.raises(release.ReleaseError, match="(?s)pass on the untouched release.*test_double"):
        release.release_one(root, ASSIGNMENT, echo=lambda *_: None)
    assert not (root / "assignments" / ASSIGNMENT).exists()  # nothing written on failure


@pytest.mark.slow
def test_solution_failing_its_own_test_is_reported(tmp_path):
    root = make_course(tmp_path / "wrong-solution", _cells(solution_body="    return 3 * x"))
    with pytest.raises(release.ReleaseError, match=r"(?s)does not earn every point cleanly.*test_double: failed: assert double\(2\) == 4"):
        release.release_one(root, ASSIGNMENT, echo=lambda *_: None)


def test_stale_assignments_detected_by_check(tmp_path):
    root = make_course(tmp_path / "stale", _cells())
    release.release_one(root, ASSIGNMENT, prove=False, echo=lambda *_: None)
    release.release_one(root, ASSIGNMENT, check=True, prove=False, echo=lambda *_: None)  # fresh: fine
    # the author edits the instructions but forgets to release again
    src = root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(src, as_version=4)
    nb.cells[1].source = "Write `double(x)`, which returns twice its argument."
    nbformat.write(nb, src)
    cmd = [sys.executable, "-m", "autograder", "release", "--all", "--check", "--no-prove", "--root", str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"assignments/{ASSIGNMENT} is out of date: run make release" in proc.stderr
    # a missing release folder is stale too
    (root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").unlink()
    with pytest.raises(release.ReleaseError, match="out of date"):
        release.release_one(root, ASSIGNMENT, check=True, prove=False, echo=lambda *_: None)


def test_generation_is_deterministic(tmp_path):
    root = make_course(tmp_path / "twice", _cells())
    out = release.generate(root, ASSIGNMENT, tmp_path / "one")
    first = (out / f"{ASSIGNMENT}.ipynb").read_bytes()
    out = release.generate(root, ASSIGNMENT, tmp_path / "two")
    assert (out / f"{ASSIGNMENT}.ipynb").read_bytes() == first


@pytest.mark.parametrize("scenario, mutate, message", [
    ("duplicate-grade-id", lambda cells: cells[2].metadata["nbgrader"].update(grade_id="test_double"),
     "cell 3 \\(grade_id test_double\\): duplicate grade_id 'test_double' \\(first used in cell 2\\)"),
    ("graded-without-points", lambda cells: cells[3].metadata["nbgrader"].pop("points"),
     "cell 3 \\(grade_id test_double\\): graded cell has no positive 'points'"),
    ("no-parameters-cell", lambda cells: cells[0].metadata.pop("tags"),
     "needs exactly one code cell tagged 'parameters' \\(found 0\\)"),
    ("solution-marker-in-plain-cell", lambda cells: cells[0].update(source="### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
     "cell 0: has '### BEGIN SOLUTION' but is not marked as a solution cell"),
])
def test_malformed_source_named_with_cell(tmp_path, scenario, mutate, message):
    cells = _cells()
    mutate(cells)
    root = make_course(tmp_path / scenario, cells)
    with pytest.raises(release.ReleaseError, match=f"a99-tiny.ipynb: {message}"):
        release.release_one(root, ASSIGNMENT, prove=False, echo=lambda *_: None)


def test_unknown_assignment_is_a_usage_error(tmp_path):
    root = make_course(tmp_path / "course", _cells())
    proc = subprocess.run([sys.executable, "-m", "autograder", "release", "a42-nope", "--root", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown assignment(s) a42-nope (available: a99-tiny)" in proc.stderr


def test_leak_check_finds_hidden_line_copied_into_visible_part(tmp_path):
    # A hidden line that an author also pasted in a markdown cell would be released.
    root = make_course(tmp_path / "leak", _cells())
    src = root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    rel = tmp_path / "released.ipynb"
    nb = nbformat.read(src, as_version=4)
    nb.cells[1].source = SECRET
    nbformat.write(nb, rel)
    problems = checks.check_released(src, rel)
    assert any("leaks hidden test line" in p and "cell 1 (grade_id intro)" in p for p in problems)
