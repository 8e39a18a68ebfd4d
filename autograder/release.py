"""`autograder release`: turn solutions/aNN-slug/ into the student version assignments/aNN-slug/.

For each assignment the steps run in this order (each one needs the previous):
1. validate the source notebook(s): well-formed nbgrader metadata, a parameters cell
   (cheap, and nbgrader's own errors are harder to read);
2. nbgrader's generate step, run in a temporary course directory with a temporary
   gradebook, so that releasing never writes gradebook.db (or anything else) into the
   repository;
3. normalise the generated notebooks (drop volatile metadata) so that the same source
   gives the same bytes every time, which is what makes `--check` meaningful;
4. static checks of the release: no solution or hidden-test markers, no hidden test line,
   no outputs;
5. prove, with the grader itself (sandboxed kernel, tests in the grader's process), that the
   release with the solutions filled in earns every point with no cell raising an error or
   drawing a remark (it runs top to bottom, visible tests included, with the library's
   answers withheld as in a student's kernel), and that the untouched release earns none;
6. write assignments/aNN-slug/ (release) or compare with it (`--check`).
Nothing is written when any step fails.
"""
from __future__ import annotations

import argparse
import filecmp
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

import nbformat

from autograder import notebook_checks as checks
from autograder.environment import gradebook_schema_in_process, path_with_interpreter_bin

ASSIGNMENT_RE = re.compile(r"^a\d\d-[a-z0-9][a-z0-9-]*$")
DEFAULT_CELL_TIMEOUT = 300  # seconds per cell when executing notebooks


class ReleaseError(Exception):
    """Releasing an assignment failed; the message says which notebook/cell and why."""


def course_root(start: pathlib.Path | None = None) -> pathlib.Path:
    """The directory holding nbgrader_config.py: `start` or one of its parents."""
    here = pathlib.Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "nbgrader_config.py").is_file():
            return d
    raise ReleaseError(f"no nbgrader_config.py in {here} or its parents: run from the course repository")


