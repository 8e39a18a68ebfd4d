"""`autograder export`: a CSV with one row per student and one column per graded test.

Scores are read from nbgrader's gradebook (the record of truth); the flag column comes
from the journal.
"""
from __future__ import annotations

import csv
from pathlib import Path

from autograder.results import load

# A cell that starts with one of these is a formula to Excel, LibreOffice and Google Sheets
# (CSV injection): a student named "=HYPERLINK(...)" must arrive as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell_text(value) -> str:
    """A CSV field that spreadsheets show as the text it is, never evaluate."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def run(args) -> int:
    from autograder.gradebook import GradeWriter

    meta, entries = load(Path(args.output))
    writer = GradeWriter(meta["db_url"], Path(args.output) / "journal.jsonl")
    gb = writer.gb
    cells = [c.name for c in gb.find_notebook(meta["notebook"], meta["assignment"]).grade_cells]
    path = Path(args.csv or Path(args.output) / "grades.csv")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *(cell_text(c) for c in cells), "total", "max", "flagged"])
        for student in entries:
            scores = [gb.find_grade(c, meta["notebook"], meta["assignment"], student).score for c in cells]
            maxes = [gb.find_grade_cell(c, meta["notebook"], meta["assignment"]).max_score for c in cells]
            w.writerow([cell_text(student), *[f"{s:g}" for s in scores], f"{sum(scores):g}", f"{sum(maxes):g}",
                        "grader error" if entries[student].get("grader_error") else
                        "yes" if entries[student]["flags"] else ""])
    writer.close()
    print(f"grades of {len(entries)} students in {path}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("export", help="CSV of per-question scores from the gradebook")
    add_common(p)
    p.add_argument("--csv", help="where to write (default OUTPUT/grades.csv)")
    p.set_defaults(func=run)
