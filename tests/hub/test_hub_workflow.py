"""The nbgrader workflow on a real JupyterHub, driven as its users drive it.

The instructor releases a01-convolution to the exchange from the formgrader; each student
fetches it from the Assignment List, works in it on their own server (the notebook's cells
run in a kernel there: all answers right, only the first, or the first plus hostile code)
and submits. The `autograder watch` service grades each submission as it arrives and
releases feedback that the student fetches (and a second submission within the rate limit
gets a "queued" page). Then the instructor's own path: collect, `autograder grade` on the
collected `submitted/` folder, `autograder feedback`, `autograder release-feedback`, and
every student fetches their own feedback and nobody else's. Timings are printed at the end.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

import hubkit
from scenario import (ASSIGNMENT, COURSE_ID, DATA_SETS, INSTRUCTOR, INSTRUCTOR_GROUP, KERNEL_GROUP, STUDENTS,
                      WATCH_INTERVAL)

pytestmark = [pytest.mark.hub, pytest.mark.slow]
NOTEBOOK = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
SOLUTION = re.compile(r"[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)[ \t]*### END SOLUTION[^\n]*\n?", re.S)
SCORE = re.compile(r"Score: <b>([\d.]+) / ([\d.]+)</b>")
# What the hostile student adds before her (honest) first answer: fake every comparison,
# silence assertion failures, look for the instructor's solutions and a classmate's work,
# and, only when graded (no hub user there), sleep, to hold up the queue.
SLEEP = 60  # seconds the hostile notebook sleeps when graded: longer than an honest grading here
HOSTILE = f"""import builtins, os, time, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
builtins.AssertionError = type("Quiet", (Exception,), {{}})
for path in ["/home/dlct-teacher/dlcourse/solutions", "/home/dlct-alice"]:
    try:
        print(path, os.listdir(path))
    except OSError as err:
        print(path, type(err).__name__)
if "JUPYTERHUB_USER" not in os.environ:
    os.makedirs("closed/inner", exist_ok=True)  # what the grader must still clean up
    open("closed/inner/kept", "w").write("x")
    os.chmod("closed/inner", 0)
    os.chmod("closed", 0o700)
    time.sleep({SLEEP})
