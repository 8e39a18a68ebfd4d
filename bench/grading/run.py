"""Benchmark: grading a class of a01 submissions: stock `nbgrader autograde`, the previous
design of our grader (hidden tests inside the student's kernel, guarded by integrity probes)
and the current one (hidden tests in the grader's process, student code behind a plain-data
channel), in one run on one machine.

The same N students (default 40; every fifth answers only part) for every system:
- stock:      a throw-away nbgrader course on the previous design's a01 source (its hidden
              tests are ordinary in-kernel asserts, which stock nbgrader can run):
              `nbgrader generate_assignment` (not timed), then `nbgrader autograde` (timed);
- ours, old:  the grader and a01 of commit OLD_DESIGN, extracted with `git archive` into a
              temporary folder (its library mount pointed at this checkout's dlcourse, which
              its kernels import), `grade --force` with 1 and 2 workers;
- ours, new:  this checkout's grader and a01, `grade --force` with 1 and 2 workers;
- papermill:  the previous design's notebooks, restored as that grader restored them, run
              one after the other with plain `papermill.execute_notebook` (no sandbox, no
              tests outside the kernel, no gradebook): the cost of just running them.
Every notebook gets one CPU thread (DLCOURSE_THREADS=1, `--threads 1`). The submissions are
the released notebook with the solution code filled in (the student code is the same in
both versions of a01).

Prints submissions per minute, speedup over stock, the overhead per notebook of each design
over plain papermill and of the new design over the old, whether every system gives every
student the same score, and PASS/MISS for the targets: 2 workers >= 1.8x stock throughput;
new design's overhead over papermill < 1.0 s per notebook. (The speedup target assumes at
least 2 free cores.)

Usage: python bench/grading/run.py [--n 40] [--quick] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["DLCOURSE_THREADS"] = "1"

import nbformat  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from autograder.demo import fill_release, load_assignment, solution_answers  # noqa: E402
from autograder.restore import read_submission, restore  # noqa: E402

ASSIGNMENT = "a01-convolution"
PARAMS = {"PROFILE": "fast", "DEVICE": "cpu", "SEED": 0}
BIN = Path(sys.executable).parent
# the last commit whose grader ran the hidden tests inside the student's kernel
OLD_DESIGN = "c7dde01"


def extract_old_design(tmp: Path) -> Path | None:
    """The previous design's grader and a01 in tmp/old (None when git or the commit is missing)."""
    old = tmp / "old"
    old.mkdir()
    paths = ["autograder", f"solutions/{ASSIGNMENT}", f"assignments/{ASSIGNMENT}", "nbgrader_config.py"]
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_DESIGN, *paths], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    # its sandbox mounted <its repository>/dlcourse; the kernels import this checkout's library
    sandbox = old / "autograder" / "sandbox.py"
    sandbox.write_text(sandbox.read_text().replace('REPO / "dlcourse"', 'Path(__import__("dlcourse").__file__).resolve().parent'))
    return old


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DLCOURSE_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONHASHSEED="0", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    return env


