"""`autograder grade ASSIGNMENT SUBMISSIONS`: grade a whole class in one command.

The pipeline for one submission (each step's reason beside it):
  1. read        - a notebook that is not JSON is a per-student diagnostic, not a crash
  2. restore     - rebuild on the source notebook: hidden tests back, locked cells reset,
                   deleted/duplicated/retyped cells handled (autograder.restore)
  3. parameterize- papermill injects PROFILE/DEVICE/SEED after the `parameters` cell
  4. execute     - student code in a sandboxed kernel, cell by cell, with time, memory,
                   process and disk limits; graded test cells in this worker's own process
                   against the student's names through a plain-data channel
                   (autograder.execute, autograder.remote, autograder.sandbox)
  5. write       - the instructor process alone writes the gradebook and the journal
Steps 1-4 run in workers (local processes, or a Dask cluster with --scheduler); they
return plain dictionaries. Step 5 runs here, as results arrive.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat

from autograder import manual
from autograder import notebook_checks as checks
from autograder.restore import SubmissionError, read_regular_file, read_submission, restore
from autograder.sandbox import Limits, disk_quota, isolation, process_cap

DEFAULT_OUTPUT = "_grading"
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- finding things
def find_assignment(root: Path, assignment: str) -> tuple[Path, Path | None]:
    """(source notebook, released notebook or None) for an assignment name."""
    src_dir = root / "solutions" / assignment
    notebooks = sorted(src_dir.glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"autograder grade: no source notebook in {src_dir}")
    source = notebooks[0]
    release = root / "assignments" / assignment / source.name
    return source, (release if release.exists() else None)


SAFE_ID = re.compile(r"[^A-Za-z0-9_.@+-]")


def safe_student_id(raw: str) -> str:
    """A student id that is safe as a path component, a gradebook key and a spreadsheet cell.

    Letters, digits and _ . @ + - only; no leading dot or dash (so never "." or ".."); at
    most 64 characters. Anything else is replaced, and a name that changed gets a short
    hash of the original so that two different names cannot collide.
    """
    cleaned = SAFE_ID.sub("_", raw).lstrip(".-")[:48]
    if cleaned == raw and cleaned:
        return cleaned
    return f"{cleaned or 'student'}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


def find_submissions(folder: Path, assignment: str, notebook_name: str) -> dict[str, tuple[Path, str]]:
    """student id -> (notebook, name as found), from nbgrader's submitted/{student}/{assignment}/
    layout or a flat folder of {student}.ipynb. Ids are made safe (`safe_student_id`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"autograder grade: {folder} is not a folder of submissions")
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(folder.glob(f"*/{assignment}/*.ipynb")):
        raw = path.parts[-3]
        student = safe_student_id(raw)
        if path.name == notebook_name or student not in found:
            found[student] = (path, raw)
    for path in sorted(folder.glob("*.ipynb")):
        raw = path.name[: -len(".ipynb")]
        found.setdefault(safe_student_id(raw), (path, raw))
    return found


def test_digests(source_text: str) -> dict[str, str]:
    """Each graded test cell's text, hashed: what `autograder regrade` compares to say which
    questions a change to the assignment touched."""
    nb = nbformat.reads(source_text, as_version=4)
    return {c.metadata.nbgrader["grade_id"]: hashlib.sha256(c.source.encode()).hexdigest()[:16]
            for c in nb.cells if checks.is_graded_test(c)}


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


# ---------------------------------------------------------------- the worker side
def _where(exc: BaseException, frames: int = 4) -> str:
    """Where a grader error was raised: its innermost frames as "file:line in function"."""
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    return "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(tb)) or "no traceback"


def grade_job(job: dict) -> dict:
    """Grade one submission (steps 1-4). Runs in a worker; returns a JSON-able dict.

    Never raises: a failure of the grader itself becomes that student's diagnostic, so
    the batch goes on and the instructor sees whom to look at.
    """
    try:
        return _sanitized(_grade_job(job))
    except Exception as exc:  # noqa: BLE001 - reported per student, batch goes on
        source = nbformat.reads(job["source"], as_version=4)
        return _sanitized({"student": job["student"], "hash": job["hash"], "isolation": job["level"], "flags": [], "grader_error": True,
                "secret_seed": job.get("secret_seed", 0),
                "diagnostics": [{"cell": "-", "severity": "error",
                                 "message": f"grader error, needs a human: {type(exc).__name__}: {exc} ({_where(exc)})"}],
                "tests": [{"grade_id": g, "points": p, "score": 0.0, "status": "not run", "message": "not run: grader error"}
                          for g, p in checks.graded_tests(source)],
                "seconds": 0.0})