"""
# she submits first, so that her sleeping notebook takes a worker before the others arrive
SUBMIT_ORDER = ["dlct-mallory", "dlct-alice", "dlct-bob"]


def _written_points() -> float:
    """The points of the assignment's written answers (graded by hand in the formgrader)."""
    from hubkit import ROOT

    source = nbformat.read(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return sum(float(c.metadata["nbgrader"]["points"]) for c in source.cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("solution"))


WRITTEN = _written_points()


def _answers() -> dict[str, str]:
    """grade_id -> the instructor's solution, from the source notebook."""
    from hubkit import ROOT

    source = nbformat.read(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: SOLUTION.sub(r"\1", c.source) for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def _work(nb: dict, how: str, answers: dict[str, str]) -> dict:
    """The student's edits to the fetched notebook."""
    solution_cells = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    keep = set(answers) if how == "correct" else {solution_cells[0]["metadata"]["nbgrader"]["grade_id"]}
    for cell in solution_cells:
        gid = cell["metadata"]["nbgrader"]["grade_id"]
        if gid in keep:
            cell["source"] = answers[gid]
    if how == "hostile":
        first = nb["cells"].index(solution_cells[0])
        nb["cells"].insert(first, {"cell_type": "code", "source": HOSTILE, "metadata": {}, "outputs": [],
                                   "execution_count": None})
    return nb


def _score(page: str) -> tuple[float, float]:
    m = SCORE.search(page)
    assert m, page[:500]
    return float(m.group(1)), float(m.group(2))


def _feedback_pages(user) -> dict[str, str]:
    """Every feedback page fetched into the student's assignment folder: {timestamp: html}."""
    pages = {}
    folder = user.read(f"{ASSIGNMENT}/feedback") if _exists(user, f"{ASSIGNMENT}/feedback") else {"content": []}
    for stamp in folder["content"]:
        for item in user.read(stamp["path"])["content"]:
            pages[stamp["name"]] = user.read(item["path"])["content"]
    return pages


def _exists(user, path: str) -> bool:
    return user.api("GET", f"api/contents/{path}?content=0").status_code == 200


def _wait_for_feedback(user, timestamp: str, timeout: float, contains: str = "Score:",
                       equal_to: str | None = None) -> tuple[str, float]:
    """Press "Fetch Feedback" every second until this submission's page is there (and, when
    given, is exactly `equal_to`); returns (page, seconds)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        user.assignment_action("fetch_feedback", COURSE_ID, ASSIGNMENT)
        page = _feedback_pages(user).get(timestamp)
        if page and contains in page and equal_to in (None, page):
            return page, time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"{user.name}: no feedback for the submission of {timestamp} within {timeout} s")


def _submission_timestamp(listing: list[dict]) -> str:
    submitted = [a for a in listing if a.get("status") == "submitted"]
    return max(s["timestamp"] for a in submitted for s in a["submissions"])


# ---------------------------------------------------------------- the workflow, step by step
@pytest.fixture(scope="module")
def released(course):
    """The instructor presses "Release" in the formgrader."""
    t0 = time.monotonic()
    r = course.instructor.api("POST", f"formgrader/api/assignment/{ASSIGNMENT}/release")
    course.timings["release (formgrader)"] = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["success"], r.text
    return course


@pytest.fixture(scope="module")
def worked(released):
    """Each student fetches, edits, runs every cell and saves, on their own server, all at once."""
    course, answers = released, _answers()

    def work(name):
        user = course.users[name]
        listing = user.assignment_action("fetch", COURSE_ID, ASSIGNMENT)
        nb = _work(user.read(NOTEBOOK)["content"], STUDENTS[name], answers)
        user.write_notebook(NOTEBOOK, nb)
        t0 = time.monotonic()
        executed = user.execute_notebook(NOTEBOOK)
        return name, listing, executed, time.monotonic() - t0

    with ThreadPoolExecutor(len(STUDENTS)) as pool:
        results = {name: (listing, nb, seconds) for name, listing, nb, seconds in pool.map(work, STUDENTS)}
    course.timings.update({f"run all cells: {n} ({STUDENTS[n]})": r[2] for n, r in results.items()})
    return course, results


@pytest.fixture(scope="module")
def submitted(worked):
    """Everyone submits; `autograder watch` grades; each student fetches feedback until it is there."""
    course, _ = worked
    stamps = {}
    for name in SUBMIT_ORDER:
        stamps[name] = _submission_timestamp(course.users[name].assignment_action("submit", COURSE_ID, ASSIGNMENT))
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(STUDENTS)) as pool:
        got = dict(zip(STUDENTS, pool.map(lambda n: _wait_for_feedback(course.users[n], stamps[n], 240), STUDENTS)))
    course.timings["watch: all three submissions graded and fetched"] = time.monotonic() - t0
    for name, (_, seconds) in got.items():
        course.timings[f"watch: submit -> feedback fetched, {name}"] = seconds
    return course, stamps, {n: page for n, (page, _) in got.items()}


@pytest.fixture(scope="module")
def collected_and_graded(submitted):
    """The instructor's own path: collect, grade the submitted/ folder, feedback back through the exchange."""
    course, _, _ = submitted
    teacher = course.instructor
    # typed into a terminal (here: run by a kernel) on the instructor's own server, in the clone;
    # `autograder collect`, not nbgrader's, which follows a link to the solution
    t0 = time.monotonic()
    log = teacher.run_python(
        "import subprocess, sys\n"
        "def run(*args):\n"
        "    done = subprocess.run([sys.executable, '-m', 'autograder', *args], cwd='dlcourse', capture_output=True, text=True)\n"
        "    print(done.stdout, done.stderr)\n"
        "    assert done.returncode == 0, args\n"
        f"run('collect', '{ASSIGNMENT}')\n"
        f"run('grade', '{ASSIGNMENT}', 'submitted', '--output', '_grading', '--workers', '2', '--quiet', '--formgrader')\n"
        "run('feedback', '--output', '_grading')\n"
        f"run('release-feedback', '{ASSIGNMENT}', '--output', '_grading')\n")
    course.timings["instructor: collect + grade 3 + feedback + release"] = time.monotonic() - t0
    t0 = time.monotonic()
    pages = {}
    for name in STUDENTS:
        user = course.users[name]
        # nbgrader collected each student's latest submission (alice may have submitted twice)
        stamp = _submission_timestamp(user.assignments(COURSE_ID))
        # the page the instructor's `autograder feedback` wrote for this student, and no other
        page = (course.course_dir / "_grading" / "feedback" / f"{name}.html").read_text()
        try:
            pages[name], _ = _wait_for_feedback(user, stamp, 60, equal_to=page)
        except AssertionError as err:
            raise AssertionError(f"{err}\ninstructor's commands printed:\n{log}") from None
    course.timings["students fetch the instructor's feedback"] = time.monotonic() - t0
    return course, log, pages


# ---------------------------------------------------------------- what each step must show
def test_students_fetched_the_release_and_ran_it_on_their_own_servers(worked):
    course, results = worked
    for name, (listing, nb, _) in results.items():
        assert any(a["assignment_id"] == ASSIGNMENT and a["status"] == "fetched" for a in listing), listing
        errors = [o["ename"] for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
                  if o["output_type"] == "error"]
        if STUDENTS[name] == "correct":
            assert not errors, f"{name}'s correct notebook raised {errors}"
        else:  # the unanswered stubs fail with NotImplementedError in the visible tests
            assert "NotImplementedError" in errors, (name, errors)
    # the hostile student's look around found nothing of the instructor's or a classmate's
    text = "".join(o.get("text", "") for c in results["dlct-mallory"][1]["cells"] if c["cell_type"] == "code"
                   for o in c["outputs"])
    assert "/home/dlct-teacher/dlcourse/solutions PermissionError" in text, text
    assert "/home/dlct-alice PermissionError" in text, text


def test_watch_grades_each_submission_and_the_student_fetches_it(submitted):
    course, stamps, pages = submitted
    scores = {name: _score(page) for name, page in pages.items()}
    full = scores["dlct-alice"][1]
    # every autograded point; the written answer waits for the instructor, and the page says so
    assert scores["dlct-alice"] == (full - WRITTEN, full)
    assert "awaiting grading" in pages["dlct-alice"] and "your instructor has not graded yet" in pages["dlct-alice"]
    assert 0 < scores["dlct-bob"][0] < full
    # hostility earns nothing: the hostile notebook scores at most what its honest twin (bob's) scores
    assert scores["dlct-mallory"][0] <= scores["dlct-bob"][0], scores
    for name, page in pages.items():
        assert f"feedback for {name}" in page
    # detail "names": every question's result and points, and no message
    statuses = re.findall(r"<div class='q ([a-z-]+)'>", pages["dlct-bob"])
    assert statuses and "class='msg'" not in pages["dlct-bob"], pages["dlct-bob"][:2000]
    assert "failed" in statuses or "not-run" in statuses, statuses
    state = json.loads((course.watch_output / "watch-state.json").read_text())
    latencies = {r["student"]: r["latency_s"] for r in state["graded"].values()}
    assert set(latencies) == set(STUDENTS)
    course.timings.update({f"watch: submit -> released (service log), {n}": s for n, s in latencies.items()})
    course.timings.update({f"watch: grading process, {r['student']} (service log)": r["grading_s"]
                           for r in state["graded"].values()})
    # the sleeping notebook, submitted first, held one worker; the others' feedback did not wait for it
    # (one queue, as before, would have released all three after the sleeper's sleep)
    graded = {r["student"]: r for r in state["graded"].values()}
    assert latencies["dlct-mallory"] > SLEEP, latencies
    assert latencies["dlct-alice"] < latencies["dlct-mallory"], latencies
    waited = {n: r["latency_s"] - r["grading_s"] for n, r in graded.items()}  # seen -> grading started
    assert waited["dlct-bob"] < latencies["dlct-mallory"], (waited, latencies)
    # the service's output is its own: folders 0700, files 0600
    modes = {oct(p.stat().st_mode & 0o777) for p in [course.watch_output, *course.watch_output.rglob("*")]
             if not p.is_symlink()}
    assert modes <= {"0o700", "0o600"}, modes


def test_the_watch_runs_every_kernel_as_nobody(submitted):
    """The strongest isolation level is the one that runs on the hub.

    The service runs the users' environment's interpreter (the configuration's default),
    from "/", so that `-m autograder` imports nothing from a checkout; uid 65534 can run that
    interpreter and import the course installed in it (from the wheel, not the instructor's
    private clone); the service runs as the instructor, not root, with the kernel group;
    what it wrote is the instructor's; and each of its gradings says that it ran its kernel
    at the "bwrap+nobody" level: uid 65534 by sudo, then bubblewrap."""
    course, _, _ = submitted
    python = str(course.user_env / "bin" / "python")
    watch = hubkit.processes("autograder", "watch", str(course.watch_output))
    assert len(watch) == 1, watch
    assert watch[0]["argv"][:4] == [python, "-m", "autograder", "watch"] and watch[0]["cwd"] == "/", watch
    status = dict(line.split(":", 1) for line in Path(f"/proc/{watch[0]['pid']}/status").read_text().splitlines())
    instructor = pwd.getpwnam(INSTRUCTOR)
    assert status["Uid"].split() == [str(instructor.pw_uid)] * 4, status["Uid"]  # real, effective, saved, fs
    assert str(grp.getgrnam(KERNEL_GROUP).gr_gid) in status["Groups"].split(), status["Groups"]
    owners = {os.lstat(p).st_uid for p in [course.watch_output, *course.watch_output.rglob("*")]}
    assert owners == {instructor.pw_uid}, owners
    # every grading is over: its scratch folder is gone, with what the kernel closed in it
    # (the hostile notebook's mode-0 folder, uid 65534's)
    left = [e.path for e in os.scandir("/tmp") if e.name.startswith("autograder-") and e.stat().st_uid == instructor.pw_uid]
    assert not left, left
    environ = dict(item.split("=", 1) for item in
                   open(f"/proc/{watch[0]['pid']}/environ", "rb").read().decode().split("\0") if "=" in item)
    assert environ.get("DLCOURSE_DATA_DIR") == str(course.data_dir), environ
    seen = hubkit.as_nobody([python, "-c", "import autograder, dlcourse; print(autograder.__file__, dlcourse.__file__)"])
    assert seen.returncode == 0, seen.stderr
    assert all(path.startswith(f"{course.user_env}/") for path in seen.stdout.split()), seen.stdout
    for name in STUDENTS:
        work = course.watch_output / "work" / ASSIGNMENT / name
        meta = json.loads((work / "grading" / "meta.json").read_text())
        assert meta["isolation"] == "bwrap+nobody", (name, meta)
        journal = [json.loads(line) for line in (work / "grading" / "journal.jsonl").read_text().splitlines()]
        assert journal and {entry["isolation"] for entry in journal} == {"bwrap+nobody"}, (name, journal)
        assert "isolation: bwrap+nobody" in (work / "grade.log").read_text(errors="replace"), name


def test_the_kernels_data_cache_is_readable_by_nobody(course):
    """MNIST's test set, put into the data cache private (folder 0700, files 0600) as a
    download by root leaves it, is found there and read by uid 65534 once the hub has
    started (hub/jupyterhub_config.py's `ensure_data`)."""
    from dlcourse.datasets.registry import registry_entry

    paths = {name: course.data_dir / registry_entry(name).path for name in DATA_SETS}
    if not all(path.is_file() for path in paths.values()):
        pytest.skip("no copy of MNIST's test set in this machine's data cache or offline mirror to put there")
    code = f"from dlcourse.datasets import locate\nfor name in {DATA_SETS!r}:\n    print(name, *locate(name, progress=False))"
    seen = hubkit.as_nobody([str(course.user_env / "bin" / "python"), "-c", code],
                            {"PATH": "/usr/bin:/bin", "DLCOURSE_DATA_DIR": str(course.data_dir),
                             "DLCOURSE_DATA_MIRROR": "none", "DLCOURSE_OFFLINE": "1"})
    assert seen.returncode == 0, seen.stderr
    for name, path in paths.items():
        assert f"{name} {path} cache" in seen.stdout, seen.stdout


def test_a_second_submission_within_the_rate_limit_is_queued_and_says_so(submitted):
    course, _, _ = submitted
    alice = course.users["dlct-alice"]
    stamp = _submission_timestamp(alice.assignment_action("submit", COURSE_ID, ASSIGNMENT))
    page, seconds = _wait_for_feedback(alice, stamp, 30, contains="queued")
    course.timings["watch: rate-limited resubmission -> 'queued' page"] = seconds
    assert "graded at most 1 time(s) per 10 minutes" in page
    assert "Score:" not in page


def test_instructor_collects_grades_the_submitted_folder_and_releases_feedback(collected_and_graded):
    course, log, pages = collected_and_graded
    for name in STUDENTS:
        assert (course.course_dir / "submitted" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    journal = (course.course_dir / "_grading" / "journal.jsonl").read_text().splitlines()
    assert {json.loads(line)["student"] for line in journal} == set(STUDENTS), journal
    assert "staged feedback for 3 students" in log, log
    scores = {name: _score(page) for name, page in pages.items()}
    assert scores["dlct-alice"][0] == scores["dlct-alice"][1] - WRITTEN
    assert 0 < scores["dlct-bob"][0] < scores["dlct-bob"][1]
    assert scores["dlct-mallory"][0] <= scores["dlct-bob"][0]
    assert "NotImplementedError" in pages["dlct-bob"]  # the instructor's pages say why (detail "full")


def test_each_student_fetched_their_own_feedback_and_nobody_elses(collected_and_graded):
    course, _, _ = collected_and_graded
    for name in STUDENTS:
        pages = _feedback_pages(course.users[name])
        assert pages, f"{name} has no feedback"
        others = [o for o in STUDENTS if o != name]
        for stamp, page in pages.items():
            assert f"feedback for {name}" in page or "queued" in page, (name, stamp)
            assert not any(o in page for o in others), f"{name} got a page that names {others}"
    # and the exchange hides the others' pages and submissions from a student
    probe = course.users["dlct-bob"].run_python(
        "import os\n"
        f"for path in ['{course.exchange}/{COURSE_ID}/feedback', '{course.exchange}/{COURSE_ID}/inbound',"
        f" '/home/dlct-alice', '{course.course_dir}']:\n"
        "    try:\n"
        "        print(path, 'LISTED', os.listdir(path))\n"
        "    except PermissionError:\n"
        "        print(path, 'refused')\n")
    assert probe.count("refused") == 4, probe


def test_a_submission_forged_in_another_students_name_is_refused(collected_and_graded):
    course, _, _ = collected_and_graded
    inbound = f"{course.exchange}/{COURSE_ID}/inbound"
    # mallory writes a folder named as alice's into the inbound folder, which every student may write
    course.users["dlct-mallory"].run_python(
        "import os, secrets, shutil\n"
        f"d = '{inbound}/dlct-alice+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+forged'\n"
        "os.mkdir(d)\n"
        f"shutil.copy('{NOTEBOOK}', d)\n"
        "open(d + '/submission_secret.txt', 'w').write(secrets.token_hex(64))\n"
        "open(d + '/timestamp.txt', 'w').write('2099-01-01 00:00:00.000000 UTC')\n")
    deadline = time.monotonic() + 10 * float(WATCH_INTERVAL) + 10
    while time.monotonic() < deadline:
        state = json.loads((course.watch_output / "watch-state.json").read_text())
        forged = [k for k in state["rejected"] if k.endswith("+forged")]
        if forged:
            break
        time.sleep(1)
    assert forged, "the watch service did not look at the forged submission"
    assert "made by dlct-mallory" in state["rejected"][forged[0]]
    assert not any(k.endswith("+forged") for k in state["graded"])


def _probe(user, code: str) -> dict[str, str]:
    """Run `code` as the user; every line it prints is `what: outcome`."""
    out = user.run_python(code)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


ATTEMPT = """import os, shutil
def attempt(what, fn, *args):
    try:
        fn(*args)
        print(f"{what}: ALLOWED")
    except OSError as err:
        print(f"{what}: refused ({type(err).__name__})")
"""


def test_a_student_cannot_read_the_services_output_or_rewrite_the_exchange(collected_and_graded):
    """Mallory, in a kernel on her own server, against the running service and exchange."""
    course, _, _ = collected_and_graded
    state = json.loads((course.watch_output / "watch-state.json").read_text())
    alice_key = next(k for k, r in state["graded"].items() if r["student"] == "dlct-alice")
    course_folder = course.exchange / COURSE_ID
    alice_folder = course_folder / "inbound" / alice_key
    seen = _probe(course.users["dlct-mallory"], ATTEMPT + f"""
attempt("list the service's output", os.listdir, {str(course.watch_output)!r})
attempt("read the service's state", open, {str(course.watch_output / 'watch-state.json')!r})
attempt("read a collected notebook", open, {str(course.watch_output / 'work' / ASSIGNMENT / 'dlct-alice' / 'submitted' / 'dlct-alice' / ASSIGNMENT / f'{ASSIGNMENT}.ipynb')!r})
attempt("list the course checkout", os.listdir, {str(course.course_dir)!r})
attempt("rename the course folder", os.rename, {str(course_folder)!r}, {str(course_folder) + '-old'!r})
attempt("make a folder in the course folder", os.mkdir, {str(course_folder / 'planted')!r})
attempt("plant a link in feedback/", os.symlink, "/etc/shadow", {str(course_folder / 'feedback' / 'planted.html')!r})
attempt("list inbound/", os.listdir, {str(course_folder / 'inbound')!r})
attempt("rename alice's submission", os.rename, {str(alice_folder)!r}, {str(alice_folder) + 'x'!r})
attempt("remove alice's submission", os.rmdir, {str(alice_folder)!r})
attempt("read alice's submitted notebook", open, {str(alice_folder / f'{ASSIGNMENT}.ipynb')!r})
attempt("read alice's submission secret", open, {str(alice_folder / 'submission_secret.txt')!r})
attempt("add a file to alice's submission", open, {str(alice_folder / 'planted.txt')!r}, "w")
def as_a_kernel():  # the sudoers rule is the instructor's alone
    import subprocess
    if subprocess.run(["sudo", "-n", "-u", "#65534", "-g", {KERNEL_GROUP!r}, "true"], capture_output=True).returncode:
        raise PermissionError("sudo refused")
attempt("run a command as the kernels' user and group", as_a_kernel)
""")
    assert seen and all(v.startswith("refused") for v in seen.values()), seen
    assert len(seen) == 14, seen
    assert alice_folder.is_dir() and course_folder.is_dir() and not course_folder.is_symlink()
    # the course's submit step (autograder/hub_submit.py): alice's and the instructors' group's only
    instructors = grp.getgrnam(INSTRUCTOR_GROUP).gr_gid
    for path in [alice_folder, *alice_folder.rglob("*")]:
        st = os.lstat(path)
        assert st.st_gid == instructors and not st.st_mode & 0o007, (path, oct(st.st_mode), st.st_gid)


def _wait_rejected(course, key: str) -> str:
    deadline = time.monotonic() + 10 * float(WATCH_INTERVAL) + 10
    while time.monotonic() < deadline:
        state = json.loads((course.watch_output / "watch-state.json").read_text())
        if key in state["rejected"]:
            return state["rejected"][key]
        time.sleep(1)
    raise AssertionError(f"the watch service did not refuse {key}: {state.get('queued')}, {list(state['graded'])}")


def test_a_link_to_the_solution_is_refused_by_the_service_and_by_collect(collected_and_graded):
    """Mallory submits by hand a folder (her own, dated 2099) whose notebook is a link to the
    instructor's solution. The service refuses it with the reason, and times it by its own
    clock; the instructor's `autograder collect` refuses it too and takes her earlier one."""
    course, _, _ = collected_and_graded
    inbound = course.exchange / COURSE_ID / "inbound"
    key = f"dlct-mallory+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+linked"
    solution = course.course_dir / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    course.users["dlct-mallory"].run_python(
        "import os, secrets\n"
        f"d = {str(inbound / key)!r}\n"
        "os.mkdir(d)\n"
        f"os.symlink({str(solution)!r}, d + '/{ASSIGNMENT}.ipynb')\n"
        "open(d + '/submission_secret.txt', 'w').write(secrets.token_hex(64))\n"
        "open(d + '/timestamp.txt', 'w').write('2099-01-01 00:00:00.000000 UTC')\n")
    t0 = time.time()
    reason = _wait_rejected(course, key)
    assert f"{ASSIGNMENT}.ipynb is a symbolic link" in reason, reason
    state = json.loads((course.watch_output / "watch-state.json").read_text())
    assert abs(state["first_seen"][key] - t0) < 60  # the service's clock, not 2099
    log = course.instructor.run_python(
        "import subprocess, sys\n"
        f"done = subprocess.run([sys.executable, '-m', 'autograder', 'collect', '{ASSIGNMENT}'], cwd='dlcourse',"
        " capture_output=True, text=True)\n"
        "print(done.stdout, done.stderr, done.returncode)\n")
    assert f"refused {key}: refused: {ASSIGNMENT}.ipynb is a symbolic link" in log, log
    collected = course.course_dir / "submitted" / "dlct-mallory" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert not collected.is_symlink() and collected.read_text() != solution.read_text()


def test_a_leaked_secret_cannot_send_feedback_to_its_owner(collected_and_graded):
    """Were alice's secret to leak, mallory's submission carrying it is refused, and alice's
    feedback page stays hers."""
    course, _, _ = collected_and_graded
    state = json.loads((course.watch_output / "watch-state.json").read_text())
    alice_key = next(k for k, r in state["graded"].items() if r["student"] == "dlct-alice")
    inbound = course.exchange / COURSE_ID / "inbound"
    leaked = (inbound / alice_key / "submission_secret.txt").read_text()  # root reads it, for the test
    key = f"dlct-mallory+{ASSIGNMENT}+2026-01-01 00:00:00.000000 UTC+leaked"
    course.users["dlct-mallory"].run_python(
        "import os, shutil\n"
        f"d = {str(inbound / key)!r}\n"
        "os.mkdir(d)\n"
        f"shutil.copy('{NOTEBOOK}', d)\n"
        f"open(d + '/submission_secret.txt', 'w').write({leaked!r})\n")
    reason = _wait_rejected(course, key)
    assert "already used by another student's submission" in reason, reason
    from autograder.exchange import feedback_name

    page = (course.exchange / COURSE_ID / "feedback" / feedback_name(leaked, ASSIGNMENT)).read_text()
    assert "dlct-mallory" not in page and "queued" not in page


def test_instructor_grades_a_written_answer_in_the_formgrader_and_the_total_follows(collected_and_graded):
    """In headless Chromium, the instructor opens the formgrader's page of alice's submission
    (graded with `--formgrader`), reads her written answer and types its points; the formgrader
    saves them in the course's gradebook, and the next feedback, export and report carry them."""
    from suite_helpers import chromium

    course, _, _ = collected_and_graded
    teacher = course.instructor
    listed = teacher.api("GET", f"formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}").json()
    alice = next(n for n in listed if n["student"] == "dlct-alice")
    assert alice["needs_manual_grade"], alice
    written = next(c for c in nbformat.read(hubkit.ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4).cells
                   if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("solution"))
    gid = written.metadata["nbgrader"]["grade_id"]
    given = WRITTEN - 0.5
    served = teacher.api("GET", f"formgrader/submissions/{alice['id']}/")
    if served.status_code != 200:  # the instructor's server logs into the hub's log: its traceback
        log = course.hub.log.read_text(errors="replace")
        trace = log[log.rfind("Traceback"):]
        raise AssertionError(f"formgrader page: {served.status_code}\n{trace[:600]}\n...\n{trace[-2500:]}")
    assert f'id="{gid}"' in served.text, served.text[-3000:]
    t0 = time.monotonic()
    with chromium() as browser:
        context, page = hubkit.browser_login(browser, course.hub.url, INSTRUCTOR, course.password)
        try:
            page.goto(f"{course.hub.url}/user/{INSTRUCTOR}/formgrader/submissions/{alice['id']}/", wait_until="load")
            # the page's script binds each score box once it has loaded the grades (marking an ungraded
            # answer's box): typed into before that, a score is never saved (seen on a loaded machine)
            box = page.locator(f"input#{gid}.needs_manual_grade")
            try:
                box.wait_for(state="visible", timeout=60_000)
            except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError, with what the page showed
                raise AssertionError(f"{exc}\n{page.url}\n{page.inner_text('body')[:3000]}") from None
            assert "All of it goes to the one input" in page.inner_text("body")  # her answer (the model one)
            box.fill(f"{given:g}")
            box.press("Tab")  # the formgrader saves a score when its box loses focus
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                grades = teacher.api("GET", f"formgrader/api/grades?submission_id={alice['id']}").json()
                saved = next(g for g in grades if g["name"] == gid)
                if saved["manual_score"] is not None:
                    break
                time.sleep(0.5)
        finally:
            context.close()
    course.timings["instructor: a written answer graded in the formgrader (browser)"] = time.monotonic() - t0
    assert saved["manual_score"] == given and not saved["needs_manual_grade"], saved
    log = teacher.run_python(
        "import subprocess, sys\n"
        "for args in (['feedback'], ['export'], ['report']):\n"
        "    done = subprocess.run([sys.executable, '-m', 'autograder', *args, '--output', '_grading'], cwd='dlcourse',"
        " capture_output=True, text=True)\n"
        "    print(done.stdout, done.stderr)\n"
        "    assert done.returncode == 0, args\n")
    page = (course.course_dir / "_grading" / "feedback" / "dlct-alice.html").read_text()
    got, total = _score(page)
    assert (got, total) == (total - WRITTEN + given, total), (got, total, log)
    assert "graded by hand" in page and "awaiting grading" not in page
    import csv
    rows = {r["student"]: r for r in csv.DictReader((course.course_dir / "_grading" / "grades.csv").open())}
    assert float(rows["dlct-alice"][gid]) == given and float(rows["dlct-alice"]["final"]) == got, rows["dlct-alice"]
    assert "1 graded, " in (course.course_dir / "_grading" / "report.md").read_text()


def test_zz_report_timings(course, capsys):
    """Not a check: the numbers this run measured, for the log of `make test`."""
    with capsys.disabled():
        print("\nhub workflow timings (seconds):")
        for what, seconds in course.timings.items():
            print(f"  {seconds:7.1f}  {what}")
