"""A small term, end to end, through the real command lines, nbgrader's exchange layout and a real
formgrader: the instructor releases an assignment with a written question; four students submit
(on time, a copy of a classmate's code, late, late with an extension) while `autograder watch`
grades on arrival; at the deadline the instructor collects and grades into the course's gradebook
(`--formgrader`), grades a written answer in nbgrader's formgrader (its REST API, as its page
does), fixes a hidden test and regrades, and writes feedback, the report, the LMS exports and
the similarity report. Each step's numbers are checked against what the course file, the tests
and the human said; the closing note's figures for issue 23 come from here (printed at the end).

The assignment is the grader's fixture (`tests/fixtures/grading`, three tests worth 1 + 2 + 2)
plus a written question worth 2, as a05 and a07 carry one."""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from autograder.demo import fill_release

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "grading"
NAME = "a99-term"
COURSE_ID = "term"
QUESTION = ("## A written question (2 points)\n"
            "In two or three sentences: why does a deep network train faster with ReLU than with a sigmoid?")
MODEL_ANSWER = ("The sigmoid's derivative is at most 1/4, so the gradient shrinks layer after layer; "
                "ReLU passes a gradient of 1 wherever a unit is active.")
ANSWER = "Sigmoid gradients are below 1/4 and *vanish* with depth; ReLU's slope is 1 where x > 0."
# what a student may try to run in the instructor's formgrader page through a written answer
HOSTILE_ANSWER = ("My answer <script>fetch('/api/contents')</script> <img src=x onerror=alert(1)> "
                  "and [a link](javascript:alert(2)).\n\n```\ncode\n\n\n```\n\nthen \\[b\\](javascript:alert(3))")
# ada's relu, long enough to be a fingerprint; dee's is the same code under other names
ADA_RELU = ('def relu(x):\n    """Elementwise max(x, 0)."""\n    positive_part = torch.zeros_like(x)\n'
            '    mask_of_active_units = x > 0\n    positive_part[mask_of_active_units] = x[mask_of_active_units]\n'
            '    return positive_part\n')
DEE_RELU = ('def relu(x):\n    """max with zero"""\n    out = torch.zeros_like(x)\n'
            '    keep = x > 0\n    out[keep] = x[keep]\n    return out\n')
GOOD = {"add": "def add(a, b):\n    return a + b", "scale": "def scale(x, k):\n    return x * k"}
BAD_RELU = "def relu(x):\n    return x"  # right shape, wrong values: fails the visible test

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("term")]


