"""Reading a grading folder back: the journal's latest entry per student, and its metadata."""
from __future__ import annotations

import json
import os
from pathlib import Path


def load(output: Path) -> tuple[dict, dict[str, dict]]:
    output = Path(output)
    meta_path = output / "meta.json"
    if not meta_path.exists():
        raise SystemExit(f"{output} is not a grading folder (no meta.json); run `autograder grade` first")
    entries: dict[str, dict] = {}
    for line in (output / "journal.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        entries[e["student"]] = e
    return json.loads(meta_path.read_text()), dict(sorted(entries.items()))


# How a manually graded answer appears among the tests of a journal entry (feedback, report, export)
NOT_ANSWERED, AWAITING, GRADED_BY_HAND = "not answered", "awaiting grading", "graded by hand"


def with_human_scores(meta: dict, entries: dict[str, dict]) -> dict[str, dict]:
    """`entries` with each manually graded answer added to its tests, scored as the human scored
    it in the formgrader (nbgrader's gradebook), and each late penalty taken again on the whole
    score. Entries of an assignment without such answers come back unchanged."""
    if not any(e.get("manual") for e in entries.values()):
        return entries
    from autograder.deadlines import Policy
    from autograder.gradebook import GradeWriter
    from autograder.manual import human_scores

    writer = GradeWriter(meta["db_url"], Path(os.devnull))  # read only: no journal
    out = {}
    try:
        for student, e in entries.items():
            e = dict(e)
            answers = e.get("manual") or []
            human = human_scores(writer.gb, meta["assignment"], meta["notebook"], student, [m["grade_id"] for m in answers])
            e["tests"] = list(e["tests"])
            for m in answers:
                h = human[m["grade_id"]]
                status = NOT_ANSWERED if not m["answered"] else AWAITING if h["needs_grading"] else GRADED_BY_HAND
                e["tests"].append({"grade_id": m["grade_id"], "points": m["points"], "manual": True, "status": status,
                                   "score": float(h["score"] or 0.0) if status != AWAITING else 0.0, "message": ""})
            late = dict(e.get("late") or {})
            if late.get("policy_spec"):
                score, points = sum(t["score"] for t in e["tests"]), sum(t["points"] for t in e["tests"])
                late["penalty"] = round(Policy(**late["policy_spec"]).penalty(late["late_seconds"], score, points), 6)
                e["late"] = late
            out[student] = e
    finally:
        writer.close()
    return out


def manual_as_tests(e: dict) -> list[dict]:
    """The entry's tests, with each manually graded answer that is not among them yet (a page
    written before any human grading, e.g. by `watch`) as not answered or awaiting grading."""
    listed = {t["grade_id"] for t in e["tests"]}
    return list(e["tests"]) + [{"grade_id": m["grade_id"], "points": m["points"], "manual": True, "score": 0.0,
                                "status": AWAITING if m["answered"] else NOT_ANSWERED, "message": ""}
                               for m in e.get("manual") or [] if m["grade_id"] not in listed]
