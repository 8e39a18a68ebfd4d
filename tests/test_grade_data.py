"""Grading an assignment that trains on real data: the sandboxed kernel has no network and
no view of the checkout's `../shared/data` or the user's home, so the grader must hand it the
verified data read-only. Without that, a03's kernel fell back to scikit-learn's digits and a
correct solution missed the convergence threshold (20/25 instead of 25/25). A whole
grading with training on the command line: in `make grading-test` (marker e2e).
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.demo import fill_release, load_assignment, solution_answers
from suite_helpers import require_data

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("grade-data")]


def test_correct_a03_scores_full_marks_in_the_sandbox(tmp_path):
    source, release, name = load_assignment(ROOT, "a03-lenet")
    # skip only when the library cannot get the MNIST files a03 declares (a cached copy counts:
    # the grader mounts the cache as well as the mirror into the sandbox)
    require_data(source.metadata["dlcourse"]["prefetch"])
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(fill_release(release, solution_answers(source), keep=set(solution_answers(source))),
                   subs / "alice.ipynb")
    out = tmp_path / "grading"
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", "a03-lenet", str(subs),
                          "--output", str(out), "--workers", "1", "--threads", "1", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "autograder", "export", "--output", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [r["student"] for r in rows] == ["alice"]
    points = sum(float(c.metadata.nbgrader["points"]) for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    row = rows[0]
    score_col = next(k for k in row if k.lower() in ("total", "score"))
    assert float(row[score_col]) == points, f"correct a03 scored {row[score_col]} of {points}: {row}\n{run.stderr[-2000:]}"
