"""Due dates, extensions and late penalties (autograder.deadlines): the course file's forms,
its errors, and the penalty each policy takes, worked by hand."""
from __future__ import annotations

import datetime as dt

import pytest

from autograder.deadlines import DeadlineError, Policy, load, parse, submission_time

UTC = dt.timezone.utc
COURSE = """
timezone: Europe/Amsterdam
due:
  a01-convolution: 2026-10-02 23:59
  a02-building-blocks: 2026-10-09T23:59:00+00:00
extensions:
  a01-convolution:
    alice: 2026-10-05 23:59
late_policy: {method: per_day, fraction: 0.1, cap: 0.5}
"""


def test_course_file_due_dates_extensions_and_time_zone(tmp_path):
    (tmp_path / "deadlines.yml").write_text(COURSE)
    d = load(tmp_path / "deadlines.yml")
    # 23:59 in Amsterdam on 2 October 2026 (summer time, UTC+2) is 21:59 UTC
    assert d.due_for("a01-convolution", "bob") == dt.datetime(2026, 10, 2, 21, 59, tzinfo=UTC)
    assert d.due_for("a01-convolution", "alice") == dt.datetime(2026, 10, 5, 21, 59, tzinfo=UTC)
    assert d.due_for("a02-building-blocks", "alice") == dt.datetime(2026, 10, 9, 23, 59, tzinfo=UTC)
    assert d.due_for("a03-lenet", "bob") is None and load(tmp_path / "none.yml") is None
    # 25 hours after bob's due date; alice, with her extension, is on time
    at = dt.datetime(2026, 10, 3, 22, 59, tzinfo=UTC)
    assert d.judge("a01-convolution", "bob", at)["late_seconds"] == 25 * 3600
    assert d.judge("a01-convolution", "alice", at) == {"due": "2026-10-05T23:59:00+02:00", "extension": True,
                                                       "assignment_due": "2026-10-02T23:59:00+02:00",
                                                       "submitted": at.isoformat(), "late_seconds": 0.0}
    assert "not judged late" in d.judge("a01-convolution", "bob", None)["late_note"]
    assert d.judge("a03-lenet", "bob", at) == {}


@pytest.mark.parametrize("policy, late_hours, score, want", [
    (Policy("none"), 100, 20, 0.0),
    (Policy("zero"), 0.01, 20, 20.0),
    (Policy("zero"), 0, 20, 0.0),                       # on time: nothing taken
    (Policy("per_day", 0.1, 0.5), 25, 20, 2 * 2.5),     # 2 started days x 10% of 25 points
    (Policy("per_day", 0.1, 0.5), 24 * 9, 20, 12.5),    # capped at half the points
    (Policy("per_day", 0.1, 0.5), 24 * 9, 3, 3.0),      # never more than the score
    (Policy("per_hour", 0.02, 1.0), 1.5, 25, 2 * 0.5),  # 2 started hours x 2% of 25 points
])
def test_penalty_by_policy(policy, late_hours, score, want):
    assert policy.penalty(late_hours * 3600, score, 25.0) == pytest.approx(want)


@pytest.mark.parametrize("text, says", [
    ("late_policy: {method: per_week}", "late_policy.method must be one of"),
    ("late_policy: {method: per_day, fraction: 2}", "between 0 and 1"),
    ("due: {a01: next friday}", "due.a01: 'next friday' is not a date"),
    ("timezone: Mars/Olympus", "is not a time zone name"),
])
def test_a_malformed_file_is_refused_by_key(text, says):
    import yaml
    with pytest.raises(DeadlineError, match=says):
        parse(yaml.safe_load(text), "deadlines.yml")


def test_submission_time_is_the_services_timestamp_file(tmp_path):
    nb = tmp_path / "a01.ipynb"
    nb.write_text("{}")
    assert submission_time(nb) is None
    (tmp_path / "timestamp.txt").write_text("2026-10-03 08:00:00.000000 UTC\n")
    assert submission_time(nb) == dt.datetime(2026, 10, 3, 8, tzinfo=UTC)
    (tmp_path / "timestamp.txt").write_text("tomorrow")
    assert submission_time(nb) is None


