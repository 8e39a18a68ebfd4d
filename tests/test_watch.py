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
import re
import secrets
import time
from pathlib import Path

import nbformat
import pytest

from autograder import exchange, feedback, watch

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "grading"
ME = getpass.getuser()


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d} UTC"


def _submit(root: Path, student: str, nb, when: float, assignment: str = "fix",
            secret: str | None = None) -> exchange.Submission:
    """A submission folder as `nbgrader submit` writes it into inbound/, named with the time `when`."""
    stamp = _stamp(when)
    folder = root / "course" / "inbound" / f"{student}+{assignment}+{stamp}+{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(secret or secrets.token_hex(64))
    return _listed(root, folder.name)


def _listed(root: Path, key: str) -> exchange.Submission:
    """The submission as `exchange.inbound` lists it (its time: the folder's ctime)."""
    subs, _ = exchange.inbound(root, "course")
    return next(s for s in subs if s.key == key)


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
def test_inbound_lists_submissions_by_the_time_they_arrived_not_the_time_they_claim(tmp_path):
    nb = _filled()
    first = _submit(tmp_path, "bob", nb, 4_000_000_000)        # named 2096: arrived first all the same
    time.sleep(0.02)
    second = _submit(tmp_path, "alice", nb, 1000.25)           # named 1970
    _submit(tmp_path, "carol", nb, 1500, assignment="other")
    found, refused = exchange.inbound(tmp_path, "course", "fix")
    assert [s.key for s in found] == [first.key, second.key] and refused == []
    ctime = os.stat(second.path).st_ctime
    assert found[1].received == ctime and found[1].when.timestamp() == pytest.approx(ctime)
    assert found[1].claimed.startswith("1970-01-01")
    # with the service's clock (`watch`: when it first saw the folder), that is the time
    found, _ = exchange.inbound(tmp_path, "course", "fix", received=lambda key, ctime: 1234.5)
    assert {s.received for s in found} == {1234.5}
    assert found[0].timestamp == "1970-01-01 00:20:34.500000 UTC"


def test_inbound_refuses_each_odd_entry_on_its_own_and_lists_the_rest(tmp_path):
    good = _submit(tmp_path, ME, _filled(), 1000)
    inbound_dir = tmp_path / "course" / "inbound"
    bad = {f"{ME}+fix+not a time UTC+abc": "unreadable time",
           f"{ME}+fix+2026-13-45 99:00:00.000000 UTC+abc": "unreadable time",
           "not-a-submission": "not a submission folder name",
           f"{ME}+fix+2026-01-01 00:00:00.000000 UTC+a+b": "not a submission folder name",
           "..+fix+2026-01-01 00:00:00.000000 UTC+abc": "is not a user name",
           f"{ME}+fix+2026-01-01 00:00:00.000000 UTC+file": "not a folder",
           f"{ME}+fix+2026-01-01 00:00:00.000000 UTC+link": "not a folder"}
    for name in bad:
        if name.endswith("+file"):
            (inbound_dir / name).write_text("")
        elif name.endswith("+link"):
            (inbound_dir / name).symlink_to(good.path)
        else:
            (inbound_dir / name).mkdir()
    found, refused = exchange.inbound(tmp_path, "course", "fix")
    assert [s.key for s in found] == [good.key]
    reasons = {r.key: r.reason for r in refused}
    assert set(reasons) == set(bad)
    for name, why in bad.items():
        assert why in reasons[name] and reasons[name].startswith(name), (name, reasons[name])


def test_submissions_in_someone_elses_name_or_with_odd_names_are_refused(tmp_path):
    nb = _filled()
    mine = _submit(tmp_path, ME, nb, 1000)
    exchange.check(mine)  # my own folder, my own name
    forged = _submit(tmp_path, "somebody-else", nb, 1000)
    with pytest.raises(exchange.ExchangeError, match=f"in the name of somebody-else but made by {ME}"):
        exchange.check(forged)


def test_collect_copies_the_students_regular_files_privately_with_the_services_time(tmp_path):
    sub = _submit(tmp_path, ME, _filled(), 4_000_000_000)  # a folder that claims 2096
    (sub.path / ".ipynb_checkpoints").mkdir()
    dest = exchange.collect(sub, tmp_path / "course-dir")
    assert dest == tmp_path / "course-dir" / "submitted" / ME / "fix"
    assert sorted(p.name for p in dest.iterdir()) == ["fix.ipynb", "submission_secret.txt", "timestamp.txt"]
    assert (dest / "timestamp.txt").read_text() == sub.timestamp and not sub.timestamp.startswith("2096")
    assert {oct(p.stat().st_mode & 0o777) for p in dest.iterdir()} == {"0o600"}
    for folder in (dest, dest.parent, dest.parent.parent):
        assert oct(folder.stat().st_mode & 0o777) == "0o700", folder