def _sanitized(result: dict) -> dict:
    """The result with every message the kernel may have influenced cleaned of control
    characters and bounded (`autograder.text.clean`): the journal, the gradebook, the
    summary, the feedback and the report all read it from here."""
    from autograder.text import clean

    for d in result.get("diagnostics", []):
        d["message"] = clean(d.get("message", ""))
        d["cell"] = clean(d.get("cell", "-"), 200)
        if "section" in d:
            d["section"] = clean(d["section"], 200)
    for t in result.get("tests", []):
        t["message"] = clean(t.get("message", ""))
    result["flags"] = [clean(f) for f in result.get("flags", [])][:50]
    return result


def prefetch_data(source: nbformat.NotebookNode) -> None:
    """Fetch the data sets the assignment declares (metadata `dlcourse.prefetch`) into this
    machine's cache before the kernel starts: the sandboxed kernel has no network.

    Runs on the worker (locally or on a Dask worker), once per data set and process. A
    failure raises, which grade_job turns into a grader error (regraded on the next run)
    rather than a student's lost points.
    """
    names = source.metadata.get("dlcourse", {}).get("prefetch", [])
    if names:
        from dlcourse import datasets

        # the data is public and the sandboxed kernels (maybe uid 65534) must read it: fetched
        # with ordinary modes even where the grader runs with a private umask (autograder watch)
        umask = os.umask(0o022)
        try:
            for name in names:
                try:
                    datasets.fetch(name, progress=False)
                except datasets.DataUnavailableError as exc:
                    raise RuntimeError(f"the grader needs data set {name!r} and cannot get it ({exc}); grading with "
                                       "a fallback data set would change what the convergence tests measure, so "
                                       "make the data available (mirror, cache or network) and grade again") from None
        finally:
            os.umask(umask)


def trusted_process(threads: int) -> None:
    """Prepare this worker process to run hidden tests: the whole library, a thread budget."""
    from dlcourse.answers import TRUSTED_ENV

    os.environ[TRUSTED_ENV] = "1"  # dlcourse.setup(..., assignment=...) withholds nothing here
    os.environ["DLCOURSE_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def grade_notebook(source: nbformat.NotebookNode, submitted: nbformat.NotebookNode,
                   release: nbformat.NotebookNode | None, *, assignment: str, parameters: dict, limits,
                   level: str, hide: list[Path], threads: int, scratch: Path, secret_seed: int = 0,
                   prestart: bool = False):
    """Restore, parameterize and execute one submission; returns (Execution, restore diagnostics).

    The kernel's work directory and the withheld library live in this process's private
    folder under `scratch` (`sandbox.private_scratch`), never at a name someone could guess."""
    from autograder.execute import execute, student_names  # heavy imports stay out of the CLI start-up
    from autograder.sandbox import private_workdir, withheld_library
    from dlcourse.answers import withheld
    import papermill.parameterize as pmp

    trusted_process(threads)
    restored = restore(source, submitted, release)
    for cell in restored.notebook.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags
    restored.notebook.metadata.setdefault("papermill", {})
    nb = pmp.parameterize_notebook(restored.notebook, parameters, report_mode=False,
                                   kernel_name="python3", language="python")
    # papermill inserted one cell: shift graded indices after it
    inserted = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    if inserted:
        for g in restored.graded:
            if g.index >= inserted[0]:
                g.index += 1
    library = withheld_library(assignment, scratch)
    ex = execute(nb, restored.graded, private_workdir(scratch), limits=limits, level=level, hide=hide, threads=threads,
                 students=student_names(source), library=library, withheld=withheld(assignment),
                 secret_seed=secret_seed, prestart=prestart)
    return ex, [d.as_dict() for d in restored.diagnostics]


