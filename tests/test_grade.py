"""End-to-end tests of `autograder grade` on the fixture assignments `fix` (5 points) and `rules` (7).

One batch grades every scenario of tests/hostile/scenarios.py's SCENARIOS (hostile, malformed
and honest submissions of `fix`) with two workers, a second one RULES_SCENARIOS (round 2's ways
to points without the work, on `rules`: a forbidden operator reached at run time, a stub, an
argument changed in place, the instructor's probe rebound, hidden inputs raised into feedback,
weights trained elsewhere);
each scenario's score is compared with what its functions truly earn, and its diagnostic must
name the problem. Every test of the
batch is marked e2e: `make grading-test` grades the batch (it also regrades it, replays it and
sends it to a Dask cluster there), and `make test`, which must stay within 20 minutes on two
cores, leaves it out; CI runs both.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from scenarios import RULES_SCENARIOS, SCENARIOS, build_batch, build_rules_batch  # noqa: E402

ROOT = Path(__file__).parent / "fixtures" / "grading"
PY = sys.executable
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading")]


# the grading folder's secret, fixed so that every grading in these tests can be replayed
SECRET = "5eed" * 8


def grade(subs, out, *extra, assignment="fix"):
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "secret").exists():
        (out / "secret").write_text(SECRET)
        (out / "secret").chmod(0o600)
    cmd = [PY, "-m", "autograder", "grade", assignment, str(subs), "--root", str(ROOT), "--output", str(out),
           "--cell-timeout", "8", "--quiet", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"})


def journal(out):
    entries = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # the torn line of a simulated crash
        entries[e["student"]] = e
    return entries


# session-scoped: with tests of other files scheduled in between on the same worker, a module
# fixture would be torn down and the whole batch graded twice
@pytest.fixture(scope="session")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    connections = []
    threading.Thread(target=lambda: connections.append(listener.accept()), daemon=True).start()
    release = nbformat.read(ROOT / "assignments" / "fix" / "fix.ipynb", as_version=4)
    subs, canary = build_batch(release, tmp, port=listener.getsockname()[1])
    # a submission that is a link to the instructor's solution, and names that are not safe as
    # paths or spreadsheet cells
    (subs / "symlinked.ipynb").symlink_to(ROOT / "solutions" / "fix" / "fix.ipynb")
    shutil.copy(subs / "correct.ipynb", subs / "...ipynb")
    shutil.copy(subs / "partial.ipynb", subs / '=HYPERLINK("http:x").ipynb')
    out = tmp / "out"
    proc = grade(subs, out, "--workers", "2")
    listener.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"subs": subs, "out": out, "stdout": proc.stdout, "stderr": proc.stderr, "connections": connections,
            "canary": canary}


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_scored_and_diagnosed(batch, name):
    assert_scored_and_diagnosed(journal(batch["out"])[name], *SCENARIOS[name][1:])


def assert_scored_and_diagnosed(entry, expected, clue, flagged):
    """A scenario's journal entry: the score its functions truly earn, the clue in what the
    student is told (unless it is "tamper"), and a flag exactly when it played a trick."""
    assert sum(t["score"] for t in entry["tests"]) == expected, (entry.get("grader_error"), entry["diagnostics"], entry)
    text = json.dumps(entry["diagnostics"] + entry["flags"] + [t["message"] for t in entry["tests"]])
    if clue and clue != "tamper":
        assert clue in text, entry
    # tricks are reported for a human's look; honest or merely broken code is not
    assert bool(entry["flags"]) == flagged, entry


@pytest.fixture(scope="session")
def rules_batch(tmp_path_factory):
    """The `rules` fixture's scenarios (round 2's ways to points without the work), graded in one run."""
    tmp = tmp_path_factory.mktemp("rules")
    release = nbformat.read(ROOT / "assignments" / "rules" / "rules.ipynb", as_version=4)
    subs = build_rules_batch(release, tmp / "subs")
    out = tmp / "out"
    proc = grade(subs, out, "--workers", "2", assignment="rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "stdout": proc.stdout}


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(RULES_SCENARIOS))
def test_rules_scenario_scored_and_diagnosed(rules_batch, name):
    assert_scored_and_diagnosed(journal(rules_batch["out"])[name], *RULES_SCENARIOS[name][1:])


@pytest.mark.e2e
def test_a_kernels_exception_brings_back_at_most_240_of_its_characters(rules_batch):
    """raises_its_inputs raised the 40 hidden inputs it was sent, twenty times over (about 16,000
    characters), to read them in its feedback: its test's message keeps 240 of them."""
    message = next(t["message"] for t in journal(rules_batch["out"])["raises_its_inputs"]["tests"]
                   if t["grade_id"] == "test_square")
    raised = message.split("raised ValueError: ", 1)[1].split(" (at: ", 1)[0]
    assert raised.startswith("inputs: [") and len(raised) <= 240, message
    assert len(message) < 240 + 200, message