# ---------------------------------------------------------------- graded for real
@pytest.mark.e2e
def test_late_work_is_judged_on_the_services_time_penalised_and_rejudged_without_regrading(tmp_path):
    """The fixture assignment `fix` (5 points) in nbgrader's layout, each submission with the
    timestamp.txt that `autograder collect` writes: on time, 25 hours late, late but within an
    extension, and without a time. Then an extension granted after grading: the penalty goes,
    and nobody is graded again."""
    import csv
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    sys.path.insert(0, str(Path(__file__).parent / "hostile"))
    from scenarios import fill

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "course"
    shutil.copytree(repo / "tests" / "fixtures" / "grading", root)
    release = nbformat.read(root / "assignments" / "fix" / "fix.ipynb", as_version=4)
    due = "2026-10-02T22:00:00+00:00"
    times = {"ann": "2026-10-02 21:00:00.000000 UTC", "ben": "2026-10-03 23:00:00.000000 UTC",
             "cy": "2026-10-03 23:00:00.000000 UTC", "dee": None}
    for student, stamp in times.items():
        folder = tmp_path / "submitted" / student / "fix"
        folder.mkdir(parents=True)
        nbformat.write(fill(release), folder / "fix.ipynb")
        if stamp:
            (folder / "timestamp.txt").write_text(stamp)
    course = root / "deadlines.yml"
    course.write_text(f"due: {{fix: '{due}'}}\nextensions: {{fix: {{cy: '2026-10-04T22:00:00+00:00'}}}}\n"
                      "late_policy: {method: per_day, fraction: 0.1, cap: 0.5}\n")
    out = tmp_path / "grading"
    out.mkdir()
    (out / "secret").write_text("cd34" * 8)
    (out / "secret").chmod(0o600)

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], capture_output=True, text=True,
                              timeout=600, env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=repo)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    def late():
        return {json.loads(l)["student"]: json.loads(l).get("late", {}) for l in (out / "journal.jsonl").read_text().splitlines()}

    cli("grade", "fix", tmp_path / "submitted", "--root", root, "--output", out, "--quiet")
    got = late()
    # ben: 25 hours late, two started days at 10% of 5 points; cy: within the extension; dee: no time
    assert got["ben"]["late_seconds"] == 25 * 3600 and got["ben"]["penalty"] == 1.0
    assert got["ann"]["penalty"] == 0 and got["cy"]["penalty"] == 0 and got["cy"]["extension"] is True
    assert got["dee"]["penalty"] == 0 and "not judged late" in got["dee"]["late_note"]
    cli("export", "--output", out, "--format", "canvas")
    canvas = {r[3]: r[5] for r in csv.reader((out / "grades-canvas.csv").open())}
    assert canvas["ben"] == "4" and canvas["ann"] == "5" and canvas["cy"] == "5"
    cli("export", "--output", out, "--format", "nbgrader")
    rows = {r["student_id"]: r for r in csv.DictReader((out / "grades-nbgrader.csv").open())}
    assert rows["ben"]["late_submission_penalty"] == "1.0" and rows["ben"]["score"] == "4.0"
    assert rows["ben"]["duedate"].startswith("2026-10-02 22:00")
    cli("feedback", "--output", out)
    page = (out / "feedback" / "ben.html").read_text()
    assert "Score: <b>4 / 5</b>" in page and "Submitted 25.0 hours after the due date" in page and "1 points taken" in page

    # the instructor grants ben an extension after grading: re-judged, not regraded
    course.write_text(course.read_text().replace("cy: '2026-10-04T22:00:00+00:00'",
                                                 "cy: '2026-10-04T22:00:00+00:00', ben: '2026-10-04T22:00:00+00:00'"))
    again = cli("grade", "fix", tmp_path / "submitted", "--root", root, "--output", out, "--quiet")
    assert "4 unchanged and already graded, 0 to grade" in again.stderr
    assert late()["ben"]["penalty"] == 0 and late()["ben"]["extension"] is True
    cli("export", "--output", out, "--format", "canvas")
    assert {r[3]: r[5] for r in csv.reader((out / "grades-canvas.csv").open())}["ben"] == "5"