def grade_here(source: nbformat.NotebookNode, submitted: nbformat.NotebookNode,
               release: nbformat.NotebookNode | None, assignment: str, cell_timeout: float = 120.0,
               parameters: dict | None = None, isolation_level: str = "auto", secret_seed: int = 20261206):
    """Grade one notebook in this process with the real sandbox and default limits.

    For the release proofs, the mutation tests and the convergence calibration: exactly the
    path `autograder grade` takes, without a gradebook. `secret_seed` stands for the per-student
    secret (fixed by default, so that a test's grading can be replayed exactly; a sweep over
    seeds passes its own). Returns the Execution (tests, diagnostics, flags)."""
    import tempfile

    from autograder.sandbox import isolation as probe

    prefetch_data(source)
    limits = Limits(cell_timeout=cell_timeout, notebook_timeout=max(600.0, 4 * cell_timeout))
    with tempfile.TemporaryDirectory(prefix="autograder-here-") as scratch:
        ex, diags = grade_notebook(source, submitted, release, assignment=assignment,
                                   parameters=parameters or {"PROFILE": "fast", "DEVICE": "cpu", "SEED": 0},
                                   limits=limits, level=probe(isolation_level), hide=[REPO_ROOT / "solutions"],
                                   threads=1, scratch=Path(scratch), secret_seed=secret_seed)
    ex.diagnostics = diags + ex.diagnostics
    return ex


def _grade_job(job: dict) -> dict:
    t0 = time.monotonic()
    # the secret seed this student's hidden tests drew from: recorded, so that the grading can be
    # replayed exactly (`autograder grade --replay STUDENT`)
    result = {"student": job["student"], "hash": job["hash"], "submission": job.get("submission", ""),
              "tests": [], "diagnostics": [], "flags": [],
              "isolation": job["level"], "secret_seed": job.get("secret_seed", 0)}
    if job.get("found_as") and job["found_as"] != job["student"]:
        result["diagnostics"].append({"cell": "-", "severity": "warning",
                                      "message": f"submitted as {job['found_as']!r}; graded as student {job['student']!r}"})
    source = nbformat.reads(job["source"], as_version=4)
    release = nbformat.reads(job["release"], as_version=4) if job.get("release") else None
    graded_cells = checks.graded_tests(source)
    try:
        submitted = read_submission(Path(job["path"]))
    except SubmissionError as exc:
        result["diagnostics"].append({"cell": "-", "message": str(exc), "severity": "error"})
        result["tests"] = [{"grade_id": g, "points": p, "score": 0.0, "status": "not run",
                            "message": "not run: the notebook could not be read"} for g, p in graded_cells]
        result["manual"] = [{"grade_id": g, "points": p, "answered": False, "digest": ""}
                            for g, p, _ in manual.manual_cells(source)]
        result["seconds"] = time.monotonic() - t0
        return result
    prefetch_data(source)
    ex, restore_diags = grade_notebook(source, submitted, release, assignment=job["assignment"],
                                       parameters=job["parameters"], limits=Limits(**job["limits"]), level=job["level"],
                                       hide=[Path(p) for p in job["hide"]], threads=job["threads"],
                                       scratch=Path(job["scratch"]),
                                       secret_seed=job.get("secret_seed", 0), prestart=job.get("prestart", False))
    result["diagnostics"] += restore_diags + ex.diagnostics
    result["tests"] = [t.as_dict() for t in ex.tests]
    result["flags"] += ex.flags
    if ex.grader_error:
        result["grader_error"] = True
    result["notebook"] = nbformat.writes(ex.notebook)
    # the written answers a human grades: answered or not, and a digest to notice a changed one
    result["manual"] = manual.answers(source, ex.notebook, release)
    result["seconds"] = time.monotonic() - t0
    result["requests"] = ex.requests
    return result


# ---------------------------------------------------------------- the instructor side
def grading_secret(output: Path) -> str:
    """The grading folder's secret (created once, readable by the instructor only): seeds the
    data that tests hand to student code, so that no student can anticipate it, while a
    regrade of the same submission sees the same data."""
    import secrets

    path = output / "secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(16))
    return path.read_text().strip()


def secret_seed(secret: str, student: str, assignment: str) -> int:
    return int(hashlib.sha256(f"{secret}/{assignment}/{student}".encode()).hexdigest()[:8], 16)