@pytest.mark.e2e
def test_links_in_the_kernels_folder_redirect_nothing(batch):
    """channel_links planted links to a bystander's 0600 file at the grader's request names and
    swapped the grader's folder for a link to the bystander's folder: nothing was written there."""
    canary = batch["canary"]
    assert canary.read_text() == "a bystander's file\n"
    assert canary.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in canary.parent.iterdir()) == ["private.txt"]


@pytest.mark.e2e
def test_summary_shows_no_kernel_control_characters(batch):
    """terminal_escape raised a message built to redraw the summary's rows."""
    assert "\x1b" not in batch["stdout"] and "\r" not in batch["stdout"]
    row = next(line for line in batch["stdout"].splitlines() if line.startswith("terminal_escape "))
    assert " 3/5 " in row and "raised RuntimeError" in row


@pytest.mark.e2e
def test_autograded_copies_hold_no_hidden_tests(batch):
    source = (ROOT / "solutions" / "fix" / "fix.ipynb").read_text()
    assert "HIDDEN_MARKER_fix" in source
    copies = list((batch["out"] / "autograded").rglob("*.ipynb"))
    assert len(copies) >= len(SCENARIOS) - 5  # (unreadable notebooks leave no copy)
    for path in copies:
        text = path.read_text()
        assert "HIDDEN_MARKER_fix" not in text and "BEGIN HIDDEN TESTS" not in text, path


@pytest.mark.e2e
def test_output_is_capped_per_notebook(batch):
    """output_flood printed about 12 MB over 60 cells; the copy keeps about the 4 MiB cap."""
    copy = batch["out"] / "autograded" / "output_flood" / "fix.ipynb"
    assert copy.stat().st_size < 6 * 1024 * 1024
    assert "KiB in the notebook dropped" in copy.read_text()


@pytest.mark.e2e
def test_symlinked_submission_is_refused(batch):
    entry = journal(batch["out"])["symlinked"]
    assert sum(t["score"] for t in entry["tests"]) == 0
    assert "symbolic link" in json.dumps(entry["diagnostics"])


@pytest.mark.e2e
def test_unsafe_names_become_safe_ids(batch):
    out = batch["out"]
    entries = journal(out)
    odd = {s: e for s, e in entries.items() if s not in SCENARIOS and s != "symlinked"}
    assert len(odd) == 2
    for student, e in odd.items():
        assert not student.startswith((".", "-", "=")) and "/" not in student and student not in (".", "..")
        assert "graded as student" in json.dumps(e["diagnostics"])  # the original name is kept in the report
    assert {sum(t["score"] for t in e["tests"]) for e in odd.values()} == {5, 3}
    # every autograded copy stays inside autograded/
    for path in (out / "autograded").rglob("*.ipynb"):
        assert path.resolve().parent.parent == (out / "autograded").resolve()


@pytest.mark.e2e
def test_network_listener_never_reached(batch):
    assert batch["connections"] == []


@pytest.mark.e2e
def test_summary_and_isolation_reported(batch):
    assert "isolation: bwrap" in batch["stderr"] or "WARNING: no filesystem" in batch["stderr"]
    for name in SCENARIOS:
        assert name in batch["stdout"]
    assert "disk quota:" in batch["stderr"]


