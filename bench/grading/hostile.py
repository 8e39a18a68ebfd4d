"""Benchmark: the hostile batches of tests/hostile/scenarios.py, each graded in one `autograder grade`
run (two workers), with the grader's peak memory and each batch's time.

Every scenario (infinite loops, memory and disk hogs, fork bombs, forged replies, output
floods, links planted in the grader's folder, ...) is graded beside honest submissions, as in
tests/test_grade.py. The bench samples, ten times a second, the resident memory of the
grader's own processes (the `autograder grade` process and its worker processes, not the
sandboxed kernels, whose memory the sandbox limits) and prints:
- the batch's wall time, and the slowest scenarios;
- the grader's peak memory (its processes summed, and the largest one);
- whether every scenario got the score its functions truly earn (as in tests/test_grade.py).
The first batch is SCENARIOS on the fixture `fix`; the second RULES_SCENARIOS on `rules` (round
2's ways to points without the work).

Usage: python bench/grading/hostile.py [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "hostile"))
from scenarios import CANARY_TEXT, RULES_SCENARIOS, SCENARIOS, build_batch, build_rules_batch  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "grading"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (resident bytes, command line) for `root` and its descendants."""
    parent, info = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            rss = int(stat[stat.rfind(b")") + 2:].split()[21]) * PAGE
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        parent[int(entry.name)] = int(stat[stat.rfind(b")") + 2:].split()[1])
        info[int(entry.name)] = (rss, cmd)
    keep, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in info:
            keep[pid] = info[pid]
            frontier += [p for p, pp in parent.items() if pp == pid]
    return keep


def _grader_processes(tree: dict[int, tuple[int, str]]) -> list[int]:
    """The grader's own processes: Python processes of the grade run, not kernels or sandboxes."""
    return [rss for rss, cmd in tree.values()
            if "ipykernel" not in cmd and "bwrap" not in cmd and "python" in cmd.split(" ")[0]]


def grade_batch(assignment: str, subs: Path, out: Path) -> dict:
    """One `autograder grade --workers 2` of `subs`, sampling the grader's memory ten times a second."""
    env = {"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "autograder", "grade", assignment, str(subs), "--root", str(FIXTURE),
           "--output", str(out), "--cell-timeout", "8", "--quiet", "--workers", "2"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        sizes = _grader_processes(_tree(proc.pid))
        peak_sum, peak_one = max(peak_sum, sum(sizes)), max(peak_one, max(sizes, default=0))
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bench/grading/hostile: grade {assignment} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    entries = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        entries[e["student"]] = e
    return {"wall": wall, "peak_sum": peak_sum, "peak_one": peak_one, "entries": entries}


def _wrong(table: dict, entries: dict) -> list[str]:
    wrong = []
    for name, (_, expected, _, _) in table.items():
        got = sum(t["score"] for t in entries[name]["tests"]) if name in entries else None
        if got is None or abs(got - expected) > 1e-9:
            wrong.append(f"{name}: {got} (expected {expected})")
    return wrong


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print where it is")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        listener = socket.socket()  # what the `network` scenario tries to reach
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        threading.Thread(target=listener.accept, daemon=True).start()
        release = nbformat.read(FIXTURE / "assignments" / "fix" / "fix.ipynb", as_version=4)
        subs, canary = build_batch(release, tmp, port=listener.getsockname()[1])
        print(f"{len(SCENARIOS)} scenarios of `fix` and {len(RULES_SCENARIOS)} of `rules`, each set graded by "
              f"`autograder grade --workers 2 --cell-timeout 8`; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        fix = grade_batch("fix", subs, tmp / "out")
        listener.close()
        rules_subs = build_rules_batch(nbformat.read(FIXTURE / "assignments" / "rules" / "rules.ipynb", as_version=4),
                                       tmp / "rules-subs")
        rules = grade_batch("rules", rules_subs, tmp / "rules-out")
        canary_ok = canary.read_text() == CANARY_TEXT and (canary.stat().st_mode & 0o777) == 0o600
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    mib = 1024 * 1024
    wrong = {"fix": _wrong(SCENARIOS, fix["entries"]), "rules": _wrong(RULES_SCENARIOS, rules["entries"])}
    print(f"\n{'measure':<58}{'fix':>10}{'rules':>10}")
    print(f"{'batch wall time (s)':<58}{fix['wall']:>10.1f}{rules['wall']:>10.1f}")
    print(f"{'grader peak resident memory, its processes summed (MiB)':<58}{fix['peak_sum'] / mib:>10.0f}"
          f"{rules['peak_sum'] / mib:>10.0f}")
    print(f"{'grader peak resident memory, largest process (MiB)':<58}{fix['peak_one'] / mib:>10.0f}"
          f"{rules['peak_one'] / mib:>10.0f}")
    scored = (f"{len(SCENARIOS) - len(wrong['fix'])}/{len(SCENARIOS)}", f"{len(RULES_SCENARIOS) - len(wrong['rules'])}/{len(RULES_SCENARIOS)}")
    print(f"{'scenarios scored as their code earns':<58}{scored[0]:>10}{scored[1]:>10}")
    print(f"{'bystander file unchanged (content and mode)':<58}{'yes' if canary_ok else 'NO':>10}")
    slowest = sorted(fix["entries"].values(), key=lambda e: -e.get("seconds", 0))[:5]
    print("\nslowest scenarios of fix (s): " + ", ".join(f"{e['student']} {e.get('seconds', 0):.0f}" for e in slowest))
    for w in wrong["fix"] + wrong["rules"]:
        print(f"  WRONG {w}")
    return 0 if not wrong["fix"] and not wrong["rules"] and canary_ok else 1


if __name__ == "__main__":
    sys.exit(main())
