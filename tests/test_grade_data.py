"""Grading an assignment that trains on real data: the sandboxed kernel has no network and
no view of the checkout's `../shared/data` or the user's home, so the grader must hand it the
verified data read-only. Without that, a03's kernel fell back to scikit-learn's digits and a
correct solution missed the convergence threshold (20/25 instead of 25/25). Whole gradings
with training on the command line, a03's on a quiet machine and a04's with both cores busy: in
`make grading-test` (marker e2e).
"""
from __future__ import annotations

import csv
import json
import os
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


def test_correct_a04_keeps_full_marks_with_both_cores_busy(tmp_path):
    """Round 2: while other gradings kept the two cores busy (a load average of 4-7), correct a04-a07
    work lost its convergence points to wall-clock limits ("exceeded the per-cell time limit of
    60 s"), and scored full marks on a quiet machine. The limits now count the kernel's CPU seconds,
    so the reference a04 (the slowest of them: its notebook and the grader each train an AlexNet),
    graded with the default limits beside two processes that spin on a core each (and whatever the
    suite's other worker runs), keeps every point. `bench/grading/load.py` puts the times of such
    gradings beside quiet ones."""
    source, release, _ = load_assignment(ROOT, "a04-alexnet")
    require_data(source.metadata["dlcourse"]["prefetch"])
    subs = tmp_path / "subs"
    subs.mkdir()
    answers = solution_answers(source)
    nbformat.write(fill_release(release, answers, keep=set(answers)), subs / "busy.ipynb")
    out = tmp_path / "grading"
    # each spinner in a session of its own, as another grading's kernel is (with the scheduler's
    # autogroups, spinners in the suite's session would share one slice and barely slow the kernel)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(2)]
    try:
        run = subprocess.run([sys.executable, "-m", "autograder", "grade", "a04-alexnet", str(subs), "--output", str(out),
                              "--workers", "1", "--threads", "1", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             timeout=1200)
        load = os.getloadavg()[0]
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    assert run.returncode == 0, run.stderr[-3000:]
    assert load > 2.0, f"the cores were not busy (load average {load:.1f}): this grading proves nothing"
    entry = json.loads((out / "journal.jsonl").read_text().splitlines()[-1])
    lost = {t["grade_id"]: t["message"] for t in entry["tests"] if t["score"] < t["points"]}
    assert not lost, f"correct a04 lost points with the cores busy (load average {load:.1f}): {lost}"
    assert sum(t["points"] for t in entry["tests"]) == 25