@pytest.mark.e2e
def test_feedback_hides_hidden_tests(batch):
    out = batch["out"]
    subprocess.run([PY, "-m", "autograder", "feedback", "--output", str(out)], check=True, capture_output=True)
    pages = {p.stem: p.read_text() for p in (out / "feedback").glob("*.html")}
    assert set(SCENARIOS) <= set(pages) and len(pages) == len(SCENARIOS) + 3
    hidden = [l for c in nbformat.read(ROOT / "solutions/fix/fix.ipynb", as_version=4).cells
              for l in c.source.split("### BEGIN HIDDEN TESTS")[-1].splitlines()[1:-1] if "HIDDEN TESTS" in c.source]
    assert hidden
    for html in pages.values():
        assert "HIDDEN_MARKER_fix" not in html and "test_relu" in html
        assert not any(line.strip() in html for line in hidden if line.strip())
    # feedback names the function and the input case that failed
    assert "while checking relu(float32[3])" in pages["partial"]
    # each test as the notebook presents it: number, heading, points
    assert "Question 3: Fixture assignment (3)" in pages["correct"] and "2 / 2 points" in pages["correct"]


@pytest.mark.e2e
def test_export_and_report(batch):
    out = batch["out"]
    subprocess.run([PY, "-m", "autograder", "export", "--output", str(out)], check=True, capture_output=True)
    subprocess.run([PY, "-m", "autograder", "report", "--output", str(out)], check=True, capture_output=True)
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    j = journal(out)
    for name, r in rows.items():
        for t in j[name]["tests"]:
            assert float(r[t["grade_id"]]) == t["score"]
    # no cell a spreadsheet would evaluate as a formula
    for row in csv.reader((out / "grades.csv").open()):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert "patch_allclose" in (out / "report.md").read_text().split("tampering")[1]
    page = (out / "report.html").read_text()
    assert "Question 3: Fixture assignment (3)" in page and "Most common failures" in page and "cell_timeout 8" in page