def make_submissions(folder: Path, n: int, root: Path = REPO) -> tuple[list[str], str]:
    """N students in nbgrader's submitted/{student}/{assignment}/ layout; every fifth partial."""
    source, release, name = load_assignment(root, ASSIGNMENT)
    answers = solution_answers(source)
    ids = list(answers)
    students = [f"student{i:02d}" for i in range(1, n + 1)]
    for i, student in enumerate(students):
        keep = set(ids) if i % 5 != 4 else set(ids[: 1 + (i // 5) % (len(ids) - 1)])
        d = folder / student / ASSIGNMENT
        d.mkdir(parents=True)
        nbformat.write(fill_release(release, answers, keep), d / name)
    return students, name


def timed(cmd: list[str], cwd: Path, label: str, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**child_env(), **(env or {})}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench/grading: {label} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds


def run_stock(tmp: Path, subs: Path, students: list[str], name: str, root: Path) -> tuple[float, dict[str, float]]:
    course = tmp / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(root / "solutions" / ASSIGNMENT / name, course / "source" / ASSIGNMENT / name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course / 'gradebook.db'}'\n"
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
        "c.ExecutePreprocessor.timeout = 60\n")
    shutil.copytree(subs, course / "submitted")
    nbgrader = [str(BIN / "nbgrader")]
    timed(nbgrader + ["generate_assignment", ASSIGNMENT, "--force"], course, "nbgrader generate_assignment")
    seconds = timed(nbgrader + ["autograde", ASSIGNMENT, "--force"], course, "nbgrader autograde")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(ASSIGNMENT, s).score for s in students}
    return seconds, scores


def run_ours(tmp: Path, subs: Path, workers: int, root: Path = REPO, tag: str = "new") -> tuple[float, dict[str, float], str]:
    out = tmp / f"ours-{tag}-w{workers}"
    cmd = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(subs), "--root", str(root),
           "--output", str(out), "--workers", str(workers), "--threads", "1", "--force", "--quiet"]
    # the old design runs from its own folder: its `autograder` package comes first on the path
    env = {"PYTHONPATH": str(root)} if root != REPO else None
    seconds = timed(cmd, root if root != REPO else tmp, f"autograder grade ({tag}) --workers {workers}", env)
    scores, level = {}, json.loads((out / "meta.json").read_text())["isolation"]
    for line in (out / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        scores[e["student"]] = sum(t["score"] for t in e["tests"])
    return seconds, scores, level


def run_papermill(tmp: Path, subs: Path, students: list[str], name: str, root: Path) -> float:
    """Sequential plain papermill on the restored notebooks; seconds of execution only."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, release, _ = load_assignment(root, ASSIGNMENT)
    work = tmp / "papermill"
    work.mkdir()
    total = 0.0
    for student in students:
        restored = restore(source, read_submission(subs / student / ASSIGNMENT / name), release).notebook
        for cell in restored.cells:
            cell.metadata.setdefault("tags", [])
        nb_in, nb_out = work / f"{student}-in.ipynb", work / f"{student}-out.ipynb"
        nbformat.write(restored, nb_in)
        saved = os.dup(2)  # the kernels' start-up chatter goes to /dev/null, not the table
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        t0 = time.perf_counter()
        try:  # allow_errors: a partial submission runs to its end, as it does when graded
            papermill.execute_notebook(str(nb_in), str(nb_out), parameters=PARAMS, kernel_name="python3",
                                       progress_bar=False, cwd=str(work), allow_errors=True)
        except PapermillExecutionError:
            pass
        finally:
            total += time.perf_counter() - t0
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="submissions (default 40)")
    ap.add_argument("--quick", action="store_true", help="6 submissions, to try the benchmark out")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print where it is")
    args = ap.parse_args(argv)
    n = 6 if args.quick else args.n
    os.environ.update(child_env())
    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        old = extract_old_design(tmp)
        if old is None:
            sys.exit(f"bench/grading: commit {OLD_DESIGN} is not in this clone (git fetch --unshallow)")
        subs_new = tmp / "submitted-new"
        subs_old = tmp / "submitted-old"
        students, name = make_submissions(subs_new, n)
        make_submissions(subs_old, n, root=old)
        print(f"{n} submissions of {ASSIGNMENT} ({n - n // 5} correct, {n // 5} partial); "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; DLCOURSE_THREADS=1 and one "
              f"thread per notebook for every system", flush=True)
        rows, scores = [], {}
        stock_s, scores["stock"] = run_stock(tmp, subs_old, students, name, old)
        rows.append(("stock nbgrader autograde", 1, stock_s))
        print(f"  stock nbgrader: {stock_s:.1f} s", flush=True)
        ours = {}
        for tag, root, subs in (("old", old, subs_old), ("new", REPO, subs_new)):
            for w in (1, 2):
                ours[tag, w] = run_ours(tmp, subs, w, root, tag)
                scores[f"ours {tag} w{w}"] = ours[tag, w][1]
                label = "ours, old design (tests in kernel)" if tag == "old" else "ours, new design (tests outside)"
                rows.append((label, w, ours[tag, w][0]))
                print(f"  {label}, {w} worker(s): {ours[tag, w][0]:.1f} s (isolation {ours[tag, w][2]})", flush=True)
        pm = run_papermill(tmp, subs_old, students, name, old)
        rows.append(("plain papermill (baseline)", 1, pm))
        print(f"  plain papermill: {pm:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'system':<38}{'workers':>8}{'wall s':>9}{'subs/min':>10}{'speedup vs stock':>18}")
    for system, w, s_ in rows:
        print(f"{system:<38}{w:>8}{s_:>9.1f}{60 * n / s_:>10.1f}{stock_s / s_:>17.2f}x")
    over_old = (ours["old", 1][0] - pm) / n
    over_new = (ours["new", 1][0] - pm) / n
    new_vs_old = (ours["new", 1][0] - ours["old", 1][0]) / n
    speedup = stock_s / ours["new", 2][0]
    agree = all(abs(scores["stock"][s] - other.get(s, -1)) < 1e-9 for s in students for other in scores.values())
    print(f"\noverhead per notebook over plain papermill: old design {over_old:+.2f} s, new design {over_new:+.2f} s")
    print(f"new design against the old, per notebook (1 worker): {new_vs_old:+.2f} s; sandbox: {ours['new', 1][2]}")
    print(f"scores: every system {'agrees' if agree else 'DISAGREES'} for all {n} submissions "
          f"(mean {sum(scores['stock'].values()) / n:.2f} points)")
    print(f"target 2 workers >= 1.8x stock throughput:      {'PASS' if speedup >= 1.8 else 'MISS'} ({speedup:.2f}x)")
    print(f"target new design's overhead < 1.0 s/notebook: {'PASS' if over_new < 1.0 else 'MISS'} ({over_new:+.2f} s)")
    if not agree:
        for s in students:
            print(f"  {s}: " + ", ".join(f"{k} {v.get(s)}" for k, v in scores.items()))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
