"""`autograder grade`'s options and failure paths, graded for real with the command line.

One batch of the fixture assignment `fix` (5 points) is graded with every resource option
set small (`--timeout`, `--memory`, `--disk`) and with `--scratch` and `--db` pointing into
the test's folder; its submissions each go past one limit. The course root is a copy of the
fixture with one instructor cell added that fails in the grader's process for one student's
secret seed (a helper that breaks on some drawn data), so the same batch shows a grader error
next to ordinary gradings. A second run of the same folder with `--isolation none` regrades
that student alone. Around it: a03 graded with MNIST unavailable, the exchange's 64 MiB cap,
and `release-feedback` through nbgrader's real exchange. Each number in a submission is
chosen so that the default limit would let it through and the option given here does not.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from scenarios import fill  # noqa: E402

from autograder.cli import main  # noqa: E402
from autograder.grade import secret_seed  # noqa: E402
from autograder.restore import MAX_SUBMISSION_BYTES  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "grading"
REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grade-options")]

# the grading folder's secret, fixed so that every grading here can be replayed
SECRET = "0b7e" * 8
# the student whose secret seed breaks the instructor's helper cell
UNLUCKY = "unlucky"
UNLUCKY_SEED = secret_seed(SECRET, UNLUCKY, "fix")

# the options of the batch: each well under its default (600 s, 4096 MiB, 512 MiB)
TIMEOUT_S, MEMORY_MB, DISK_MB = 5, 2048, 64

BURN = ("import time\ndef _burn(seconds):\n    t = time.process_time()\n    while time.process_time() - t < seconds:\n"
        "        pass\n")
# an instructor cell (no nbgrader metadata: it runs in the kernel and in the grader's process)
# that fails in the grader's process on one secret seed; the kernel has no `secret_seed`
FRAGILE = ("try:\n    _drawn = secret_seed\nexcept NameError:\n    _drawn = None\n"
           f"if _drawn == {UNLUCKY_SEED}:\n    raise RuntimeError('the helper cannot draw data for this seed')\n")


def cli(*args, env=None, timeout=600):
    return subprocess.run([PY, "-m", "autograder", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin", **(env or {})}, cwd=REPO)


def grade(root, subs, out, *extra, env=None):
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "secret").exists():
        (out / "secret").write_text(SECRET)
        (out / "secret").chmod(0o600)
    return cli("grade", "fix", subs, "--root", root, "--output", out, "--cell-timeout", "8", "--quiet", *extra, env=env)


def journal(out):
    entries = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        entries[e["student"]] = e
    return entries


def score(entry):
    return sum(t["score"] for t in entry["tests"])


def text_of(entry):
    return json.dumps(entry["diagnostics"] + entry["flags"] + [t["message"] for t in entry["tests"]])


def summary_row(stdout, student):
    return next(line for line in stdout.splitlines() if line.startswith(student + " "))


def with_added_cell(nb, after_gid, source):
    idx = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after_gid)
    nb.cells.insert(idx + 1, nbformat.v4.new_code_cell(source))
    return nb


@pytest.fixture(scope="session")
def options_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grade-options")
    root = tmp / "course"
    shutil.copytree(FIXTURE, root)
    source = nbformat.read(root / "solutions" / "fix" / "fix.ipynb", as_version=4)
    source = with_added_cell(source, "test_add", FRAGILE)
    nbformat.write(source, root / "solutions" / "fix" / "fix.ipynb")

    release = nbformat.read(FIXTURE / "assignments" / "fix" / "fix.ipynb", as_version=4)
    subs = tmp / "subs"
    subs.mkdir()
    nbformat.write(fill(release), subs / "correct.ipynb")
    # where the kernel runs and whether it sees the submissions folder (not under bwrap)
    probe = (f"import os\nprint('WORKDIR', os.getcwd())\nprint('SEES SUBMISSIONS', os.path.exists({str(subs)!r}))\n"
             "def add(a, b):\n    return a + b")
    nbformat.write(fill(release, add=probe), subs / f"{UNLUCKY}.ipynb")
    # 2.5 s of CPU a cell, far under the 8 s a cell may take: the third cell passes the
    # notebook's 5 s (the imports take about 1.5 s)
    nbformat.write(fill(release, add=BURN + "_burn(2.5)\ndef add(a, b):\n    return a + b",
                        scale=BURN + "_burn(2.5)\ndef scale(x, k):\n    return x * k",
                        relu=BURN + "_burn(2.5)\ndef relu(x):\n    return x.clamp(min=0)"), subs / "over_timeout.ipynb")
    # 90 MiB written (files under the 64 MiB file-size limit): within the default 512 MiB, not 64;
    # 1 GiB allocated beside torch (about 1.3 GiB of address space): within the default
    # 4096 - 512 MiB, not 2048 - 64; and 1 MB printed in one cell, with a 100 kB exception message
    over = fill(release,
                scale="import os\ntry:\n    for i in range(3):\n        with open(f'part{i}.bin', 'wb') as f:\n"
                      "            f.write(b'0' * (30 * 1024**2))\nfinally:\n    for i in range(3):\n"
                      "        if os.path.exists(f'part{i}.bin'):\n            os.remove(f'part{i}.bin')\n"
                      "def scale(x, k):\n    return x * k",
                relu="hog = bytearray(1024**3)\ndef relu(x):\n    return x.clamp(min=0)")
    over = with_added_cell(over, "test_add", "for i in range(100):\n    print(f'{i:04d}' + 'z' * 10_000, flush=True)\n"
                                             "raise RuntimeError('w' * 100_000)")
    nbformat.write(over, subs / "over_limits.ipynb")
    # a notebook over the 64 MiB submission cap (valid JSON all the same)
    big = fill(release)
    big.cells.append(nbformat.v4.new_markdown_cell("x" * (MAX_SUBMISSION_BYTES + 2**20)))
    nbformat.write(big, subs / "oversized.ipynb")

    out, dbdir = tmp / "out", tmp / "elsewhere"
    # a short path: the kernels' Unix sockets live under the scratch folder (a pytest-xdist
    # temporary path is too long for them, which the test below shows is refused)
    scratch = Path(tempfile.mkdtemp(prefix="ago-", dir="/tmp"))
    dbdir.mkdir()
    t0 = time.monotonic()
    first = grade(root, subs, out, "--workers", "2", "--timeout", TIMEOUT_S, "--memory", MEMORY_MB, "--disk", DISK_MB,
                  "--scratch", scratch, "--db", f"sqlite:///{dbdir / 'gradebook.db'}", "--isolation", "auto")
    assert first.returncode == 0, first.stderr[-3000:]
    graded_first = journal(out)
    copy = out / "autograded" / UNLUCKY / "fix.ipynb"
    assert copy.exists(), f"no graded copy for {UNLUCKY}: {graded_first.get(UNLUCKY)}\n{first.stderr[-3000:]}"
    unlucky_first = copy.read_text()
    # the same folder again, without the sandbox: only the grader error is graded again
    again = grade(root, subs, out, "--scratch", scratch, "--db", f"sqlite:///{dbdir / 'gradebook.db'}",
                  "--isolation", "none")
    assert again.returncode == 0, again.stderr[-3000:]
    print(f"graded the options batch twice in {time.monotonic() - t0:.0f} s")
    feedback = cli("feedback", "--output", out)
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    return {"root": root, "subs": subs, "out": out, "scratch": scratch, "db": dbdir / "gradebook.db",
            "first": first, "again": again, "graded_first": graded_first,
            "unlucky_first": unlucky_first}


# ---------------------------------------------------------------- the grader's own failure
def test_a_grader_error_is_recorded_named_and_not_the_students_zero(options_batch):
    """The instructor cell raised in the grader's process for this student's seed: the journal
    says grader error, the tests after it are "not run" (not failed) and say why, the summary
    marks the row GRADER ERR and names the cell, and the student's feedback does not call it a
    failure of theirs."""
    entry = options_batch["graded_first"][UNLUCKY]
    assert entry["grader_error"] is True
    assert entry["secret_seed"] == UNLUCKY_SEED
    status = {t["grade_id"]: (t["status"], t["score"]) for t in entry["tests"]}
    assert status == {"test_add": ("passed", 1.0), "test_scale": ("not run", 0.0), "test_relu": ("not run", 0.0)}
    assert "failed in the grader's process: RuntimeError: the helper cannot draw data for this seed" in text_of(entry)
    for t in entry["tests"][1:]:
        assert "failed in the grader's process" in t["message"], t
    row = summary_row(options_batch["first"].stdout, UNLUCKY)
    assert " GRADER ERR " in row and "instructor cell" in row and "the helper cannot draw" in row, row
    page = (options_batch["out"] / "feedback" / f"{UNLUCKY}.html").read_text()
    assert "<div class='q not-run'>" in page and "<div class='q failed'>" not in page
    # the other students' gradings went on
    assert score(options_batch["graded_first"]["correct"]) == 5


def test_a_grader_error_is_graded_again_on_the_next_run(options_batch):
    again = options_batch["again"]
    everyone = len(options_batch["graded_first"])
    assert f"{everyone - 1} unchanged and already graded, 1 to grade" in again.stderr, again.stderr
    regraded = journal(options_batch["out"])[UNLUCKY]
    assert regraded["grader_error"] is True and regraded["isolation"] == "rlimits-only"


def test_the_gradebook_marks_a_grader_error_for_a_human(options_batch, monkeypatch):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{options_batch['db']}") as gb:
        for student, wanted in ((UNLUCKY, True), ("correct", False)):
            grades = [gb.find_grade(g, "fix", "fix", student) for g in ("test_add", "test_scale", "test_relu")]
            assert {g.needs_manual_grade for g in grades} == {wanted}, student
    out = options_batch["out"]
    monkeypatch.setenv("PATH", os.environ["PATH"])  # (the gradebook puts the interpreter's bin/ first)
    assert main(["export", "--output", str(out)]) == 0
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert rows[UNLUCKY]["flagged"] == "grader error" and rows["correct"]["flagged"] == ""


# ---------------------------------------------------------------- the seed each student's tests draw from
def test_each_students_secret_seed_is_derived_recorded_and_reaches_the_tests(options_batch):
    """Seeds come from the folder's secret, the assignment and the student: recorded in the
    journal, different between students, and the very value the grader's cells see (the
    instructor cell that breaks on UNLUCKY_SEED broke for that student and nobody else)."""
    entries = options_batch["graded_first"]
    seeds = {s: e["secret_seed"] for s, e in entries.items()}
    assert seeds == {s: secret_seed(SECRET, s, "fix") for s in entries}
    assert len(set(seeds.values())) == len(seeds)
    assert [s for s, e in entries.items() if e.get("grader_error")] == [UNLUCKY]
    # a function of its inputs only: the same secret gives the same seed, another secret another
    assert secret_seed(SECRET, UNLUCKY, "fix") == UNLUCKY_SEED != secret_seed(SECRET[::-1], UNLUCKY, "fix")
    assert secret_seed(SECRET, UNLUCKY, "fix") != secret_seed(SECRET, UNLUCKY, "fix2")


# ---------------------------------------------------------------- limits
def test_timeout_stops_the_notebook_past_its_cpu_budget(options_batch):
    """Each cell burns 2.5 s of CPU, under the 8 s a cell may take: --timeout 5 stops `scale`."""
    entry = options_batch["graded_first"]["over_timeout"]
    assert score(entry) == 1, entry
    text = text_of(entry)
    stopped = re.search(r"scale' \(cell \d+\) used more than (\d+) s of CPU time", text)
    assert stopped or f"time limit of {TIMEOUT_S} s of CPU time before cell" in text, text
    if stopped:
        assert int(stopped.group(1)) < 2.5  # the notebook's budget left, not the cell's 8 s
    assert {t["grade_id"]: t["status"] for t in entry["tests"]}["test_relu"] == "not run"


def test_memory_and_disk_stop_what_goes_past_them_and_the_batch_goes_on(options_batch):
    entry = options_batch["graded_first"]["over_limits"]
    text = text_of(entry)
    assert score(entry) == 1, entry  # test_add only: scale could not write, relu could not allocate
    assert re.search(r"relu' \(cell \d+\) raised MemoryError", text), text
    assert re.search(r"scale' \(cell \d+\) raised OSError: \[Errno 28\] No space left on device", text) or \
        f"more than {DISK_MB} MiB to disk" in text, text
    assert score(options_batch["graded_first"]["correct"]) == 5  # the same limits, honest work


def test_a_flooding_cell_keeps_the_first_256_kib_with_a_note(options_batch):
    """About 1 MB printed in one cell, 10 kB at a time: the autograded copy keeps the first
    256 KiB and says what was dropped; the exception the cell raised then (a 100 kB message)
    is still reported, cut to 1000 characters in the journal and the feedback page."""
    nb = nbformat.read(options_batch["out"] / "autograded" / "over_limits" / "fix.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "'z' * 10_000" in c.source)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert "0000" + "z" * 10 in text and "0099" + "z" not in text
    assert 200 * 1024 < len(text) <= 256 * 1024 + 200
    assert text.rstrip().endswith("[grader: output beyond 256 KiB in this cell dropped]")
    # the exception it raised past the cap is kept all the same, cut short, and named
    assert [o.ename for o in cell.outputs if o.output_type == "error"] == ["RuntimeError"]
    entry = options_batch["graded_first"]["over_limits"]
    message = next(d["message"] for d in entry["diagnostics"] if "RuntimeError" in d["message"])
    assert re.match(r"your added cell \d+ \(cell \d+\) raised RuntimeError: w{900}", message), message[:200]
    assert len(message) < 1100
    page = (options_batch["out"] / "feedback" / "over_limits.html").read_text()
    assert "raised RuntimeError: " + "w" * 900 in page and "w" * 1001 not in page


def test_an_oversized_submission_is_refused_by_name_and_the_rest_graded(options_batch):
    entry = options_batch["graded_first"]["oversized"]
    assert score(entry) == 0 and not entry.get("grader_error")
    assert "oversized.ipynb: is 65.0 MiB, over the 64 MiB limit" in text_of(entry), entry
    assert {t["status"] for t in entry["tests"]} == {"not run"}
    assert "oversized" in summary_row(options_batch["first"].stdout, "oversized")
    assert len(options_batch["graded_first"]) == 5


# ---------------------------------------------------------------- where things go
def test_isolation_is_what_was_asked_and_reported(options_batch):
    first, again = options_batch["first"], options_batch["again"]
    assert "isolation: bwrap" in first.stderr and "WARNING" not in first.stderr
    assert "isolation: rlimits-only" in again.stderr and "WARNING: no filesystem or network isolation" in again.stderr
    before = options_batch["graded_first"]
    assert {e["isolation"] for e in before.values()} <= {"bwrap", "bwrap+nobody"}
    # what the kernel saw: the submissions folder only without the sandbox
    assert "SEES SUBMISSIONS False" in options_batch["unlucky_first"]
    regraded = journal(options_batch["out"])[UNLUCKY]
    if "could not run" in text_of(regraded):
        # as root, without the sandbox the kernel runs as nobody, who cannot read an interpreter
        # under /root (as here): the grader's failure, graded again next time, not the student's 0
        assert "Permission denied" in text_of(regraded) and regraded["grader_error"] is True
    else:
        assert "SEES SUBMISSIONS True" in (options_batch["out"] / "autograded" / UNLUCKY / "fix.ipynb").read_text()
    meta = json.loads((options_batch["out"] / "meta.json").read_text())
    assert meta["isolation"] == "rlimits-only"


def test_a_scratch_folder_too_long_for_the_kernels_sockets_is_refused_before_grading(options_batch, tmp_path):
    deep = tmp_path / ("d" * 60) / "scratch"
    deep.mkdir(parents=True)
    out = tmp_path / "out"
    proc = grade(options_batch["root"], options_batch["subs"], out, "--scratch", deep)
    assert proc.returncode != 0 and "socket" in proc.stderr and "Nobody was graded" in proc.stderr, proc.stderr[-2000:]
    assert not (out / "journal.jsonl").exists()


def test_scratch_holds_the_work_directories_and_is_left_empty(options_batch):
    scratch = options_batch["scratch"]
    nb = nbformat.reads(options_batch["unlucky_first"], as_version=4)
    said = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    workdir = re.search(r"WORKDIR (\S+)", said).group(1)
    assert Path(workdir).is_relative_to(scratch), workdir
    assert list(scratch.iterdir()) == []


def test_db_writes_the_gradebook_where_asked(options_batch):
    out, db = options_batch["out"], options_batch["db"]
    assert db.is_file() and not (out / "gradebook.db").exists()
    assert json.loads((out / "meta.json").read_text())["db_url"] == f"sqlite:///{db}"
    assert f"gradebook sqlite:///{db}" in options_batch["first"].stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        assert gb.find_submission("fix", "correct").score == 5
        assert gb.find_submission("fix", "over_timeout").score == 1


# ---------------------------------------------------------------- no data, no grading
def test_grading_without_the_data_refuses_before_any_notebook_runs(tmp_path):
    """a03 needs MNIST; with no mirror, an empty cache and downloads off, `grade` refuses with
    the reason and writes no grade for anyone."""
    release = next((REPO / "assignments" / "a03-lenet").glob("*.ipynb"))
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(release, subs / "alice.ipynb")
    out = tmp_path / "out"
    env = {"DLCOURSE_DATA_MIRROR": "", "DLCOURSE_DATA_DIR": str(tmp_path / "empty-cache"), "DLCOURSE_OFFLINE": "1"}
    proc = cli("grade", "a03-lenet", subs, "--output", out, "--quiet", env=env)
    assert proc.returncode != 0
    assert "the grader needs data set 'mnist" in proc.stderr and "make the data available" in proc.stderr, proc.stderr
    assert not (out / "journal.jsonl").exists() and not (out / "gradebook.db").exists()
    assert not (out / "autograded").exists() or not any((out / "autograded").iterdir())


# ---------------------------------------------------------------- the exchange
def _exchange_submission(exchange_root, student, nb_text, secret):
    stamp = "2026-12-06 10:00:00.000000 UTC"
    folder = exchange_root / "course" / "inbound" / f"{student}+fix+{stamp}+{secret[:12]}"
    folder.mkdir(parents=True)
    (folder / "fix.ipynb").write_text(nb_text)
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(secret)
    return folder


def test_collect_refuses_a_submission_over_64_mib_by_name_and_takes_the_others(tmp_path, capsys):
    release = nbformat.read(FIXTURE / "assignments" / "fix" / "fix.ipynb", as_version=4)
    exchange_root = tmp_path / "exchange"
    _exchange_submission(exchange_root, "alice", nbformat.writes(fill(release)), "a1" * 64)
    big = _exchange_submission(exchange_root, "bob", nbformat.writes(fill(release)), "b2" * 64)
    with (big / "data.bin").open("wb") as fh:
        fh.truncate(MAX_SUBMISSION_BYTES)  # with the notebook: over the cap (a sparse file)
    course = tmp_path / "course-dir"
    assert main(["collect", "fix", "--exchange", str(exchange_root), "--course-id", "course", "--course-dir",
                 str(course), "--no-owner-check"]) == 0
    said = capsys.readouterr()
    assert f"refused {big.name}: refused: more than 64 MiB in all" in said.err, said.err
    assert (course / "submitted" / "alice" / "fix" / "fix.ipynb").is_file()
    assert not (course / "submitted" / "bob" / "fix").exists() and list((course / "submitted" / "bob").iterdir()) == []
    assert "collected 1 of 2" in said.out


def test_release_feedback_hands_the_pages_to_nbgraders_exchange(options_batch, tmp_path, monkeypatch, capfd):
    """`autograder release-feedback`: pages of collected students go through nbgrader's own
    `release_feedback` to the name `fetch_feedback` looks for; uncollected students are skipped."""
    from autograder.exchange import feedback_name

    out = options_batch["out"]
    course, exchange_root = tmp_path / "course-dir", tmp_path / "exchange"
    (exchange_root / "course").mkdir(parents=True)
    submitted = course / "submitted" / "correct" / "fix"
    submitted.mkdir(parents=True)
    shutil.copy(options_batch["subs"] / "correct.ipynb", submitted / "fix.ipynb")
    secret = "c3" * 64
    (submitted / "submission_secret.txt").write_text(secret)
    (submitted / "timestamp.txt").write_text("2026-12-06 10:00:00.000000 UTC")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'course'\nc.CourseDirectory.root = {str(course)!r}\n"
        f"c.Exchange.root = {str(exchange_root)!r}\n")
    monkeypatch.setenv("HOME", str(tmp_path))  # no configuration of the user's: the course's alone
    rc = main(["release-feedback", "fix", "--output", str(out), "--course-dir", str(course)])
    said = capfd.readouterr()
    assert rc == 0, said.out + said.err
    assert "staged feedback for 1 students" in said.out
    assert "over_timeout: not collected from the exchange" in said.err
    page = exchange_root / "course" / "feedback" / feedback_name(secret, "fix")
    assert page.is_file(), sorted(p.name for p in (exchange_root / "course").rglob("*"))
    assert "feedback for correct" in page.read_text() and "Score: <b>5 / 5</b>" in page.read_text()


def test_loading_the_grader_into_a_kernel_is_not_the_students_time(monkeypatch):
    """Before any cell, a new kernel loads the grader's agent; on a loaded machine that took longer
    than a cell's limit, and the cell limit applied to it, so a CI run once turned hostile-batch
    gradings into grader errors. The loading is the grader's time: here it really takes 4 s in a
    real kernel (a pause added in front of the agent's code) against a 2 s cell limit, and a
    correct submission still gets every point, with no grader error."""
    from autograder import execute
    from autograder.grade import grade_here

    slow = execute._bootstrap
    monkeypatch.setattr(execute, "_bootstrap", lambda folder: "import time\ntime.sleep(4)\n" + slow(folder))
    source = nbformat.read(FIXTURE / "solutions" / "fix" / "fix.ipynb", as_version=4)
    release = nbformat.read(FIXTURE / "assignments" / "fix" / "fix.ipynb", as_version=4)
    ex = grade_here(source, fill(release), release, assignment="fix", cell_timeout=2)
    assert not ex.grader_error, ex.diagnostics
    assert sum(t.score for t in ex.tests) == 5, [(t.grade_id, t.message) for t in ex.tests]