def build_jobs(args, root: Path, output: Path) -> tuple[list[dict], dict, str]:
    source_path, release_path = find_assignment(root, args.assignment)
    subs = find_submissions(Path(args.submissions), args.assignment, source_path.name)
    source_text = source_path.read_text()
    release_text = release_path.read_text() if release_path else None
    params = {"PROFILE": args.profile, "DEVICE": args.device, "SEED": args.seed}
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.timeout, memory_mb=args.memory,
                    disk_mb=args.disk)
    level = isolation(args.isolation)
    threads = max(1, args.threads or (os.cpu_count() or 1) // max(1, args.workers))
    hide = [str(output.resolve()), str(Path(args.submissions).resolve()), str(root.resolve())]
    secret = grading_secret(output)
    replay = _replay_seeds(output, args) if getattr(args, "replay", None) else None
    jobs = []
    for student, (path, found_as) in subs.items():
        if replay is not None and student not in replay:
            continue
        try:
            content = read_regular_file(path)
        except SubmissionError as exc:
            content = f"unreadable: {exc}".encode()  # the worker reports it; the hash still changes with it
        h = digest(content, source_text.encode(), json.dumps(params, sort_keys=True).encode())
        jobs.append({"student": student, "found_as": found_as, "path": str(path.absolute()), "hash": h,
                     "submission": hashlib.sha256(content).hexdigest(),
                     "assignment": args.assignment, "source": source_text, "release": release_text,
                     "parameters": params, "limits": limits.as_dict(), "level": level, "hide": hide,
                     "threads": threads, "scratch": args.scratch or "/tmp",
                     "secret_seed": replay[student] if replay is not None else secret_seed(secret, student, args.assignment)})
    if replay is not None and len(jobs) != len(replay):
        missing = sorted(set(replay) - {j["student"] for j in jobs})
        raise SystemExit(f"autograder grade --replay: no submission of {', '.join(missing)} in {args.submissions}")
    return jobs, {"source": source_path, "notebook": source_path.stem}, level


def _replay_seeds(output: Path, args) -> dict[str, int]:
    """{student: the secret seed their last grading used}, from the journal, for --replay."""
    journal = output / "journal.jsonl"
    done = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("secret_seed"), int):
                done[entry.get("student")] = entry["secret_seed"]
    unknown = [s for s in args.replay if s not in done]
    if unknown:
        raise SystemExit(f"autograder grade --replay: the journal in {output} records no grading of {', '.join(unknown)}")
    return {s: done[s] for s in args.replay}


