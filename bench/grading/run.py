"""Benchmark: grading a class of a01 submissions, stock `nbgrader autograde` against ours.

One run, one machine, the same N submissions (default 40) for every system:
- stock:    a throw-away nbgrader course (source/ from solutions/, submitted/{student}/),
            `nbgrader generate_assignment` (not timed) then `nbgrader autograde` (timed);
- ours:     `python -m autograder grade --force` with 1 and with 2 workers, each into a
            fresh output folder (sandboxed kernels, integrity probes, gradebook, journal);
- papermill: the same notebooks restored as ours restores them, executed one after the
            other with plain `papermill.execute_notebook`, one kernel each (no sandbox,
            no probes, no gradebook): the baseline cost of just running the notebooks.
Every notebook gets one CPU thread (DLCOURSE_THREADS=1, `--threads 1`), so systems differ
only in their machinery. The submissions are derived like `autograder demo`'s: the
released notebook with the solution code filled in, every fifth one only partly.

Prints submissions per minute, speedup over stock, our overhead per notebook over plain
papermill ((ours with 1 worker - papermill) / N), whether stock and ours give the same
scores, and PASS/MISS for the targets: 2 workers >= 1.8x stock throughput, overhead
< 0.5 s per notebook. (The speedup target assumes at least 2 free cores.)

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


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DLCOURSE_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONHASHSEED="0", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    return env


def make_submissions(folder: Path, n: int) -> tuple[list[str], str]:
    """N students in nbgrader's submitted/{student}/{assignment}/ layout; every fifth partial."""
    source, release, name = load_assignment(REPO, ASSIGNMENT)
    answers = solution_answers(source)
    ids = list(answers)
    students = [f"student{i:02d}" for i in range(1, n + 1)]
    for i, student in enumerate(students):
        keep = set(ids) if i % 5 != 4 else set(ids[: 1 + (i // 5) % (len(ids) - 1)])
        d = folder / student / ASSIGNMENT
        d.mkdir(parents=True)
        nbformat.write(fill_release(release, answers, keep), d / name)
    return students, name


def timed(cmd: list[str], cwd: Path, label: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench/grading: {label} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds


def run_stock(tmp: Path, subs: Path, students: list[str], name: str) -> tuple[float, dict[str, float]]:
    course = tmp / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "solutions" / ASSIGNMENT / name, course / "source" / ASSIGNMENT / name)
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


def run_ours(tmp: Path, subs: Path, workers: int) -> tuple[float, dict[str, float], str]:
    out = tmp / f"ours-w{workers}"
    cmd = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(subs), "--root", str(REPO),
           "--output", str(out), "--workers", str(workers), "--threads", "1", "--force", "--quiet"]
    seconds = timed(cmd, tmp, f"autograder grade --workers {workers}")
    scores, level = {}, json.loads((out / "meta.json").read_text())["isolation"]
    for line in (out / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        scores[e["student"]] = sum(t["score"] for t in e["tests"])
    return seconds, scores, level


def run_papermill(tmp: Path, subs: Path, students: list[str], name: str) -> float:
    """Sequential plain papermill on the restored notebooks; seconds of execution only."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, release, _ = load_assignment(REPO, ASSIGNMENT)
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
        subs = tmp / "submitted"
        students, name = make_submissions(subs, n)
        print(f"{n} submissions of {ASSIGNMENT} ({n - n // 5} correct, {n // 5} partial); "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; DLCOURSE_THREADS=1 and one "
              f"thread per notebook for every system", flush=True)
        rows = []
        stock_s, stock_scores = run_stock(tmp, subs, students, name)
        rows.append(("stock nbgrader autograde", 1, stock_s))
        print(f"  stock nbgrader: {stock_s:.1f} s", flush=True)
        ours = {}
        for w in (1, 2):
            ours[w] = run_ours(tmp, subs, w)
            rows.append(("ours (autograder grade)", w, ours[w][0]))
            print(f"  ours, {w} worker(s): {ours[w][0]:.1f} s (isolation {ours[w][2]})", flush=True)
        pm = run_papermill(tmp, subs, students, name)
        rows.append(("plain papermill (baseline)", 1, pm))
        print(f"  plain papermill: {pm:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'system':<28}{'workers':>8}{'wall s':>9}{'subs/min':>10}{'speedup vs stock':>18}")
    for system, w, s in rows:
        print(f"{system:<28}{w:>8}{s:>9.1f}{60 * n / s:>10.1f}{stock_s / s:>17.2f}x")
    overhead = (ours[1][0] - pm) / n
    speedup = stock_s / ours[2][0]
    agree = all(abs(stock_scores[s] - ours[w][1].get(s, -1)) < 1e-9 for s in students for w in (1, 2))
    print(f"\nour overhead per notebook over plain papermill: {overhead:+.2f} s "
          f"(({ours[1][0]:.1f} - {pm:.1f}) / {n}); sandbox: {ours[1][2]}")
    print(f"scores: stock and ours {'agree' if agree else 'DISAGREE'} for all {n} submissions "
          f"(mean {sum(stock_scores.values()) / n:.2f} points)")
    print(f"target 2 workers >= 1.8x stock throughput: {'PASS' if speedup >= 1.8 else 'MISS'} ({speedup:.2f}x)")
    print(f"target overhead < 0.5 s per notebook:      {'PASS' if overhead < 0.5 else 'MISS'} ({overhead:+.2f} s)")
    if not agree:
        for s in students:
            print(f"  {s}: stock {stock_scores[s]}, ours {ours[1][1].get(s)} / {ours[2][1].get(s)}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