def _course_config(root: pathlib.Path):
    """The course's nbgrader configuration (loaded the way nbgrader itself loads it)."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def list_assignments(root: pathlib.Path, source_dir: str = "solutions") -> list[str]:
    src = root / source_dir
    if not src.is_dir():
        return []
    return sorted(p.name for p in src.iterdir() if p.is_dir() and ASSIGNMENT_RE.match(p.name))


# --------------------------------------------------------------------------- generate

def generate(root: pathlib.Path, assignment: str, out_dir: pathlib.Path) -> pathlib.Path:
    """Run nbgrader's generate step for one assignment; return the generated folder.

    The source folder is copied into a scratch course directory (beside a scratch
    gradebook) so that nbgrader writes nothing into the repository. The result lands in
    `out_dir / assignment`, normalised.
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.converters.base import NbGraderException

    cfg = _course_config(root)
    source_dir = cfg.CourseDirectory.get("source_directory", "solutions")
    src = root / source_dir / assignment
    if not src.is_dir():
        raise ReleaseError(f"{source_dir}/{assignment} does not exist")
    with tempfile.TemporaryDirectory(prefix="release-course-") as scratch:
        scratch = pathlib.Path(scratch)
        shutil.copytree(src, scratch / "source" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
        cfg.CourseDirectory.root = str(scratch)
        cfg.CourseDirectory.source_directory = "source"
        cfg.CourseDirectory.release_directory = "release"
        cfg.CourseDirectory.db_url = f"sqlite:///{scratch / 'gradebook.db'}"
        cfg.CourseDirectory.assignment_id = assignment
        cfg.GenerateAssignment.force = True
        log = logging.getLogger("autograder.release.nbgrader")
        log.setLevel(logging.WARNING)
        coursedir = CourseDirectory(config=cfg)
        converter = GenerateAssignment(coursedir=coursedir, config=cfg, log=log)
        # nbgrader's gradebook reads its schema head in this process, or runs `alembic` from PATH
        # (see autograder/environment.py)
        gradebook_schema_in_process()
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = path_with_interpreter_bin()
        try:
            converter.start()
        except NbGraderException as exc:
            raise ReleaseError(f"nbgrader could not generate {assignment}: {exc}") from exc
        finally:
            os.environ["PATH"] = old_path
        generated = scratch / "release" / assignment
        if not generated.is_dir():
            raise ReleaseError(f"nbgrader produced no release for {assignment}")
        dest = out_dir / assignment
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(generated, dest)
    for nb_path in sorted(dest.rglob("*.ipynb")):
        nb = checks.normalise(nbformat.read(nb_path, as_version=4))
        nbformat.write(nb, nb_path)
        os.chmod(nb_path, 0o644)
    return dest


# The cells of an assignment's training: the notebook's own run and the test that checks it (whose
# hidden part is the grader's own training on its own task).
TRAINING_CELL, CONVERGENCE_TEST = "training_run", "test_convergence"
LEFT_OUT = "# left out: {}"


def leave_out_training(nb: nbformat.NotebookNode, keep_hidden_convergence: bool = False) -> nbformat.NotebookNode:
    """Leave out, in place, the notebook's own training run (training is the slow part of grading an
    assignment). With `keep_hidden_convergence` the convergence test keeps only its hidden part, the
    grader's own training, which then alone decides that test; without it, the test is left out too
    (replaced by a comment: it passes and proves nothing, so callers leave it out of their results)."""
    for cell in nb.cells:
        gid = checks.nbgrader_meta(cell).get("grade_id")
        if gid == TRAINING_CELL:
            cell.source = LEFT_OUT.format("the notebook's own training run")
        elif gid == CONVERGENCE_TEST:
            hidden = cell.source.find(checks.BEGIN_HIDDEN)
            cell.source = (cell.source[hidden:] if keep_hidden_convergence and hidden >= 0
                           else LEFT_OUT.format("the checks of the training run"))
    return nb


def _grade(source_nb: pathlib.Path, submitted: nbformat.NotebookNode, released_nb: pathlib.Path, timeout: int,
           train: bool = True):
    from autograder.grade import grade_here

    source = nbformat.read(source_nb, as_version=4)
    release = nbformat.read(released_nb, as_version=4)
    if not train:
        for nb in (source, submitted, release):
            leave_out_training(nb)
    return grade_here(source, submitted, release, assignment=source_nb.parent.name, cell_timeout=timeout)


def prove_solution_passes(source_nb: pathlib.Path, released_nb: pathlib.Path, timeout: int = DEFAULT_CELL_TIMEOUT,
                          train: bool = True) -> None:
    """Graded by the grader itself, the release with the solutions filled in (what a student
    who answered everything submits) earns every point, and no cell of it raises or draws a
    remark.

    Grading the filled-in release rather than the source proves in one run what a student
    meets: every cell of the release runs top to bottom (visible tests included), in the
    sandbox, where the course library's answers are withheld as they are in a student's
    kernel, and nothing the release lost in generation (a locked cell, a helper) is missing.

    With `train` False the training run and its convergence test are left out (everything else
    runs): the quick proof; `make grading-test` gives the whole one.
    """
    from autograder.demo import fill_release, solution_answers

    source = nbformat.read(source_nb, as_version=4)
    answers = solution_answers(source)
    filled = fill_release(nbformat.read(released_nb, as_version=4), answers, set(answers))
    ex = _grade(source_nb, filled, released_nb, timeout, train)
    failed = [t for t in ex.tests if t.status != "passed"]
    problems = [f"  {t.grade_id}: {t.message or t.status}" for t in failed]
    problems += [f"  {d['cell']}: {d['message']}" for d in ex.diagnostics]
    if ex.grader_error:
        problems.append(f"  {ex.grader_error}")
    if problems:
        raise ReleaseError(f"{released_nb}: with the solutions filled in, the student's notebook does not earn "
                           "every point cleanly:\n" + "\n".join(problems))


def prove_release_fails(source_nb: pathlib.Path, released_nb: pathlib.Path, timeout: int = DEFAULT_CELL_TIMEOUT) -> None:
    """Graded by the grader itself, the untouched student notebook earns nothing.

    A graded cell that passes on the stubs would give points for doing nothing.
    """
    ex = _grade(source_nb, nbformat.read(released_nb, as_version=4), released_nb, timeout)
    passing = [t.grade_id for t in ex.tests if t.score > 0]
    if passing:
        raise ReleaseError(f"{released_nb}: graded cell(s) pass on the untouched release: {', '.join(passing)}")


# --------------------------------------------------------------------------- compare
def _differences(fresh: pathlib.Path, committed: pathlib.Path) -> list[str]:
    """Relative paths that differ between two release folders (notebooks compared normalised)."""
    if not committed.is_dir():
        return ["(folder missing)"]

    def files(d):
        return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()
                and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}

    a, b = files(fresh), files(committed)
    diffs = sorted((a ^ b))
    for rel in sorted(a & b):
        if rel.endswith(".ipynb"):
            try:
                left = checks.normalise(nbformat.read(fresh / rel, as_version=4))
                right = checks.normalise(nbformat.read(committed / rel, as_version=4))
            except Exception:
                diffs.append(rel)
                continue
            if nbformat.writes(left) != nbformat.writes(right):
                diffs.append(rel)
        elif not filecmp.cmp(fresh / rel, committed / rel, shallow=False):
            diffs.append(rel)
    return diffs