def run(args) -> int:
    from autograder.gradebook import GradeWriter

    root = Path(args.root).resolve()
    output = Path(args.output).resolve()
    if not args.scheduler:
        # the workers are on this machine: without the data the assignment declares, refuse the
        # whole batch here, before anything is graded or written (on a cluster each worker checks)
        try:
            prefetch_data(nbformat.read(find_assignment(root, args.assignment)[0], as_version=4))
        except RuntimeError as exc:
            raise SystemExit(f"autograder grade: {exc}. Nobody was graded.") from None
    output.mkdir(parents=True, exist_ok=True)
    (output / "autograded").mkdir(exist_ok=True)
    from autograder.sandbox import sweep_stale

    from autograder.sandbox import check_scratch

    try:
        check_scratch(Path(args.scratch or "/tmp"))
    except ValueError as exc:
        raise SystemExit(f"autograder grade: {exc}. Nobody was graded.") from None
    for stale in sweep_stale(Path(args.scratch or "/tmp")):  # what a killed grader left behind
        print(f"autograder: removed {stale}, left by a grader that no longer runs", file=sys.stderr)
    from autograder import deadlines as dl

    try:  # the course file: refused, naming its key, before anything is graded
        due = dl.load(Path(args.deadlines) if getattr(args, "deadlines", None) else root / "deadlines.yml")
    except dl.DeadlineError as exc:
        raise SystemExit(f"autograder grade: {exc}. Nobody was graded.") from None
    jobs, info, level = build_jobs(args, root, output)
    # each submission's lateness, judged on the exchange service's time (timestamp.txt)
    late = {j["student"]: due.judge(args.assignment, j["student"], dl.submission_time(Path(j["path"])))
            for j in jobs} if due else {}
    formgrader = getattr(args, "formgrader", False)
    # with --formgrader the grades go where nbgrader's formgrader reads them: the course's gradebook
    db_url = args.db or f"sqlite:///{(root if formgrader else output) / 'gradebook.db'}"
    writer = GradeWriter(db_url, output / "journal.jsonl")
    source = nbformat.read(info["source"], as_version=4)
    writer.register_assignment(args.assignment, info["notebook"], checks.graded_tests(source), manual.manual_cells(source),
                               [checks.nbgrader_meta(c)["grade_id"] for c in source.cells if checks.nbgrader_meta(c).get("solution")])
    done = writer.done()
    def current(j):  # graded before, unchanged, and not a grader failure
        entry = done.get(j["student"], {})
        return entry.get("hash") == j["hash"] and not entry.get("grader_error")
    todo = [j for j in jobs if args.force or getattr(args, "replay", None) or not current(j)]
    for j in todo:  # a worker with more notebooks to come starts the next one's kernel ahead
        j["prestart"] = len(todo) > max(1, args.workers)
    skipped = len(jobs) - len(todo)
    print(f"autograder: {len(jobs)} submissions of {args.assignment}, {skipped} unchanged and already graded, "
          f"{len(todo)} to grade; isolation: {level}"
          + (f"; process cap: {process_cap()}" if level.startswith("bwrap") else "")
          + f"; disk quota: {disk_quota()}"
          + ("  (WARNING: no filesystem or network isolation)" if level == "rlimits-only" else ""), file=sys.stderr)
    # what the report shows as the batch's settings, and where feedback finds the questions' titles
    settings = {k: getattr(args, k) for k in ("workers", "threads", "profile", "device", "cell_timeout", "timeout",
                                               "memory", "disk") if hasattr(args, k)}
    (output / "meta.json").write_text(json.dumps({"assignment": args.assignment, "notebook": info["notebook"],
                                                  "db_url": db_url, "isolation": level, "root": str(root),
                                                  "formgrader": formgrader,
                                                  "settings": settings, "tests": test_digests(Path(info["source"]).read_text())}, indent=1))
    def with_penalty(res: dict) -> dict:
        """`res` with this submission's lateness and the policy's penalty (journal and gradebook)."""
        judged = dict(late.get(res["student"], {}))
        if judged:
            # on the autograded score for now; feedback, report and export take it again on the
            # whole score once a human has graded the written answers (results.with_human_scores)
            score = sum(t["score"] for t in res["tests"])
            points = sum(t["points"] for t in res["tests"]) + sum(m["points"] for m in res.get("manual", []))
            judged["penalty"] = round(due.policy.penalty(judged["late_seconds"], score, points), 6)
            judged["policy"] = due.policy.describe()
            judged["policy_spec"] = dataclasses.asdict(due.policy)
        res = dict(res)
        res.pop("late", None)
        return {**res, "late": judged} if judged else res

    # a changed due date or extension re-judges a submission already graded, without grading it again
    for j in jobs:
        entry = done.get(j["student"])
        if j not in todo and entry is not None and with_penalty(entry).get("late") != entry.get("late"):
            writer.write(args.assignment, info["notebook"], with_penalty(entry))
    results = []
    for res in _dispatch(todo, args):
        res = with_penalty(res)
        nb_text = res.pop("notebook", None)
        if nb_text:
            d = output / "autograded" / res["student"]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{info['notebook']}.ipynb").write_text(nb_text)
            if formgrader:
                put_for_formgrader(root, args.assignment, res["student"], info["notebook"], nb_text)
        writer.write(args.assignment, info["notebook"], res)
        results.append(res)
    final = writer.done()
    writer.close()
    _summary(final, [j["student"] for j in jobs])
    print(f"autograder: results in {output} (gradebook {db_url})", file=sys.stderr)
    return 0


def put_for_formgrader(root: Path, assignment: str, student: str, notebook: str, nb_text: str) -> None:
    """The student's graded notebook, made safe to show (`manual.review_copy`), at nbgrader's
    ROOT/autograded/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb, where the formgrader's manual grading
    page reads it. Written without following a link on any component."""
    from autograder import safefs

    review = manual.review_copy(nbformat.reads(nb_text, as_version=4))
    fd = safefs.make_dirs(root, "autograded", student, assignment, mode=0o700)
    try:
        safefs.write_file(fd, f"{notebook}.ipynb", nbformat.writes(review), mode=0o600)
    finally:
        os.close(fd)


