"""`autograder regrade` after a mid-term change, graded for real on the fixture assignment `fix`:
a changed hidden test regrades everyone and the audit lists exactly the scores it changed, with
the question and the reason; a regrade with nothing changed grades no one and changes nothing;
a resubmission is regraded alone and audited as such; the report shows the last audit."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from scenarios import BAD_RELU, fill  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "grading"
SECRET = "ab12" * 8

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("regrade")]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=REPO)


def scores(out):
    entries = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        entries[e["student"]] = {t["grade_id"]: t["score"] for t in e["tests"]}
    return entries


def latest_audit(out):
    return list(csv.DictReader((out / "audit" / json.loads((out / "audit" / "latest.json").read_text())["file"]).open()))


def test_regrade_audits_what_a_changed_test_and_a_resubmission_changed(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    release = nbformat.read(root / "assignments" / "fix" / "fix.ipynb", as_version=4)
    subs, out = tmp_path / "subs", tmp_path / "grading"
    subs.mkdir()
    out.mkdir()
    (out / "secret").write_text(SECRET)
    (out / "secret").chmod(0o600)
    nbformat.write(fill(release), subs / "ada.ipynb")
    nbformat.write(fill(release, relu=BAD_RELU), subs / "bo.ipynb")
    args = ("fix", subs, "--root", root, "--output", out, "--quiet")
    first = cli("regrade", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert scores(out) == {"ada": {"test_add": 1, "test_scale": 2, "test_relu": 2},
                           "bo": {"test_add": 1, "test_scale": 2, "test_relu": 0}}

    # the instructor changes test_relu's hidden check mid-term (here: it now accepts the identity,
    # as if a too-strict test had been relaxed); the other tests stay as they were
    source_path = root / "solutions" / "fix" / "fix.ipynb"
    source = nbformat.read(source_path, as_version=4)
    cell = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu")
    cell.source = ("t = torch.tensor([-1.0, 0.0, 2.0])\nassert relu(t).shape == t.shape\n"
                   "### BEGIN HIDDEN TESTS\nassert relu(torch.zeros(3)).shape == (3,)\n### END HIDDEN TESTS\n")
    nbformat.write(source, source_path)
    changed = cli("regrade", *args)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "2 to grade" in changed.stderr and "1 scores changed for 1 students (bo)" in changed.stdout, changed
    assert latest_audit(out) == [{"student": "bo", "question": "Question 3: Fixture assignment (3)",
                                  "grade_id": "test_relu", "old": "0", "new": "2",
                                  "reason": "this question's test changed"}]
    assert scores(out)["bo"]["test_relu"] == 2

    # nothing changed: no one is graded again and the audit is empty
    again = cli("regrade", *args)
    assert again.returncode == 0 and "0 to grade" in again.stderr and "0 scores changed" in again.stdout, again
    assert latest_audit(out) == []

    # a resubmission: graded alone, audited as such
    nbformat.write(fill(release, add="def add(a, b):\n    return a - b"), subs / "ada.ipynb")
    resubmitted = cli("regrade", *args)
    assert "1 to grade" in resubmitted.stderr, resubmitted.stderr
    assert latest_audit(out) == [{"student": "ada", "question": "Question 1: Fixture assignment (1)",
                                  "grade_id": "test_add", "old": "1", "new": "0",
                                  "reason": "the student submitted again"}]
    report = cli("report", "--output", out)
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    assert "## Last regrade" in text and "ada, Question 1: Fixture assignment (1): 1 -> 0 (the student submitted again)" in text
