"""Mutation testing of assignment solutions: plant a known mistake, see which tests catch it.

A mutant is `name -> (solution text, wrong text, grade_id of the cell that must fail)`.
`run_mutated` edits a copy of the source notebook, executes it with the release's own
executor (every cell runs, errors allowed) and returns, for every graded cell, whether
it failed. Used by the per-assignment tests to prove that hidden tests reject subtly
wrong solutions and that each mistake is caught by the cell meant to catch it.
"""
from __future__ import annotations

import pathlib

import nbformat

from autograder import notebook_checks as checks
from autograder import release


def run_mutated(source: pathlib.Path, tmp_path: pathlib.Path, mutants: dict) -> dict[str, bool]:
    nb = nbformat.read(source, as_version=4)
    for name, (old, new, _) in mutants.items():
        hits = [c for c in nb.cells if old in c.source]
        assert len(hits) == 1, f"mutant {name}: solution text not found exactly once in {source.name}"
        hits[0].source = hits[0].source.replace(old, new)
    path = tmp_path / source.name
    nbformat.write(nb, path)
    executed = release.execute(path, allow_errors=True)
    by_id = {checks.nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(executed.cells)}
    errors = checks.error_cells(executed, by_id.values())
    return {gid: errors[i] for gid, i in by_id.items() if gid}


def assert_each_mutant_caught(failed: dict[str, bool], mutants: dict, may_also_fail=frozenset()) -> None:
    """Every mutant fails its target cell; no graded cell outside the targets fails."""
    targets = {cell for (_, _, cell) in mutants.values()}
    for name, (_, _, cell) in mutants.items():
        assert failed[cell], f"mutant {name} passes {cell}"
    for gid, err in failed.items():
        if gid.startswith("test_") and gid not in targets | set(may_also_fail):
            assert not err, f"{gid} failed although no mutant targets it"