@pytest.mark.parametrize("plant", ["link to a file", "link to a folder", "fifo", "no secret", "odd secret"])
def test_collect_refuses_a_submission_with_links_special_files_or_no_real_secret(tmp_path, plant):
    sub = _submit(tmp_path, ME, _filled(), 1000)
    private = tmp_path / "instructor-only"
    private.mkdir()
    (private / "solution.ipynb").write_text("solutions")
    if plant == "link to a file":
        (sub.path / "fix.ipynb").unlink()
        (sub.path / "fix.ipynb").symlink_to(private / "solution.ipynb")
    elif plant == "link to a folder":
        (sub.path / "extra").symlink_to(private)
    elif plant == "fifo":
        os.mkfifo(sub.path / "pipe")
    elif plant == "no secret":
        (sub.path / "submission_secret.txt").unlink()
    else:
        (sub.path / "submission_secret.txt").write_text("guessable")
    with pytest.raises(exchange.ExchangeError, match=re.escape(sub.key)) as err:
        exchange.collect(sub, tmp_path / "course-dir")
    assert {"link to a file": "fix.ipynb is a symbolic link", "link to a folder": "extra is a symbolic link",
            "fifo": "pipe is not a regular file", "no secret": "no submission_secret.txt",
            "odd secret": "not a secret made by"}[plant] in str(err.value)
    folder = tmp_path / "course-dir" / "submitted" / ME
    assert not (folder / "fix").exists() and list(folder.iterdir()) == []  # no staging copy left


def test_released_feedback_is_where_nbgrader_looks_and_readable_only_by_name(tmp_path):
    from nbgrader.utils import notebook_hash

    (tmp_path / "course").mkdir()
    page = exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")
    assert page.name == notebook_hash(secret="s3cret", notebook_id="fix") + ".html"
    assert oct(page.parent.stat().st_mode & 0o777) == "0o711"  # others can open a file, not list the folder
    assert oct(page.stat().st_mode & 0o777) == "0o644" and page.read_text() == "<p>hi</p>"


def test_release_writes_around_links_planted_in_the_feedback_folder(tmp_path):
    """The attack on the root service: links at the page's name and at the temporary name the
    old code used; the files they point to keep their content and modes."""
    (tmp_path / "course" / "feedback").mkdir(parents=True, mode=0o711)
    os.chmod(tmp_path / "course" / "feedback", 0o711)
    victim = tmp_path / "root-only"
    victim.write_text("private")
    victim.chmod(0o600)
    name = exchange.feedback_name("s3cret", "fix")
    for planted in (name, f".{name}.{os.getpid()}.tmp"):
        (tmp_path / "course" / "feedback" / planted).symlink_to(victim)
    page = exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")
    assert not page.is_symlink() and page.read_text() == "<p>hi</p>"
    assert victim.read_text() == "private" and oct(victim.stat().st_mode & 0o777) == "0o600"


def test_release_refuses_a_feedback_folder_others_can_write(tmp_path):
    folder = tmp_path / "course" / "feedback"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with pytest.raises(exchange.ExchangeError, match="writable by others"):
        exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")
    folder.rmdir()
    (tmp_path / "course" / "feedback").symlink_to(tmp_path)
    with pytest.raises(exchange.ExchangeError, match="course/feedback"):
        exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder owned by another user")
def test_release_refuses_a_feedback_folder_a_student_made(tmp_path):
    folder = tmp_path / "course" / "feedback"
    folder.mkdir(parents=True, mode=0o711)
    os.chown(folder, 65534, 65534)
    with pytest.raises(exchange.ExchangeError, match="not to the course's owner"):
        exchange.release(tmp_path, "course", "s3cret", "fix", "<p>hi</p>")


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
def _watcher(tmp_path, rate="1/10m", detail="names", **kw):
    settings = dict(assignments=["fix"], exchange=str(tmp_path), course_id="course", root=str(FIX),
                    output=str(tmp_path / "watch"), interval=1.0, rate=watch.Rate.parse(rate), detail=detail,
                    workers=1, threads=1, cell_timeout=60.0, timeout=120.0, wall=0.0, memory=4096,
                    isolation="auto", no_owner_check=False, once=True)
    settings.update(kw)
    return watch.Watcher(argparse.Namespace(**settings))


