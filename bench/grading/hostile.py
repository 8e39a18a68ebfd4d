"""Benchmark: the hostile batch of tests/hostile/scenarios.py graded in one `autograder grade`
run (two workers), with the grader's peak memory and the batch's time.

Every scenario (infinite loops, memory and disk hogs, fork bombs, forged replies, output
floods, links planted in the grader's folder, ...) is graded beside honest submissions, as in
tests/test_grade.py. The bench samples, ten times a second, the resident memory of the
grader's own processes (the `autograder grade` process and its worker processes, not the
sandboxed kernels, whose memory the sandbox limits) and prints:
- the batch's wall time, and the slowest scenarios;
- the grader's peak memory (its processes summed, and the largest one);
- whether every scenario got the score its functions truly earn (as in tests/test_grade.py).

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
from scenarios import CANARY_TEXT, SCENARIOS, build_batch  # noqa: E402

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
        out = tmp / "out"
        env = {"DLCOURSE_THREADS": "1", "PATH": "/usr/bin:/bin"}
        cmd = [sys.executable, "-m", "autograder", "grade", "fix", str(subs), "--root", str(FIXTURE),
               "--output", str(out), "--cell-timeout", "8", "--quiet", "--workers", "2"]
        print(f"{len(SCENARIOS)} scenarios graded by `autograder grade --workers 2 --cell-timeout 8`; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak_sum = peak_one = 0
        while proc.poll() is None:
            sizes = _grader_processes(_tree(proc.pid))
            peak_sum, peak_one = max(peak_sum, sum(sizes)), max(peak_one, max(sizes, default=0))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        stdout, stderr = proc.communicate()
        listener.close()
        if proc.returncode != 0:
            sys.exit(f"bench/grading/hostile: grade failed (exit {proc.returncode}):\n{stderr[-3000:]}")
        entries = {}
        for line in (out / "journal.jsonl").read_text().splitlines():
            e = json.loads(line)
            entries[e["student"]] = e
        wrong = []
        for name, (_, expected, _, _) in SCENARIOS.items():
            got = sum(t["score"] for t in entries[name]["tests"]) if name in entries else None
            if got is None or abs(got - expected) > 1e-9:
                wrong.append(f"{name}: {got} (expected {expected})")
        slowest = sorted(entries.values(), key=lambda e: -e.get("seconds", 0))[:5]
        canary_ok = canary.read_text() == CANARY_TEXT and (canary.stat().st_mode & 0o777) == 0o600
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    mib = 1024 * 1024
    print(f"\n{'measure':<52}{'value':>12}")
    print(f"{'batch wall time (s)':<52}{wall:>12.1f}")
    print(f"{'grader peak resident memory, its processes summed (MiB)':<52}{peak_sum / mib:>12.0f}")
    print(f"{'grader peak resident memory, largest process (MiB)':<52}{peak_one / mib:>12.0f}")
    print(f"{'scenarios scored as their code earns':<52}{len(SCENARIOS) - len(wrong):>8} / {len(SCENARIOS)}")
    print(f"{'bystander file unchanged (content and mode)':<52}{'yes' if canary_ok else 'NO':>12}")
    print("\nslowest scenarios (s): " + ", ".join(f"{e['student']} {e.get('seconds', 0):.0f}" for e in slowest))
    for w in wrong:
        print(f"  WRONG {w}")
    return 0 if not wrong and canary_ok else 1


if __name__ == "__main__":
    sys.exit(main())
