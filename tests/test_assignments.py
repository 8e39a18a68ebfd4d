"""What every assignment shares, parametrised over the assignments under solutions/.

Each `tests/test_aNN.py` holds only what is particular to its assignment (its mutants, the
answers written other valid ways, thresholds and the calibration record); the tests here run
for every assignment, so that chapter 14's assignment is checked the day its folder appears:
- its source notebook is well formed (release checks, points, hidden tests in every graded cell,
  the cells the grader needs kept in the kernel: `WELL_FORMED` in its test module);
- the grader proves the committed release: with the solutions filled in it earns every point
  and every cell runs cleanly, and untouched it earns nothing (in `make test` with the training run
  and its convergence test left out, the slow part; in `make grading-test` whole, training and the
  grader's own convergence run included);
- it has a test module, and every graded cell is the target of at least one mutant there (a
  graded cell no mistake is shown to fail is a cell nobody knows to work).

Each test carries its assignment's xdist group, so it runs on the worker that runs the rest of
that assignment's tests.
"""
from __future__ import annotations

import argparse
import importlib
import pathlib

import nbformat
import pytest

from autograder import notebook_checks as checks
from autograder import release
from mutation_helpers import assert_source_well_formed

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                     if p.is_dir() and p.name[:1] == "a" and p.name[1:3].isdigit())


def _params():
    return [pytest.param(name, marks=[pytest.mark.slow, pytest.mark.xdist_group(name[:3])], id=name[:3])
            for name in ASSIGNMENTS]


def test_there_are_assignments_to_check():
    assert len(ASSIGNMENTS) >= 9, ASSIGNMENTS


def _module(name: str):
    """The assignment's own test module, tests/test_aNN.py."""
    path = ROOT / "tests" / f"test_{name[:3]}.py"
    assert path.exists(), f"{name} has no test module {path.relative_to(ROOT)} (its mutants and other valid answers)"
    return importlib.import_module(path.stem)


def _source(name: str) -> pathlib.Path:
    return ROOT / "solutions" / name / f"{name}.ipynb"


def _mutant_targets(value, depth: int = 0) -> set[str]:
    """Graded cells targeted by the mutants found in `value` (a mutant dict, or groups of them)."""
    if (isinstance(value, tuple) and len(value) >= 3 and isinstance(value[0], str) and isinstance(value[2], str)
            and value[2].startswith("test_")):
        return {value[2]}
    if depth > 3 or not isinstance(value, (dict, list, tuple)):
        return set()
    items = value.values() if isinstance(value, dict) else value
    return set().union(set(), *(_mutant_targets(v, depth + 1) for v in items))


@pytest.mark.parametrize("name", _params())
def test_source_is_well_formed(name):
    assert_source_well_formed(_source(name), **getattr(_module(name), "WELL_FORMED", {}))


@pytest.mark.parametrize("name", _params())
def test_release_is_proven_by_the_grader(name):
    # `make release-check` proves assignments/ current; here the grader proves that the release with
    # the solutions filled in earns every point with every cell clean (the training run and its test
    # left out: the test below runs them), and the untouched release none
    release.prove_committed(ROOT, name, echo=lambda *_: None, train=False)


def _trained():
    """The assignments with a training run (the others' proof above is already whole)."""
    return [p for p in _params() if any(checks.nbgrader_meta(c).get("grade_id") == release.TRAINING_CELL
                                        for c in nbformat.read(_source(p.values[0]), as_version=4).cells)]


@pytest.mark.e2e
@pytest.mark.parametrize("name", _trained())
def test_release_with_its_training_is_proven_by_the_grader(name):
    # the whole proof: the notebook's own training reaches its target and the grader's own run on its
    # own task passes, with every other cell as above
    release.prove_committed(ROOT, name, echo=lambda *_: None, train=True)


@pytest.mark.parametrize("name", _params())
def test_every_graded_cell_is_the_target_of_a_mutant(name):
    module = _module(name)
    targets = set().union(set(), *(_mutant_targets(v) for k, v in vars(module).items() if k.isupper()))
    graded = [checks.nbgrader_meta(c)["grade_id"] for c in nbformat.read(_source(name), as_version=4).cells
              if checks.is_graded_test(c)]
    assert graded and not [g for g in graded if g not in targets], \
        f"{name}: no mutant in tests/test_{name[:3]}.py is aimed at {[g for g in graded if g not in targets]}"


def _grading_defaults() -> argparse.Namespace:
    """`autograder grade`'s default limits, as its command line parses them."""
    from autograder import grade

    parser = argparse.ArgumentParser()
    grade.register(parser.add_subparsers())
    return parser.parse_args(["grade", "an-assignment", "a-folder"])


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_release_states_the_limits_it_is_graded_against(name):
    """Round 2: correct work lost points to a time limit no notebook mentioned. The opening cell of
    every release states the grader's default limits (CPU seconds per cell and per notebook, memory,
    files) and how long a waiting cell may wait, with the numbers `autograder grade` uses."""
    from autograder.sandbox import WALL_FACTOR

    d = _grading_defaults()
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 8: "eight", 10: "ten"}
    opening = " ".join(nbformat.read(ROOT / "assignments" / name / f"{name}.ipynb", as_version=4).cells[0].source.split())
    for fact in (f"a cell may use {d.cell_timeout:g} seconds of CPU time and the whole notebook {d.timeout:g}",
                 f"in {d.memory} MiB of memory that includes the files it writes ({d.disk} MiB of files at most)",
                 "waiting for a core on a busy grading machine does not count",
                 f"stopped once it has waited {words[int(WALL_FACTOR)]} times its limit"):
        assert fact in opening, f"{name}: the opening cell does not say {fact!r}"