def _fetch(tmp_path, sub: exchange.Submission) -> str | None:
    """What `nbgrader fetch_feedback` would find for this submission, or None."""
    secret = (sub.path / "submission_secret.txt").read_text()
    page = tmp_path / "course" / "feedback" / exchange.feedback_name(secret, "fix")
    return page.read_text() if page.is_file() else None


@pytest.mark.slow
@pytest.mark.e2e   # the service end to end; make test's hub test runs the real service on a real hub
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
    # everything the service wrote (notebooks, secrets, autograded copies, gradebook) is its own
    assert _modes(tmp_path / "watch") <= {"0o700", "0o600"}, _modes(tmp_path / "watch")
    assert (tmp_path / "watch" / "work" / "fix" / ME / "grading" / "gradebook.db").is_file()


def test_a_grader_failure_is_retried_and_does_not_count_against_the_student(tmp_path):
    sub = _submit(tmp_path, ME, _filled(**GOOD), time.time() - 1)
    w = _watcher(tmp_path)
    w.args.root = str(tmp_path / "no-course-here")  # the grader finds no source notebook and exits 1
    assert w.round() == []
    assert not w.state.seen(sub.key) and w.state.history.get(ME) == []
    assert _fetch(tmp_path, sub) is None


def test_an_odd_folder_is_refused_on_its_own_and_the_round_goes_on(tmp_path):
    good = _submit(tmp_path, ME, _filled(**GOOD), 1000)
    (tmp_path / "course" / "inbound" / f"{ME}+fix+yesterday-ish+abc").mkdir()
    w = _watcher(tmp_path)
    due = w._due("fix", time.time())
    assert [s.key for s in due] == [good.key]
    assert "unreadable time 'yesterday-ish'" in w.state.rejected[f"{ME}+fix+yesterday-ish+abc"]


def test_the_service_times_submissions_by_its_own_clock_not_the_folders_name(tmp_path):
    """Folders named 2099 and 2026-01-01 are timed when the service first saw them."""
    w = _watcher(tmp_path, no_owner_check=True)
    future = _submit(tmp_path, "alice", _filled(), 4_070_908_800)    # 2099-01-01
    past = _submit(tmp_path, "bob", _filled(), 1_767_225_600)        # 2026-01-01
    seen_at = 1_900_000_000.0
    due = {s.student: s for s in w._due("fix", seen_at)}
    assert due["alice"].received == due["bob"].received == seen_at
    assert due["alice"].timestamp.startswith("2030-03-17") and due["alice"].claimed.startswith("2099-01-01")
    # a later look (or a restarted service) keeps the first sighting
    w = _watcher(tmp_path, no_owner_check=True)
    w.state.first_seen.update({future.key: seen_at, past.key: seen_at})
    assert {s.received for s in w._due("fix", seen_at + 50)} == {seen_at}
    dest = exchange.collect(due["bob"], tmp_path / "course-dir", check_owner=False)
    assert (dest / "timestamp.txt").read_text() == due["bob"].timestamp


def test_a_secret_another_students_submission_used_is_refused(tmp_path):
    """The feedback-overwrite attack: mallory submits with alice's secret, so that her page
    would be written under the name alice's nbgrader fetches. The service refuses it."""
    w = _watcher(tmp_path, no_owner_check=True)
    shared = secrets.token_hex(64)
    alice = _submit(tmp_path, "alice", _filled(), 1000, secret=shared)
    w._claim_secret(alice, shared)
    w._claim_secret(alice, shared)  # the same student again: fine
    mallory = _submit(tmp_path, "mallory", _filled(**GOOD), 1001, secret=shared)
    w._start(mallory, time.time())
    assert not w.running and "already used by another student's submission" in w.state.rejected[mallory.key]
    assert _fetch(tmp_path, alice) is None  # nothing was released under alice's page name
    assert w.state.history.get("mallory") is None  # and nothing counted against anyone


# The sleeper's wall limit: above the honest notebook's grading time on a loaded machine (in CI,
# beside the book build and the browser tests, it once took over 40 s), so that only the sleeper meets it.
WALL = 75.0