def _export(out, *args):
    proc = subprocess.run([PY, "-m", "autograder", "export", "--output", str(out), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.e2e
def test_nbgrader_format_has_nbgrader_exports_rows(batch, tmp_path):
    # the reference: nbgrader's own CsvExportPlugin over the same gradebook
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin
    out = batch["out"]
    _export(out, "--format", "nbgrader", "--csv", str(tmp_path / "ours.csv"))
    meta = json.loads((out / "meta.json").read_text())
    with Gradebook(meta["db_url"]) as gb:
        CsvExportPlugin(to=str(tmp_path / "nbgrader.csv")).export(gb)
    plain = re.compile(r"[A-Za-z0-9_]+$")   # nbgrader writes fields unquoted: compare the ids it cannot break
    theirs = {r["student_id"]: r for r in csv.DictReader((tmp_path / "nbgrader.csv").open()) if plain.match(r["student_id"])}
    ours = {r["student_id"]: r for r in csv.DictReader((tmp_path / "ours.csv").open())}
    assert list(csv.reader((tmp_path / "ours.csv").open()))[0] == list(csv.reader((tmp_path / "nbgrader.csv").open()))[0]
    assert len(theirs) >= len(SCENARIOS) - 5 and all(ours[s] == r for s, r in theirs.items()), (ours, theirs)


@pytest.mark.e2e
def test_canvas_and_moodle_formats_are_their_gradebook_imports(batch, tmp_path):
    out = batch["out"]
    totals = {s: sum(t["score"] for t in e["tests"]) for s, e in journal(out).items()}
    # Canvas: its identifier columns, one column named after the assignment, the points possible
    _export(out, "--format", "canvas")
    rows = list(csv.reader((out / "grades-canvas.csv").open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "fix"]
    assert rows[1][0] == "Points Possible" and float(rows[1][5]) == 5
    assert {r[3]: float(r[5]) for r in rows[2:] if not r[3].startswith("'")} == \
        {s: v for s, v in totals.items() if not s.startswith(("=", "+", "-", "@"))}
    # with the roster Canvas exported, rows carry its identifiers, matched on SIS Login ID
    roster = tmp_path / "canvas-export.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section\n"Doe, Jane",4711,S-1,correct,Lab A\n'
                      "Roe Rich,4712,S-2,partial,Lab B\n")
    said = _export(out, "--format", "canvas", "--roster", str(roster), "--csv", str(tmp_path / "c.csv"))
    by_login = {r["SIS Login ID"]: r for r in csv.DictReader((tmp_path / "c.csv").open()) if r["Student"] != "Points Possible"}
    assert by_login["correct"]["Student"] == "Doe, Jane" and by_login["correct"]["ID"] == "4711"
    assert by_login["partial"]["Section"] == "Lab B" and float(by_login["partial"]["fix"]) == totals["partial"]
    assert "not in the roster" in said and "changed_cell_type" in said    # the others are named, not dropped silently
    # Moodle: a user-name column and the grade item's column
    _export(out, "--format", "moodle")
    rows = list(csv.reader((out / "grades-moodle.csv").open()))
    assert rows[0] == ["Username", "fix"] and len(rows) == len(totals) + 1
    assert all(float(v) == totals[u] for u, v in rows[1:] if not u.startswith("'"))
    for name in ("grades-canvas.csv", "grades-moodle.csv"):   # no field a spreadsheet would evaluate
        for row in csv.reader((out / name).open()):
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


@pytest.mark.e2e
def test_rerun_skips_unchanged_and_resumes(batch, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("correct", "partial", "untouched"):
        shutil.copy(batch["subs"] / f"{name}.ipynb", subs)
    out = tmp_path / "out"
    assert grade(subs, out).returncode == 0
    again = grade(subs, out)
    assert "3 unchanged and already graded, 0 to grade" in again.stderr
    # a crash mid-batch: one line lost, one half written -> only that student is graded again
    lines = (out / "journal.jsonl").read_text().splitlines()
    (out / "journal.jsonl").write_text("\n".join(lines[:2]) + '\n{"student": "untou')
    resumed = grade(subs, out)
    assert "2 unchanged and already graded, 1 to grade" in resumed.stderr
    assert sum(t["score"] for t in journal(out)["untouched"]["tests"]) == 0
    forced = grade(subs, out, "--force")
    assert "3 to grade" in forced.stderr


@pytest.mark.e2e
def test_nbgrader_layout(batch, tmp_path):
    for name in ("correct", "partial"):
        d = tmp_path / "submitted" / name / "fix"
        d.mkdir(parents=True)
        shutil.copy(batch["subs"] / f"{name}.ipynb", d / "fix.ipynb")
    out = tmp_path / "out"
    assert grade(tmp_path / "submitted", out).returncode == 0
    j = journal(out)
    assert {k: sum(t["score"] for t in v["tests"]) for k, v in j.items()} == {"correct": 5, "partial": 3}


@pytest.mark.e2e
def test_dask_cluster_matches_local(batch, tmp_path):
    port = _free_port()
    env = {"DLCOURSE_THREADS": "1", "PATH": f"{Path(PY).parent}:/usr/bin:/bin"}
    bindir = Path(PY).parent
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        for _ in range(2):
            procs.append(subprocess.Popen([str(bindir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                                           "--no-dashboard", "--nworkers", "1"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(4)
        subs = tmp_path / "subs"
        subs.mkdir()
        for name in ("correct", "partial", "patch_allclose"):
            shutil.copy(batch["subs"] / f"{name}.ipynb", subs)
        out = tmp_path / "out"
        proc = grade(subs, out, "--scheduler", f"tcp://127.0.0.1:{port}")
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    local = journal(batch["out"])
    for name, entry in journal(out).items():
        assert [t["score"] for t in entry["tests"]] == [t["score"] for t in local[name]["tests"]]
        assert bool(entry["flags"]) == bool(local[name]["flags"])


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_demo_grades_a01_samples(tmp_path):
    """make grade-demo: correct earns everything, broken and hostile nothing, partial in between."""
    proc = subprocess.run([PY, "-m", "autograder", "demo", "--output", str(tmp_path / "demo")], capture_output=True,
                          text=True, timeout=600, env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    j = journal(tmp_path / "demo")
    score = {k: sum(t["score"] for t in v["tests"]) for k, v in j.items()}
    top = sum(t["points"] for t in j["correct"]["tests"])
    assert score["correct"] == top > score["partial"] > 0 == score["broken"] == score["hostile"]
    assert j["hostile"]["flags"] and "demo results:" in proc.stdout


BURN = ("import time\ndef _burn(seconds):\n    t = time.process_time()\n    while time.process_time() - t < seconds:\n"
        "        pass\n")


@pytest.mark.e2e
def test_grades_do_not_depend_on_the_machines_load(tmp_path):
    """Round 2: correct work lost its points when other gradings kept the cores busy. Limits
    count the kernel's CPU seconds, and waiting for a core is not waiting: a cell needing 4 s of
    CPU and a tested function needing 1 s a call pass a 6 s limit with both cores busy (where
    each takes two to three times as long on the wall clock, more while the rest of the suite
    runs beside), and a loop that needs more CPU than the limit still fails."""
    release = nbformat.read(ROOT / "assignments" / "fix" / "fix.ipynb", as_version=4)
    subs = tmp_path / "subs"
    subs.mkdir()
    from scenarios import fill

    nbformat.write(fill(release, scale=BURN + "_burn(4)\ndef scale(x, k):\n    return x * k",
                        relu=BURN + "def relu(x):\n    _burn(1)\n    return x.clamp(min=0)"), subs / "heavy.ipynb")
    nbformat.write(fill(release, relu=BURN + "_burn(30)\ndef relu(x):\n    return x.clamp(min=0)"), subs / "too_heavy.ipynb")
    # each in a session of its own, as other gradings' kernels are: with the scheduler's autogroups
    # (Linux's default), two spinners in the suite's session would share one slice and barely slow the kernel
    busy = [subprocess.Popen([PY, "-c", "while True: pass"], start_new_session=True) for _ in range(2)]
    try:
        time.sleep(1)
        out = tmp_path / "out"
        t0 = time.monotonic()
        proc = subprocess.run([PY, "-m", "autograder", "grade", "fix", str(subs), "--root", str(ROOT), "--output",
                               str(out), "--cell-timeout", "6", "--quiet"], capture_output=True, text=True,
                              timeout=600, env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"})
        took = time.monotonic() - t0
    finally:
        for p in busy:
            p.kill()
    assert proc.returncode == 0, proc.stderr[-2000:]
    j = journal(out)
    assert sum(t["score"] for t in j["heavy"]["tests"]) == 5, j["heavy"]
    too = j["too_heavy"]
    assert sum(t["score"] for t in too["tests"]) == 3 and "s of CPU time" in json.dumps(too["diagnostics"]), too
    print(f"graded under load in {took:.0f} s")


@pytest.mark.e2e
def test_each_students_seed_is_recorded_and_replayed(batch, tmp_path):
    """The secret seed of each student comes from the grading folder's secret, the assignment and
    the student; the journal records it, and --replay grades again with the recorded seed even
    after the secret changed."""
    from autograder.grade import secret_seed

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("correct", "partial"):
        shutil.copy(batch["subs"] / f"{name}.ipynb", subs)
    out = tmp_path / "out"
    assert grade(subs, out).returncode == 0
    assert (out / "secret").stat().st_mode & 0o077 == 0  # the instructor's alone
    first = journal(out)
    for name in ("correct", "partial"):
        assert first[name]["secret_seed"] == secret_seed(SECRET, name, "fix")
    assert first["correct"]["secret_seed"] != first["partial"]["secret_seed"]
    (out / "secret").write_text("0f" * 16)  # another secret: a forced regrade draws other seeds
    assert grade(subs, out, "--force").returncode == 0
    forced = journal(out)["partial"]["secret_seed"]
    assert forced == secret_seed("0f" * 16, "partial", "fix") != first["partial"]["secret_seed"]
    (out / "secret").unlink()  # lost: --replay reads the seeds from the journal
    replayed = grade(subs, out, "--replay", "partial")
    assert replayed.returncode == 0 and "1 to grade" in replayed.stderr, replayed.stderr
    assert journal(out)["partial"]["secret_seed"] == forced
    assert sum(t["score"] for t in journal(out)["partial"]["tests"]) == 3
    missing = grade(subs, out, "--replay", "nobody-graded")
    assert missing.returncode != 0 and "records no grading of nobody-graded" in missing.stderr