def cli(*args, cwd: Path):
    proc = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "DLCOURSE_THREADS": "1"})
    assert proc.returncode == 0, f"autograder {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def make_course(root: Path) -> None:
    """The fixture assignment renamed a99-term, with the written question added to its source."""
    (root / "solutions").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    source = nbformat.read(FIXTURE / "solutions" / "fix" / "fix.ipynb", as_version=4)
    source.cells.append(nbformat.v4.new_markdown_cell(QUESTION))
    source.cells.append(nbformat.v4.new_markdown_cell(MODEL_ANSWER, metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": False, "points": 2, "grade_id": "why_relu", "schema_version": 3}}))
    (root / "solutions" / NAME).mkdir()
    nbformat.write(source, root / "solutions" / NAME / f"{NAME}.ipynb")


def filled(release: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The released notebook with these cells answered (the suite's one filling helper, autograder.demo's)."""
    return fill_release(nbformat.read(release, as_version=4), answers, answers)


def submit(exchange: Path, student: str, nb) -> None:
    """A submission as `nbgrader submit` leaves it in the exchange's inbound folder."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + ".000000 UTC"
    folder = exchange / COURSE_ID / "inbound" / f"{student}+{NAME}+{stamp}+{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{NAME}.ipynb")
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(secrets.token_hex(64))


class Formgrader:
    """A Jupyter server with nbgrader's formgrader, on loopback, serving the course's parent folder."""

    def __init__(self, course: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.log = open(course.parent / "formgrader.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={course.parent}",
             "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=course, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_CONFIG_DIR": str(course.parent / ".jupyter")})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                self.get("api/status")
                return
            except OSError:
                assert self.proc.poll() is None, (course.parent / "formgrader.log").read_text()[-3000:]
                time.sleep(0.3)
        raise AssertionError("the formgrader's server did not start: " + (course.parent / "formgrader.log").read_text()[-3000:])

    def request(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read().decode()

    def get(self, path: str):
        return self.request("GET", path)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_a_small_term_end_to_end(tmp_path):
    course, exchange, watch_out = tmp_path / "course", tmp_path / "exchange", tmp_path / "watch"
    make_course(course)
    t0 = time.monotonic()
    timings = {}

    # 1. release: nbgrader's generate step, the written answer replaced by nbgrader's stub, the proofs
    cli("release", NAME, "--root", course, cwd=course)
    release = course / "assignments" / NAME / f"{NAME}.ipynb"
    stub = next(c for c in nbformat.read(release, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "why_relu")
    assert stub.source == "YOUR ANSWER HERE" and MODEL_ANSWER not in release.read_text()
    timings["release (with proofs)"] = time.monotonic() - t0

    # 2. the course file: due in a few seconds; cy has an extension; a late penalty per started hour
    due = time.time() + 4
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    (course / "deadlines.yml").write_text(
        f"timezone: UTC\ndue:\n  {NAME}: {iso(due)}\nextensions:\n  {NAME}:\n    cy: {iso(due + 86400)}\n"
        "late_policy: {method: per_hour, fraction: 0.1, cap: 0.5}\n")
    submit(exchange, "ada", filled(release, {**GOOD, "relu": ADA_RELU, "why_relu": ANSWER}))
    submit(exchange, "dee", filled(release, {**GOOD, "relu": DEE_RELU, "why_relu": HOSTILE_ANSWER}))
    time.sleep(max(0.0, due - time.time()) + 1.5)                  # the due date passes
    submit(exchange, "bo", filled(release, {**GOOD, "relu": BAD_RELU, "why_relu": ANSWER}))
    submit(exchange, "cy", filled(release, {**GOOD, "relu": "def relu(x):\n    return torch.where(x > 0, x, 0.0)"}))  # no written answer

    # 3. `autograder watch`: graded on arrival, feedback staged in the exchange, written answers awaiting a human
    t = time.monotonic()
    cli("watch", NAME, "--exchange", exchange, "--course-id", COURSE_ID, "--root", course, "--output", watch_out,
        "--once", "--no-owner-check", "--rate", "5/1h", "--detail", "full", "--workers", "2", cwd=course)
    timings["watch, one round (4 submissions, 2 workers)"] = time.monotonic() - t
    pages = {p.read_text() for p in (exchange / COURSE_ID / "feedback").glob("*.html")}
    assert len(pages) == 4
    assert any("awaiting grading" in p and "your instructor has not graded yet" in p for p in pages)

    # 4. at the deadline: collect, and grade into the course's gradebook for the formgrader
    cli("collect", NAME, "--exchange", exchange, "--course-id", COURSE_ID, "--course-dir", course,
        "--no-owner-check", cwd=course)
    out = course / "_grading"
    t = time.monotonic()
    cli("grade", NAME, course / "submitted", "--root", course, "--output", out, "--formgrader", "--workers", "2",
        "--quiet", cwd=course)
    timings["grade --formgrader (4 submissions, 2 workers)"] = time.monotonic() - t
    journal = {json.loads(line)["student"]: json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()}
    auto = {s: sum(x["score"] for x in e["tests"]) for s, e in journal.items()}
    assert auto == {"ada": 5, "dee": 5, "bo": 3, "cy": 5}, auto
    assert {s: [m["answered"] for m in e["manual"]] for s, e in journal.items()} == \
        {"ada": [True], "dee": [True], "bo": [True], "cy": [False]}
    late = {s: round(e.get("late", {}).get("late_seconds", 0) > 0) for s, e in journal.items()}
    assert late == {"ada": 0, "dee": 0, "bo": 1, "cy": 0}, late      # cy is late, but within her extension
    assert journal["cy"]["late"]["extension"] is True
    review = course / "autograded" / "ada" / NAME / f"{NAME}.ipynb"
    assert review.is_file() and oct(review.stat().st_mode & 0o777) == "0o600"

    # 5. a human grades the written answers in nbgrader's formgrader (its REST API, as its page does)
    fg = Formgrader(course)
    try:
        notebooks = json.loads(fg.get(f"formgrader/api/submitted_notebooks/{NAME}/{NAME}"))
        by_student = {n["student"]: n for n in notebooks}
        assert set(by_student) == {"ada", "bo", "cy", "dee"}
        assert by_student["ada"]["needs_manual_grade"] and not by_student["cy"]["needs_manual_grade"]
        # the page the instructor grades on: the answer is there, what would run is not
        html_dee = fg.get(f"formgrader/submissions/{by_student['dee']['id']}/")
        assert "My answer" in html_dee and 'id="why_relu"' in html_dee
        assert "<script>fetch" not in html_dee and not re.search(r"<img[^>]*onerror", html_dee)
        assert not re.search(r"href=[\"']?\s*javascript:", html_dee, re.I)
        given = {"ada": 2.0, "bo": 1.5, "dee": 0.5}
        for student, points in given.items():
            grades = json.loads(fg.get(f"formgrader/api/grades?submission_id={by_student[student]['id']}"))
            written = next(g for g in grades if g["name"] == "why_relu")
            assert written["max_score"] == 2 and written["auto_score"] is None
            fg.request("PUT", f"formgrader/api/grade/{written['id']}", {"manual_score": points})
        cy = next(g for g in json.loads(fg.get(f"formgrader/api/grades?submission_id={by_student['cy']['id']}"))
                  if g["name"] == "why_relu")
        assert cy["auto_score"] == 0 and not cy["needs_manual_grade"]   # unanswered: 0, nobody has to read it
        after = json.loads(fg.get(f"formgrader/api/submitted_notebooks/{NAME}/{NAME}"))
        assert [n["student"] for n in after if n["needs_manual_grade"]] == []
        # nbgrader's own totals (before any late penalty) now hold the human's points
        assert {n["student"]: n["score"] for n in after} == {"ada": 7.0, "bo": 4.5, "cy": 5.0, "dee": 5.5}
        # and a comment box for each solution cell, as the formgrader's page expects
        comments = json.loads(fg.get(f"formgrader/api/comments?submission_id={by_student['ada']['id']}"))
        assert {c["name"] for c in comments} == {"add", "scale", "relu", "why_relu"}
    finally:
        fg.close()

    # 6. a hidden test is relaxed mid-term (relu's now accepts any tensor of the right shape): regrade
    source_path = course / "solutions" / NAME / f"{NAME}.ipynb"
    source = nbformat.read(source_path, as_version=4)
    cell = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu")
    cell.source = "t = torch.tensor([-1.0, 0.0, 2.0])\nassert relu(t).shape == t.shape\n"
    nbformat.write(source, source_path)
    cli("release", NAME, "--root", course, cwd=course)
    t = time.monotonic()
    regrade = cli("regrade", NAME, course / "submitted", "--root", course, "--output", out, "--workers", "2",
                  "--quiet", cwd=course)
    timings["regrade after a test change (4 submissions)"] = time.monotonic() - t
    assert "1 scores changed for 1 students (bo)" in regrade.stdout, regrade.stdout
    audit = json.loads((out / "audit" / "latest.json").read_text())["rows"]
    assert [(r["student"], r["grade_id"], r["old"], r["new"], r["reason"]) for r in audit] == \
        [("bo", "test_relu", "0", "2", "this question's test changed")]

    # 7. feedback, report and exports: the human's points and the late penalty (on the whole score) everywhere
    cli("feedback", "--output", out, cwd=course)
    cli("report", "--output", out, cwd=course)
    for fmt in ("questions", "canvas", "moodle", "nbgrader"):
        cli("export", "--output", out, "--format", fmt, cwd=course)
    # bo: 5 autograded + 1.5 by hand = 6.5, one started hour late: 10% of the 7 points = 0.7 taken
    expected = {"ada": 7.0, "dee": 5.5, "bo": 6.5 - 0.7, "cy": 5.0}
    fb = {s: (out / "feedback" / f"{s}.html").read_text() for s in expected}
    for s, points in expected.items():  # the score a page shows is after the late penalty
        assert f"Score: <b>{points:g} / 7</b>" in fb[s], (s, fb[s][-1500:])
    assert "graded by hand" in fb["ada"] and "2 / 7" not in fb["ada"]
    assert "0.7 points taken from the 6.5 earned" in fb["bo"]
    assert "not answered" in fb["cy"] and "Left as the notebook gave it" in fb["cy"]
    grades = {r[0]: r for r in rows(out / "grades.csv")[1:]}
    header = rows(out / "grades.csv")[0]
    assert header[:6] == ["student", "test_add", "test_scale", "test_relu", "why_relu", "total"]
    assert {s: float(r[header.index("final")]) for s, r in grades.items()} == pytest.approx(expected)
    canvas = rows(out / "grades-canvas.csv")
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", NAME]
    assert canvas[1][0] == "Points Possible" and canvas[1][-1] == "7"
    assert {r[3]: float(r[-1]) for r in canvas[2:]} == pytest.approx(expected)
    moodle = rows(out / "grades-moodle.csv")
    assert moodle[0] == ["Username", NAME] and {r[0]: float(r[1]) for r in moodle[1:]} == pytest.approx(expected)
    nbg = list(csv.DictReader((out / "grades-nbgrader.csv").open()))
    assert {r["student_id"]: float(r["score"]) for r in nbg} == pytest.approx(expected)
    assert {r["student_id"]: float(r["late_submission_penalty"]) for r in nbg}["bo"] == pytest.approx(0.7)
    assert {r["max_score"] for r in nbg} == {"7.0"}
    report = (out / "report.md").read_text()
    assert "## Written answers (graded by hand in the formgrader)" in report
    assert "3 graded, 0 awaiting grading, 1 not answered" in report
    assert "## Last regrade" in report and "this question's test changed" in report

    # 8. similarity: dee's relu is ada's under other names; the pair comes first, for a human to read
    sim = cli("similarity", NAME, course / "submitted", "--root", course, "--output", out, cwd=course)
    pairs = [r for r in csv.DictReader((out / "similarity.csv").open())]
    assert {pairs[0]["student_a"], pairs[0]["student_b"]} == {"ada", "dee"}, sim.stdout
    assert "bo" not in {pairs[0]["student_a"], pairs[0]["student_b"]}
    timings["whole term"] = time.monotonic() - t0
    print("\nterm timings (s): " + "; ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print("finals: " + ", ".join(f"{s} {v:g}/7" for s, v in expected.items()))