@pytest.mark.slow
@pytest.mark.e2e
def test_a_slow_notebook_holds_one_worker_for_at_most_the_wall_limit(tmp_path):
    """Two students at once: one notebook sleeps, the other's feedback comes as if alone;
    the sleeper's grading is stopped at the wall limit and gets a page that says so."""
    now = time.time()
    slow = _submit(tmp_path, "sleepy", _filled(**{**GOOD, "add": "import time\ntime.sleep(600)\n" + GOOD["add"]}), now)
    quick = _submit(tmp_path, "quick", _filled(**GOOD), now + 1)
    w = _watcher(tmp_path, workers=2, no_owner_check=True, cell_timeout=600.0, timeout=600.0, wall=WALL)
    started = time.monotonic()
    released = {r["student"]: r for r in w.round(now + 2)}
    assert released["quick"]["status"] == "graded" and "Score: <b>5 / 5</b>" in _fetch(tmp_path, quick)
    assert released["quick"]["grading_s"] < WALL
    assert released["sleepy"]["status"] == "stopped at the wall limit"
    assert f"took longer than {WALL:g} seconds" in _fetch(tmp_path, slow)
    assert time.monotonic() - started < WALL + 30
    assert not w.running


def _modes(folder: Path) -> set[str]:
    return {oct(p.stat().st_mode & 0o777) for p in [folder, *folder.rglob("*")] if not p.is_symlink()}


def test_a_queued_submission_with_a_link_or_a_used_secret_is_refused_at_once(tmp_path):
    """Over the rate limit, a submission waits; its refusal does not."""
    now = time.time()
    w = _watcher(tmp_path, no_owner_check=True)
    w.state.history = {"alice": [now], "mallory": [now]}   # both graded a moment ago
    alice = _submit(tmp_path, "alice", _filled(), 1000)
    w._claim_secret(alice, (alice.path / "submission_secret.txt").read_text())
    w.state.graded[alice.key] = {}
    leak = _submit(tmp_path, "mallory", _filled(), 1001, secret=(alice.path / "submission_secret.txt").read_text())
    w2 = _submit(tmp_path, "bob", _filled(), 1002)
    w.state.history["bob"] = [now]
    (w2.path / "fix.ipynb").unlink()
    (w2.path / "fix.ipynb").symlink_to(FIX / "solutions" / "fix" / "fix.ipynb")
    assert w._due("fix", now + 1) == []
    assert "already used by another student's submission" in w.state.rejected[leak.key]
    assert "fix.ipynb is a symbolic link" in w.state.rejected[w2.key]
    assert not w.state.queued and _fetch(tmp_path, alice) is None


# ---------------------------------------------------------------- the command and its loop
def test_watch_command_refuses_a_missing_exchange_or_assignment(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        args = _watcher(tmp_path).args
        args.exchange = str(tmp_path / "no-exchange")
        with pytest.raises(SystemExit, match="the exchange .*no-exchange does not exist"):
            watch._main(args)
        args.exchange, args.assignments = str(tmp_path), ["fix", "a99-nothing"]
        with pytest.raises(SystemExit, match="no source notebook in .*solutions/a99-nothing"):
            watch._main(args)
    finally:
        os.umask(umask)  # _main sets the service's private umask


def test_watch_loop_refuses_as_submissions_arrive_keeps_its_state_and_stops_on_sigterm(tmp_path):
    """`autograder watch` (no --once): the loop looks at the exchange every --interval, refuses a
    forged submission and an odd folder that arrive while it runs, writes its state after each
    look, and on SIGTERM (how JupyterHub stops a service) stops at once with exit status 0."""
    import signal
    import subprocess
    import sys

    (tmp_path / "course" / "inbound").mkdir(parents=True)
    out = tmp_path / "watch"
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "watch", "fix", "--exchange", str(tmp_path),
                             "--course-id", "course", "--root", str(FIX), "--output", str(out), "--interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        state = out / watch.STATE_FILE
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:  # the first look is done
            time.sleep(0.2)
        assert state.exists(), "the service wrote no state"
        forged = _submit(tmp_path, "somebody-else", _filled(**GOOD), time.time())
        odd = f"{ME}+fix+whenever+abc"
        (tmp_path / "course" / "inbound" / odd).mkdir()
        while time.monotonic() < deadline:
            rejected = json.loads(state.read_text()).get("rejected", {})
            if {forged.key, odd} <= set(rejected):
                break
            time.sleep(0.2)
        assert "made by" in rejected[forged.key] and "unreadable time 'whenever'" in rejected[odd], rejected
        assert proc.poll() is None  # still watching
        proc.send_signal(signal.SIGTERM)
        said, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, said
    assert "watching fix" in said and said.count(f"refused {forged.key}") == 1, said
    assert not (out / "work").exists()  # nothing was collected or graded
    assert _fetch(tmp_path, forged) is None
