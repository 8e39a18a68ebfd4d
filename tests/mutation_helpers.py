"""Mutation testing of assignment solutions: plant a known mistake, see which tests catch it.

A mutant is `name -> (solution text, wrong text, grade_id of the cell that must fail)`.
`run_mutated` plants the mutants in the solution cells of a copy of the source notebook and
grades that copy as a student's submission with the real grader (sandboxed kernel, tests
in the grader's process); it returns, for every graded cell, whether it failed. Used by the
per-assignment tests to prove that hidden tests reject subtly wrong solutions and that each
mistake is caught by the cell meant to catch it.
"""
from __future__ import annotations

import pathlib

import nbformat

from autograder import notebook_checks as checks
from autograder.grade import grade_here

REPO = pathlib.Path(__file__).resolve().parents[1]


TRAINING_CELL, CONVERGENCE_TEST = "training_run", "test_convergence"


def _skip_training(*notebooks) -> None:
    """Replace the notebook's training run by a comment in every copy the grader reads (source,
    submission, release), so that the convergence test fails at once instead of training twice."""
    for nb in notebooks:
        for cell in nb.cells:
            if checks.nbgrader_meta(cell).get("grade_id") == TRAINING_CELL:
                cell.source = "# training skipped: no mutant in this run targets the convergence test"


def run_mutated(source: pathlib.Path, tmp_path: pathlib.Path, mutants: dict, messages: dict | None = None,
                train: bool | None = None) -> dict[str, bool]:
    """Grade the solution with `mutants` planted; return {grade_id: failed}.

    Training is the slow part of an assignment and only the convergence test reads it: unless a
    mutant targets that test (or `train` is True), the run skips it and the result leaves the
    convergence test out, since it was not exercised."""
    original = nbformat.read(source, as_version=4)
    nb = nbformat.read(source, as_version=4)
    for name, (old, new, _) in mutants.items():
        hits = [c for c in nb.cells if old in c.source and checks.nbgrader_meta(c).get("solution")]
        assert len(hits) == 1, f"mutant {name}: solution text not found exactly once in a solution cell of {source.name}"
        hits[0].source = hits[0].source.replace(old, new)
    released = nbformat.read(REPO / "assignments" / source.parent.name / source.name, as_version=4)
    if train is None:
        train = any(cell == CONVERGENCE_TEST for (_, _, cell) in mutants.values())
    if not train:
        _skip_training(original, nb, released)
    ex = grade_here(original, nb, released, assignment=source.parent.name)
    tests = [t for t in ex.tests if train or t.grade_id != CONVERGENCE_TEST]
    if messages is not None:
        messages.update({t.grade_id: t.message for t in tests})
    return {t.grade_id: t.status != "passed" for t in tests}


def assert_each_mutant_caught(failed: dict[str, bool], mutants: dict, may_also_fail=frozenset()) -> None:
    """Every mutant fails its target cell; no graded cell outside the targets fails."""
    targets = {cell for (_, _, cell) in mutants.values()}
    for name, (_, _, cell) in mutants.items():
        assert failed[cell], f"mutant {name} passes {cell}"
    for gid, err in failed.items():
        if gid.startswith("test_") and gid not in targets | set(may_also_fail):
            assert not err, f"{gid} failed although no mutant targets it"


def assert_source_well_formed(source: pathlib.Path, points: int = 25, kernel_only: tuple[str, ...] = ()) -> None:
    """The solution notebook passes the release checks, is worth `points`, hides tests in every
    graded cell, and keeps the named cells (data, helpers the grader calls) in the kernel."""
    assert checks.validate_source(source) == []
    nb = nbformat.read(source, as_version=4)
    graded = [c for c in nb.cells if checks.is_graded_test(c)]
    assert sum(checks.nbgrader_meta(c).get("points", 0) for c in graded) == points
    assert all(checks.BEGIN_HIDDEN in c.source for c in graded), "a graded cell without hidden tests"
    tags = {checks.nbgrader_meta(c).get("grade_id"): c.metadata.get("tags", []) for c in nb.cells}
    for gid in kernel_only:
        assert "kernel-only" in tags.get(gid, []), f"{gid} is not tagged kernel-only"
