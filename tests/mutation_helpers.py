"""Mutation testing of assignment solutions: plant a known mistake, see which tests catch it.

A mutant is `name -> (solution text, wrong text, grade_id of the cell that must fail[, a
fragment of the failure message that shows the mutant's own effect])`.
`run_mutated` plants the mutants in the solution cells of a copy of the source notebook and
grades that copy as a student's submission with the real grader (sandboxed kernel, tests
in the grader's process); it returns, for every graded cell, whether it failed. Used by the
per-assignment tests to prove that hidden tests reject subtly wrong solutions and that each
mistake is caught by the cell meant to catch it. Mutants of one group touch different cells
and target different tests; where a sibling could break the same test (a broken model also
trains badly), the mutant names its message fragment and is credited only with that failure.
"""
from __future__ import annotations

import pathlib

import nbformat

from autograder import notebook_checks as checks
from autograder import release
from autograder.grade import grade_here

REPO = pathlib.Path(__file__).resolve().parents[1]


# the notebook's own training run and its test, left out where a mutant does not need them
TRAINING_CELL, CONVERGENCE_TEST = release.TRAINING_CELL, release.CONVERGENCE_TEST


def mutant_target(spec: tuple) -> str:
    """The graded cell a mutant `(old, new, cell[, message fragment])` must fail."""
    return spec[2]


def run_mutated(source: pathlib.Path, tmp_path: pathlib.Path, mutants: dict, messages: dict | None = None,
                train: bool | None = None) -> dict[str, bool]:
    """Grade the solution with `mutants` planted; return {grade_id: failed}.

    Training is the slow part of an assignment. With `train` True (correct answers written
    another way) the whole notebook runs. Otherwise the notebook's own training run is left
    out: when a mutant targets the convergence test, that test keeps its hidden part, the
    grader's own run, which alone must catch the mutant; when none does, the convergence
    test is left out of the result, since it was not exercised."""
    original = nbformat.read(source, as_version=4)
    nb = nbformat.read(source, as_version=4)
    for name, spec in mutants.items():
        old, new = spec[0], spec[1]
        hits = [c for c in nb.cells if old in c.source and checks.nbgrader_meta(c).get("solution")]
        assert len(hits) == 1, f"mutant {name}: solution text not found exactly once in a solution cell of {source.name}"
        hits[0].source = hits[0].source.replace(old, new)
    released = nbformat.read(REPO / "assignments" / source.parent.name / source.name, as_version=4)
    targets_convergence = any(mutant_target(spec) == CONVERGENCE_TEST for spec in mutants.values())
    if not train:   # the training's cells left out; a convergence test kept as the grader's own run where a mutant aims at it
        for notebook in (original, nb, released):
            release.leave_out_training(notebook, keep_hidden_convergence=targets_convergence)
    ex = grade_here(original, nb, released, assignment=source.parent.name)
    exercised = train or targets_convergence
    tests = [t for t in ex.tests if exercised or t.grade_id != CONVERGENCE_TEST]
    if messages is not None:
        messages.update({t.grade_id: t.message for t in tests})
    return {t.grade_id: t.status != "passed" for t in tests}


def assert_each_mutant_caught(failed: dict[str, bool], mutants: dict, may_also_fail=frozenset(),
                              messages: dict | None = None) -> None:
    """Every mutant fails its target cell, by its own effect where the mutant names one (a
    fragment of the failure message: a sibling that broke the same cell would say something
    else); no graded cell outside the targets fails."""
    targets = {mutant_target(spec) for spec in mutants.values()}
    for name, spec in mutants.items():
        cell = mutant_target(spec)
        assert failed[cell], f"mutant {name} passes {cell}"
        if len(spec) > 3:
            assert messages is not None, f"mutant {name} names its message: pass `messages` to run_mutated"
            assert spec[3] in messages[cell], f"mutant {name}: {cell} failed for another reason: {messages[cell]}"
    for gid, err in failed.items():
        if gid.startswith("test_") and gid not in targets | set(may_also_fail):
            assert not err, f"{gid} failed although no mutant targets it"


def grade_group(source: pathlib.Path, tmp_path: pathlib.Path, group: tuple[dict, set]) -> dict[str, str]:
    """Grade one group `(mutants, cells a sibling may also fail)` and check each mutant caught by
    its own cell; returns each graded cell's message, for checks of what the student reads."""
    mutants, may_also_fail = group
    messages: dict[str, str] = {}
    failed = run_mutated(source, tmp_path, mutants, messages)
    assert_each_mutant_caught(failed, mutants, may_also_fail, messages)
    return messages


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
