"""`autograder demo` (make grade-demo): grade four sample submissions and print where results are.

The samples are derived, not stored: "correct" is the source notebook's solutions put
into the released notebook, "partial" keeps only the first solution, "broken" is not
JSON, "hostile" answers nothing but makes torch.allclose and torch.equal always say True
in its kernel (which earned full marks when tests ran there; now it earns nothing and is
flagged).
Uses a01-convolution when it has been released, else the test fixture assignment.
"""
from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import nbformat

from autograder.grade import REPO_ROOT, run as grade_run

SOLUTION = re.compile(r"[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)[ \t]*### END SOLUTION[^\n]*\n?", re.S)


def solution_answers(source: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> the instructor's solution code (BEGIN/END SOLUTION markers removed)."""
    return {c.metadata["nbgrader"]["grade_id"]: SOLUTION.sub(r"\1", c.source) for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def fill_release(release: nbformat.NotebookNode, answers: dict[str, str], keep) -> nbformat.NotebookNode:
    """A student's notebook: the release with the solution cells in `keep` answered."""
    nb = copy.deepcopy(release)
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and gid in keep:
            c.source = answers[gid]
    return nb


def load_assignment(root: Path, assignment: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode, str]:
    """(source notebook, released notebook, notebook file name) of an assignment."""
    src_path = next((root / "solutions" / assignment).glob("*.ipynb"))
    source = nbformat.read(src_path, as_version=4)
    release = nbformat.read(root / "assignments" / assignment / src_path.name, as_version=4)
    return source, release, src_path.name


def samples(root: Path, assignment: str, folder: Path) -> None:
    source, release, _ = load_assignment(root, assignment)
    answers = solution_answers(source)

    def filled(keep):
        return fill_release(release, answers, keep)

    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(filled(set(answers)), folder / "correct.ipynb")
    nbformat.write(filled(set(list(answers)[:1])), folder / "partial.ipynb")
    (folder / "broken.ipynb").write_text('{"cells": [ "truncated by the LMS')
    hostile = filled(set())
    hostile.cells.append(nbformat.v4.new_code_cell("import torch\ntorch.allclose = lambda *a, **k: True\n"
                                                   "torch.equal = lambda *a, **k: True"))
    first_solution = next(i for i, c in enumerate(hostile.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    hostile.cells.insert(first_solution, hostile.cells.pop())
    nbformat.write(hostile, folder / "hostile.ipynb")


def run(args) -> int:
    root = REPO_ROOT
    assignment = "a01-convolution"
    if not (root / "assignments" / assignment).exists():
        root, assignment = REPO_ROOT / "tests" / "fixtures" / "grading", "fix"
    out = Path(args.output).resolve()
    samples(root, assignment, out / "samples")
    ns = argparse.Namespace(assignment=assignment, submissions=str(out / "samples"), root=str(root), output=str(out),
                            db=None, force=True, workers=2, threads=1, scheduler=None, profile="fast", device="cpu",
                            seed=0, cell_timeout=60.0, timeout=600.0, memory=4096, disk=512, isolation="auto", scratch=None,
                            quiet=False)
    grade_run(ns)
    from autograder import export, feedback, report
    for mod in (feedback, export, report):
        mod.run(argparse.Namespace(output=str(out), csv=None))
    print(f"demo results: {out} (feedback/*.html, grades.csv, report.md, scores.png, gradebook.db)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="grade built-in sample submissions (correct, partial, broken, hostile)")
    p.add_argument("--output", default="_grading/demo", help="where results go (default _grading/demo)")
    p.set_defaults(func=run)