def _dispatch(jobs: list[dict], args):
    """Yield results as they finish, with a progress bar and ETA."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="nb", desc="grading", file=sys.stderr, disable=args.quiet)
    try:
        if args.scheduler:
            from distributed import Client, as_completed as dask_completed
            with Client(args.scheduler, timeout=30) as client:
                futures = [client.submit(grade_job, j, pure=False, key=f"grade-{j['student']}-{j['hash'][:8]}") for j in jobs]
                for fut in dask_completed(futures):
                    bar.update(1)
                    yield fut.result()
        elif args.workers <= 1:
            for j in jobs:
                res = grade_job(j)
                bar.update(1)
                yield res
        else:
            # imported once here, before the pool forks, so the workers share these modules
            # instead of each importing them again (about a second of CPU per worker)
            import autograder.execute  # noqa: F401
            import papermill.parameterize  # noqa: F401
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                futures = [pool.submit(grade_job, j) for j in jobs]
                for fut in as_completed(futures):
                    bar.update(1)
                    yield fut.result()
    finally:
        bar.close()


def _summary(entries: dict[str, dict], students: list[str]) -> None:
    from autograder.text import one_line

    print(f"{'student':<24} {'score':>9}  {'status':<10} notes")
    for s in students:
        e = entries.get(s)
        if e is None:
            print(f"{s:<24} {'-':>9}  missing")
            continue
        got = sum(t["score"] for t in e["tests"])
        total = sum(t["points"] for t in e["tests"])
        errors = [d["message"] for d in e["diagnostics"] if d["severity"] == "error"]
        if e.get("grader_error"):  # the grader failed, not the student: a human looks, the next run regrades
            status, note = "GRADER ERR", errors[-1] if errors else "grader error"
        else:
            status = "FLAGGED" if e["flags"] else ("errors" if errors else "ok")
            note = (e["flags"] or [d["message"] for d in e["diagnostics"]] or [""])[0]
        # the note is partly the kernel's text: one line, no control characters (a carriage
        # return or an escape code must not be able to redraw this row)
        print(f"{one_line(s, 64):<24} {got:>4g}/{total:<4g}  {status:<10} {one_line(note, 90)}")
    written = max((sum(m["points"] for m in e.get("manual") or []) for e in entries.values()), default=0)
    if written:
        print(f"(the scores are the autograded points; {written:g} more are for written answers, graded by hand in "
              f"nbgrader's formgrader: grade with --formgrader, then feedback, report and export include them)")


def register(subparsers) -> None:
    p = subparsers.add_parser("grade", help="grade a folder of submissions", description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", help="assignment name, e.g. a01-convolution (source in ROOT/solutions/NAME/)")
    p.add_argument("submissions", help="submitted/{student}/{assignment}/*.ipynb layout or a flat folder of {student}.ipynb")
    add_common(p)
    p.add_argument("--workers", type=int, default=1, help="parallel local workers (default 1)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per notebook (default: cores / workers)")
    p.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:port) to run the jobs on")
    p.add_argument("--root", default=".", help="course root holding solutions/ and assignments/ (default .)")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default sqlite in the output folder)")
    p.add_argument("--force", action="store_true", help="regrade submissions that are unchanged and already graded")
    p.add_argument("--formgrader", action="store_true",
                   help="for manually graded answers: grade into the course's gradebook (ROOT/gradebook.db unless --db) "
                        "and put each graded notebook where nbgrader's formgrader shows it (ROOT/autograded/)")
    p.add_argument("--deadlines", help="course file of due dates, extensions and the late policy "
                                       "(default ROOT/deadlines.yml when it exists; see autograder.deadlines)")
    p.add_argument("--replay", nargs="+", metavar="STUDENT",
                   help="grade these students again exactly as before: the secret seeds their last grading used, "
                        "from the journal (even if the grading folder's secret has changed)")
    p.add_argument("--profile", default="fast", choices=["fast", "full"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell (default 60)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    p.add_argument("--memory", type=int, default=4096, help="MiB of memory per kernel, its RAM-backed disk quota included (default 4096)")
    p.add_argument("--disk", type=int, default=512, help="MiB a kernel may write to its work directory and /tmp (default 512)")
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap+nobody", "bwrap", "none"])
    p.add_argument("--scratch", help="where per-submission work directories go (default /tmp)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default=DEFAULT_OUTPUT, help=f"grading folder: gradebook, journal, autograded copies (default {DEFAULT_OUTPUT}/)")
