"""Grading on submission (`autograder watch`) and the exchange it reads and writes, without a hub.

A fake exchange folder holds submissions laid out exactly as `nbgrader submit` lays them
out; the watcher grades them with the real grader (through its command line) on the
fixture assignment `fix`. The hub test (tests/hub/) runs the same service on a real
JupyterHub with real accounts.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import time
from pathlib import Path

import nbformat
import pytest

from autograder import exchange, feedback, watch

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "grading"
ME = getpass.getuser()


def _submit(root: Path, student: str, nb, when: float, assignment: str = "fix") -> exchange.Submission:
    """A submission folder as `nbgrader submit` writes it into inbound/."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d} UTC"
    folder = root / "course" / "inbound" / f"{student}+{assignment}+{stamp}+{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(secrets.token_hex(64))
    return exchange.Submission(student, assignment, stamp, folder)


def _filled(**answers):
    nb = nbformat.read(FIX / "assignments" / "fix" / "fix.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


GOOD = {"add": "def add(a, b):\n    return a + b", "scale": "def scale(x, k):\n    return x * k",
        "relu": "def relu(x):\n    return x.clamp(min=0)"}


# ---------------------------------------------------------------- rate limit
def test_rate_parses_the_forms_instructors_write():
    assert watch.Rate.parse("3/1h") == watch.Rate(3, 3600)
    assert watch.Rate.parse("1/10m") == watch.Rate(1, 600)
    assert watch.Rate.parse("5/90s") == watch.Rate(5, 90)
    assert watch.Rate.parse("2/d") == watch.Rate(2, 86400)
    for bad in ("0/1h", "three per hour", "3/1w"):
        with pytest.raises(argparse.ArgumentTypeError):
            watch.Rate.parse(bad)


def test_rate_window_slides():
    rate = watch.Rate(2, 100)
    assert rate.next_slot([], 1000) == 1000
    assert rate.next_slot([950], 1000) == 1000             # one grading in the window: one more allowed
    assert rate.next_slot([950, 980], 1000) == 1050        # two: wait until the older leaves the window
    assert rate.next_slot([850, 880, 980], 1000) == 1000   # older ones have left it


# ---------------------------------------------------------------- the exchange
def test_inbound_lists_well_formed_submissions_oldest_first(tmp_path):
    nb = _filled()
    late = _submit(tmp_path, "bob", nb, 2000.5)
    early = _submit(tmp_path, "alice", nb, 1000.25)
    (tmp_path / "course" / "inbound" / "not-a-submission").mkdir()
    _submit(tmp_path, "carol", nb, 1500, assignment="other")
    found = exchange.inbound(tmp_path, "course", "fix")
    assert [s.key for s in found] == [early.key, late.key]
    assert found[0].when.timestamp() == pytest.approx(1000.25)


def test_submissions_in_someone_elses_name_or_with_odd_names_are_refused(tmp_path):
    nb = _filled()
    mine = _submit(tmp_path, ME, nb, 1000)
    exchange.check(mine)  # my own folder, my own name
    forged = _submit(tmp_path, "somebody-else", nb, 1000)
    with pytest.raises(exchange.ExchangeError, match=f"in the name of somebody-else but made by {ME}"):
        exchange.check(forged)
    odd = _submit(tmp_path, "..", nb, 1000)
    with pytest.raises(exchange.ExchangeError, match="not a user name"):
        exchange.check(odd, check_owner=False)


def test_collect_copies_regular_files_only(tmp_path):
    sub = _submit(tmp_path, ME, _filled(), 1000)
    secret_elsewhere = tmp_path / "instructor-only.txt"
    secret_elsewhere.write_text("solutions")
    (sub.path / "link.txt").symlink_to(secret_elsewhere)
    os.mkfifo(sub.path / "pipe")
    dest = exchange.collect(sub, tmp_path / "course-dir")
    assert dest == tmp_path / "course-dir" / "submitted" / ME / "fix"
    assert sorted(p.name for p in dest.iterdir()) == ["fix.ipynb", "submission_secret.txt", "timestamp.txt"]
    assert (dest / "timestamp.txt").read_text() == sub.timestamp


def test_released_feedback_is_where_nbgrader_looks_and_readable_only_by_name(tmp_path):
    from nbgrader.utils import notebook_hash

    (tmp_path / "course").mkdir()
    page = exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")
    assert page.name == notebook_hash(secret="s3cret", notebook_id="fix") + ".html"
    assert oct(page.parent.stat().st_mode & 0o777) == "0o711"  # others can open a file, not list the folder
    assert oct(page.stat().st_mode & 0o777) == "0o644" and page.read_text() == "<p>hi</p>"


def test_feedback_detail_switch():
    entry = {"student": "s", "diagnostics": [], "tests": [
        {"grade_id": "test_hidden_edge_case", "status": "failed", "score": 0.0, "points": 2.0,
         "message": "AssertionError: expected 7, got 6"},
        {"grade_id": "test_shapes", "status": "passed", "score": 3.0, "points": 3.0, "message": ""}]}
    full = feedback.page("a", entry, "full")
    names = feedback.page("a", entry, "names")
    scores = feedback.page("a", entry, "scores")
    assert "expected 7" in full and "test_hidden_edge_case" in full
    assert "expected 7" not in names and "test_hidden_edge_case" in names and "0 / 2" in names
    assert "test_hidden_edge_case" not in scores and "expected 7" not in scores
    assert "3 / 5" in scores and "1 of 2 tests passed" in scores
    with pytest.raises(ValueError):
        feedback.page("a", entry, "everything")


# ---------------------------------------------------------------- the service, one round at a time
def _watcher(tmp_path, rate="1/10m", detail="names"):
    args = argparse.Namespace(assignments=["fix"], exchange=str(tmp_path), course_id="course", root=str(FIX),
                              output=str(tmp_path / "watch"), interval=1.0, rate=watch.Rate.parse(rate),
                              detail=detail, workers=1, cell_timeout=60.0, timeout=120.0, memory=4096,
                              isolation="auto", no_owner_check=False, once=True)
    return watch.Watcher(args)


def _fetch(tmp_path, sub: exchange.Submission) -> str | None:
    """What `nbgrader fetch_feedback` would find for this submission, or None."""
    secret = (sub.path / "submission_secret.txt").read_text()
    page = tmp_path / "course" / "feedback" / exchange.feedback_name(secret, "fix")
    return page.read_text() if page.is_file() else None


@pytest.mark.slow
def test_watch_grades_new_submissions_queues_over_the_limit_and_refuses_forgeries(tmp_path):
    now = time.time()
    good = _submit(tmp_path, ME, _filled(**GOOD), now - 5)
    forged = _submit(tmp_path, "somebody-else", _filled(**GOOD), now - 4)
    w = _watcher(tmp_path)

    released = w.round(now)
    assert [r["student"] for r in released] == [ME]
    page = _fetch(tmp_path, good)
    assert page and "Score: <b>5 / 5</b>" in page and f"feedback for {ME}" in page
    assert _fetch(tmp_path, forged) is None and "made by" in w.state.rejected[forged.key]

    # a second submission within the window: queued at once, with a page that says until when
    again = _submit(tmp_path, ME, _filled(**{**GOOD, "relu": "def relu(x):\n    return x"}), now + 1)
    assert w.round(now + 2) == []
    assert "queued" in _fetch(tmp_path, again) and again.key in w.state.queued
    # a restarted service remembers both the grading and the queue
    w = _watcher(tmp_path)
    assert w.round(now + 3) == [] and good.key in w.state.graded
    # once the window has passed, the queued submission is graded and its page replaced
    released = w.round(now + 601)
    assert [r["student"] for r in released] == [ME]
    page = _fetch(tmp_path, again)
    assert "Score: <b>3 / 5</b>" in page and "queued" not in page
    assert "test_relu" in page  # detail "names": test names and results, no messages
    state = json.loads((tmp_path / "watch" / watch.STATE_FILE).read_text())
    assert set(state["graded"]) == {good.key, again.key} and not state["queued"]


def test_a_grader_failure_is_retried_and_does_not_count_against_the_student(tmp_path):
    sub = _submit(tmp_path, ME, _filled(**GOOD), time.time() - 1)
    w = _watcher(tmp_path)
    w.args.root = str(tmp_path / "no-course-here")  # the grader finds no source notebook and exits 1
    assert w.round() == []
    assert not w.state.seen(sub.key) and w.state.history.get(ME) == []
    assert _fetch(tmp_path, sub) is None
