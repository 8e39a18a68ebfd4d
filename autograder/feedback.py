"""`autograder feedback`: one HTML page per student.

Each test shows its name, pass/fail, points and the error message only: never the
test's source (stock nbgrader's feedback shows the hidden tests). Built from the
journal, which holds no test source at all.
"""
from __future__ import annotations

import html
from pathlib import Path

from autograder.results import load


# How much a feedback page says (`--detail`), for instructors who release feedback while
# an assignment is still open (`autograder watch`) and do not want the messages of the
# hidden tests, or even their names, to guide guessing:
#   full    every test's name, result, points and error message (the default)
#   names   every test's name, result and points; no messages
#   scores  the total score and how many tests passed; no test names
DETAILS = ("full", "names", "scores")


def page(assignment: str, e: dict, detail: str = "full") -> str:
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {detail!r}")
    rows = "".join(
        f"<tr class='{t['status'].replace(' ', '-')}'><td>{html.escape(t['grade_id'])}</td><td>{html.escape(t['status'])}</td>"
        f"<td>{t['score']:g} / {t['points']:g}</td><td>{html.escape(t['message'])}</td></tr>" for t in e["tests"])
    notes = "".join(f"<li>{html.escape(d['message'])}</li>" for d in e["diagnostics"])
    # what the grader marked for a human (computed lookups, patched libraries, ...): the
    # student is told, since it does not change the score by itself but an instructor will look
    review = "" if detail == "scores" else "".join(f"<li>{html.escape(f)}</li>" for f in e.get("flags", []))
    got, total = sum(t["score"] for t in e["tests"]), sum(t["points"] for t in e["tests"])
    if detail == "names":
        rows = "".join(f"<tr class='{t['status'].replace(' ', '-')}'><td>{html.escape(t['grade_id'])}</td>"
                       f"<td>{html.escape(t['status'])}</td><td>{t['score']:g} / {t['points']:g}</td><td></td></tr>"
                       for t in e["tests"])
    elif detail == "scores":
        passed = sum(t["status"] == "passed" for t in e["tests"])
        rows = f"<tr><td colspan='4'>{passed} of {len(e['tests'])} tests passed</td></tr>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(assignment)}: {html.escape(e['student'])}</title>"
            "<style>td,th{border:1px solid #ccc;padding:4px}.passed{background:#e6ffe6}.failed,.not-run,.tampered{background:#ffe6e6}</style>"
            f"</head><body><h1>{html.escape(assignment)}: feedback for {html.escape(e['student'])}</h1>"
            f"<p>Score: <b>{got:g} / {total:g}</b></p><table><tr><th>test</th><th>result</th><th>points</th><th>message</th></tr>{rows}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
            + (f"<h2>Marked for your instructor's review</h2><p>These do not change the score by themselves; "
               f"your instructor will read the code they point at.</p><ul>{review}</ul>" if review else "")
            + "</body></html>")


def run(args) -> int:
    meta, entries = load(Path(args.output))
    out = Path(args.output) / "feedback"
    out.mkdir(exist_ok=True)
    for student, e in entries.items():
        (out / f"{student}.html").write_text(page(meta["assignment"], e, getattr(args, "detail", "full")))
    print(f"feedback for {len(entries)} students in {out}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("feedback", help="per-student HTML feedback (no hidden test source)")
    add_common(p)
    p.add_argument("--detail", choices=DETAILS, default="full",
                   help="full: names, results, points, messages; names: no messages; scores: totals only")
    p.set_defaults(func=run)
