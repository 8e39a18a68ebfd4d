"""`autograder regrade`: grade a class again after the assignment changed, with an audit.

After a hidden test or a target is fixed mid-term, `regrade` runs `autograder grade` on the
same grading folder. A submission is graded again only when what decides its grade changed:
its notebook, the assignment's source (tests, targets, instructor cells) or the grading
parameters (`grade`'s own rule: the journal's hash of all three); with `--force`, everyone is
(for a change the hash cannot see, e.g. in the course library). Then every question whose
points changed is written to an audit, `audit/regrade-<UTC time>.csv` in the grading folder:
student, question, old and new points, and the reason (the question's test changed, another
part of the assignment changed, or the student submitted again). The report shows the latest
audit; scores that did not change do not appear in it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from autograder.results import load


def _snapshot(output: Path) -> tuple[dict, dict[str, dict]]:
    if not (output / "meta.json").exists():
        return {}, {}
    return load(output)


def audit_rows(old_meta: dict, old: dict[str, dict], new_meta: dict, new: dict[str, dict],
               labels: dict[str, str]) -> list[dict]:
    """One row per (student, question) whose points differ between two gradings."""
    old_tests, new_tests = old_meta.get("tests", {}), new_meta.get("tests", {})
    assignment_changed = old_meta.get("tests") is not None and old_tests != new_tests
    rows = []
    for student, entry in new.items():
        before = {t["grade_id"]: t["score"] for t in old.get(student, {}).get("tests", [])}
        resubmitted = student in old and old[student].get("submission") != entry.get("submission")
        for t in entry["tests"]:
            gid = t["grade_id"]
            if student in old and before.get(gid) == t["score"]:
                continue
            if student not in old:
                reason = "first grading"
            elif old_tests.get(gid) != new_tests.get(gid):
                reason = "this question's test changed"
            elif resubmitted:
                reason = "the student submitted again"
            elif assignment_changed:
                reason = "another part of the assignment changed"
            else:
                reason = "graded again (--force)"
            rows.append({"student": student, "question": labels.get(gid, gid), "grade_id": gid,
                         "old": "" if gid not in before else f"{before[gid]:g}", "new": f"{t['score']:g}",
                         "reason": reason})
    return rows


def run(args) -> int:
    from autograder.questions import load as load_questions

    output = Path(args.output)
    old_meta, old = _snapshot(output)
    cmd = [sys.executable, "-m", "autograder", "grade", args.assignment, args.submissions, "--output", str(output),
           "--root", args.root, "--workers", str(args.workers)] + (["--force"] if args.force else []) \
        + (["--quiet"] if args.quiet else []) \
        + (["--db", old_meta["db_url"]] if old_meta.get("db_url") else []) \
        + (["--formgrader"] if old_meta.get("formgrader") else [])  # the same gradebook, humans' scores kept
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        print(f"autograder regrade: grading failed (exit {proc.returncode}); no audit written", file=sys.stderr)
        return proc.returncode
    new_meta, new = _snapshot(output)
    labels = {g: q.label for g, q in load_questions(args.root, args.assignment).items()}
    rows = audit_rows(old_meta, old, new_meta, new, labels)
    changed_students = sorted({r["student"] for r in rows})
    folder = output / "audit"
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"regrade-{stamp}.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["student", "question", "grade_id", "old", "new", "reason"])
    w.writeheader()
    w.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(buf.getvalue())
    (folder / "latest.json").write_text(json.dumps({"file": path.name, "rows": rows}))
    print(f"regrade of {args.assignment}: {len(rows)} scores changed for {len(changed_students)} students"
          + (f" ({', '.join(changed_students[:10])}{', ...' if len(changed_students) > 10 else ''})" if rows else "")
          + f"; audit in {path}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("regrade", help="grade again after the assignment changed; audit of changed scores")
    p.add_argument("assignment")
    p.add_argument("submissions", help="the same submissions folder `grade` was given")
    add_common(p)
    p.add_argument("--root", default=".", help="course root holding solutions/ and assignments/ (default .)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--force", action="store_true",
                   help="grade everyone again, even where nothing the journal's hash covers changed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
