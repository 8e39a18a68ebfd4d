"""Benchmark: correct submissions graded on a quiet machine and with both cores kept busy.

Round 2 of the grader found correct a04-a07 work losing its convergence points when other
gradings kept the two cores busy: the limits then counted the wall clock. They now count the
kernel's CPU seconds (waiting for a core is not waiting), so a correct submission should keep
full marks however busy the machine is; only the wall time should grow.

For each assignment, the released notebook filled with the solution's answers is graded with
the real command line (`autograder grade`, one worker, one thread, the sandbox, default limits:
60 s of CPU per cell, 600 s per notebook), first on a quiet machine, then beside four processes
that spin, each in a session of its own as other gradings' kernels are (a load average of about
5-6 on two cores, where round 2 saw 4-7). Both runs share one grading secret, so the grader draws
the same task for both. The table gives each run's score and wall time; lost points are listed
with the grader's message. The machine should be otherwise quiet for the first column to mean
anything.

Measured 2026-12-07 on 2 cores (correct submissions, full marks in every run; quiet / with four
spinners): a04 70.9 / 173.8 s, a05 43.9 / 125.2 s, a06 57.9 / 181.0 s, a07 32.0 / 90.9 s.

Usage: python bench/grading/load.py [--only a04-alexnet a08-resnet] [--busy 4] [--keep]
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

import nbformat

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from autograder.demo import fill_release, load_assignment, solution_answers  # noqa: E402

# the four whose correct submissions round 2 saw lose points on a busy machine (about 13 minutes);
# --only takes any assignment under solutions/
ASSIGNMENTS = ["a04-alexnet", "a05-vgg", "a06-googlenet", "a07-batchnorm"]
SECRET = "5ec2e7" * 5 + "00"  # 32 hex digits, as `autograder grade` writes its own


def grade(assignment: str, subs: Path, out: Path, busy: int) -> dict:
    """One `autograder grade` of the one submission in `subs`, beside `busy` spinning processes."""
    out.mkdir(parents=True)
    fd = os.open(out / "secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, SECRET.encode())
    os.close(fd)
    # each in a session of its own, as other gradings' kernels are: with the scheduler's autogroups
    # (Linux's default), spinners sharing one session would together get no more than one kernel does
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(busy)]
    try:
        time.sleep(1 if busy else 0)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(subs), "--output", str(out),
                               "--workers", "1", "--threads", "1", "--quiet"], cwd=REPO, capture_output=True,
                              text=True, timeout=1800, env={**os.environ, "DLCOURSE_THREADS": "1"})
        wall = time.monotonic() - t0
        load = os.getloadavg()[0]  # the one-minute average as the grading ends
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{assignment}: autograder grade failed:\n{proc.stderr[-3000:]}")
    entry = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines() if line.strip()][-1]
    tests = entry["tests"]
    return {"score": sum(t["score"] for t in tests), "points": sum(t["points"] for t in tests), "wall": wall,
            "load": load,
            "lost": [f"{t['grade_id']}: {t['message'][:160]}" for t in tests if t["score"] < t["points"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=ASSIGNMENTS)
    ap.add_argument("--busy", type=int, default=4,
                    help="spinning processes in the loaded run (default 4: a load of about 5-6 on two cores, as round 2 saw)")
    ap.add_argument("--keep", action="store_true", help="keep the grading folders and print where")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    rows = []
    try:
        for assignment in args.only:
            source, release, _ = load_assignment(REPO, assignment)
            answers = solution_answers(source)
            subs = work / assignment / "subs"
            subs.mkdir(parents=True)
            nbformat.write(fill_release(release, answers, keep=set(answers)), subs / "correct.ipynb")
            quiet = grade(assignment, subs, work / assignment / "quiet", 0)
            loaded = grade(assignment, subs, work / assignment / "loaded", args.busy)
            rows.append((assignment, quiet, loaded))
            print(f"{assignment}: quiet {quiet['score']:g}/{quiet['points']:g} in {quiet['wall']:.0f} s, "
                  f"busy {loaded['score']:g}/{loaded['points']:g} in {loaded['wall']:.0f} s", flush=True)
    finally:
        if args.keep:
            print(f"grading folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nCorrect submissions graded quietly and beside {args.busy} spinning processes "
          f"({os.cpu_count()} cores, one worker, one thread, default limits)\n")
    print("| assignment | points | quiet: score | quiet: wall | busy: score | busy: wall | wall ratio | load average at the busy run's end |")
    print("|---|---|---|---|---|---|---|---|")
    for assignment, q, b in rows:
        print(f"| {assignment} | {q['points']:g} | {q['score']:g} | {q['wall']:.1f} s | {b['score']:g} | {b['wall']:.1f} s "
              f"| {b['wall'] / q['wall']:.2f}x | {b['load']:.1f} |")
    lost = [(a, kind, line) for a, q, b in rows for kind, r in (("quiet", q), ("busy", b)) for line in r["lost"]]
    for a, kind, line in lost:
        print(f"- {a} ({kind}) lost points: {line}")
    same = all(q["score"] == b["score"] == q["points"] for _, q, b in rows)
    print(f"\nevery correct submission kept full marks in both runs: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