def prove_all(notebooks: list[pathlib.Path], released_dir: pathlib.Path, assignment: str,
              timeout: int = DEFAULT_CELL_TIMEOUT, echo=None, train: bool = True) -> None:
    """The two proofs for each source notebook against its release in `released_dir` (with `train`
    False, the first leaves out the training run and its test)."""
    echo = echo or (lambda line: print(line, flush=True))
    for nb in notebooks:
        t0 = time.perf_counter()
        prove_solution_passes(nb, released_dir / nb.name, timeout, train)
        what = "earns every point" if train else "earns every point but the training's"
        echo(f"{assignment}: {nb.name} filled in {what}, every cell runs ({time.perf_counter() - t0:.1f} s)")
        t0 = time.perf_counter()
        prove_release_fails(nb, released_dir / nb.name, timeout)
        echo(f"{assignment}: untouched release earns nothing ({time.perf_counter() - t0:.1f} s)")


def prove_committed(root: pathlib.Path, assignment: str, timeout: int = DEFAULT_CELL_TIMEOUT, echo=None,
                    train: bool = True) -> None:
    """The proofs against the committed release (`release --check --no-prove` says it is current)."""
    cfg = _course_config(root)
    src = root / cfg.CourseDirectory.get("source_directory", "solutions") / assignment
    released = root / cfg.CourseDirectory.get("release_directory", "assignments") / assignment
    prove_all(sorted(src.glob("*.ipynb")), released, assignment, timeout, echo, train)


# --------------------------------------------------------------------------- one assignment
def release_one(root: pathlib.Path, assignment: str, check: bool = False, prove: bool = True,
                timeout: int = DEFAULT_CELL_TIMEOUT, echo=None) -> None:
    """Release (or with `check`, verify) one assignment; raise ReleaseError on any failure.

    `echo` receives one progress line per step (default: printed to stdout).
    """
    echo = echo or (lambda line: print(line, flush=True))
    cfg = _course_config(root)
    source_dir = cfg.CourseDirectory.get("source_directory", "solutions")
    release_dir = cfg.CourseDirectory.get("release_directory", "assignments")
    src = root / source_dir / assignment
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise ReleaseError(f"{source_dir}/{assignment} contains no notebook")
    problems = [p for nb in notebooks for p in checks.validate_source(nb)]
    if problems:
        raise ReleaseError("malformed source notebook:\n  " + "\n  ".join(problems))

    committed = root / release_dir / assignment
    with tempfile.TemporaryDirectory(prefix="release-out-") as out:
        t0 = time.perf_counter()
        fresh = generate(root, assignment, pathlib.Path(out))
        echo(f"{assignment}: generated with nbgrader ({time.perf_counter() - t0:.1f} s)")
        problems = [p for nb in notebooks for p in checks.check_released(nb, fresh / nb.name)]
        if problems:
            raise ReleaseError("the release leaks or keeps what it should not:\n  " + "\n  ".join(problems))
        if check:
            # Staleness first: it is cheap and the most common failure.
            diffs = _differences(fresh, committed)
            if diffs:
                raise ReleaseError(f"{release_dir}/{assignment} is out of date: run make release "
                                   f"(differs: {', '.join(diffs)})")
        if prove:
            prove_all(notebooks, fresh, assignment, timeout, echo)
        if not check:
            if committed.exists():
                shutil.rmtree(committed)
            committed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(fresh, committed)
            echo(f"{assignment}: wrote {release_dir}/{assignment}/")
        else:
            echo(f"{assignment}: {release_dir}/{assignment} is up to date")


# --------------------------------------------------------------------------- command line
def run(args: argparse.Namespace) -> int:
    try:
        root = course_root(args.root)
        available = list_assignments(root, _course_config(root).CourseDirectory.get("source_directory", "solutions"))
        names = available if args.all else list(args.assignments)
        if args.all and not names:
            print(f"autograder release: no assignments under {root}/solutions: nothing to do")
            return 0
        if not names:
            print("autograder release: name an assignment or pass --all "
                  f"(available: {', '.join(available) or 'none'})", file=sys.stderr)
            return 2
        unknown = [n for n in names if n not in available]
        if unknown:
            print(f"autograder release: unknown assignment(s) {', '.join(unknown)} "
                  f"(available: {', '.join(available) or 'none'})", file=sys.stderr)
            return 2
    except ReleaseError as exc:
        print(f"autograder release: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            release_one(root, name, check=args.check, prove=not args.no_prove, timeout=args.timeout)
        except ReleaseError as exc:
            print(f"autograder release: {name}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "release", help="generate assignments/ from solutions/ and prove the tests work",
        description=__doc__.split("\n\n")[0])
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="e.g. a01-convolution")
    p.add_argument("--all", action="store_true", help="every assignment under solutions/")
    p.add_argument("--check", action="store_true",
                   help="write nothing; fail when assignments/ is stale or a proof fails")
    p.add_argument("--no-prove", action="store_true",
                   help="skip executing the notebooks (generation and static checks only)")
    p.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell")
    p.add_argument("--root", default=None, help="course root (default: found from the current directory)")
    p.set_defaults(func=run)
