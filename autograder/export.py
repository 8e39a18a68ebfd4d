"""`autograder export`: the grades as a CSV, in our per-question form or an LMS's import form.

Scores are read from nbgrader's gradebook (the record of truth); the flag column comes
from the journal. Formats (`--format`):
- `questions` (default): one row per student, one column per graded test, total, max, flagged;
- `canvas`: Canvas's gradebook import (Grades > Import): the columns `Student`, `ID`,
  `SIS User ID`, `SIS Login ID`, `Section`, then one column named after the assignment, and a
  `Points Possible` row under the header. Canvas matches a row to a student by one of its
  identifiers; with `--roster` (the CSV of Canvas's own gradebook export) rows are matched on
  `--match` (default `SIS Login ID`, the hub's user name at most schools) and the identifiers
  copied from it; without one, the student id goes into `SIS Login ID`;
- `moodle`: Moodle's grade import from a CSV file: a `Username` column (mapped to the user
  name in the import form; with `--roster`, the roster's columns come first, e.g. `Email
  address`) and one column for the grade item, named after the assignment;
- `nbgrader`: the columns of `nbgrader export` (its CsvExportPlugin): assignment, duedate,
  timestamp, student_id, last_name, first_name, email, raw_score, late_submission_penalty,
  score, max_score.
Every field a student can influence is written as text a spreadsheet will not evaluate.
"""
from __future__ import annotations

import csv
from pathlib import Path

from autograder.results import load, with_human_scores

# A cell that starts with one of these is a formula to Excel, LibreOffice and Google Sheets
# (CSV injection): a student named "=HYPERLINK(...)" must arrive as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell_text(value) -> str:
    """A CSV field that spreadsheets show as the text it is, never evaluate."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


CANVAS_IDS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]
DEFAULT_NAMES = {"questions": "grades.csv", "canvas": "grades-canvas.csv", "moodle": "grades-moodle.csv",
                 "nbgrader": "grades-nbgrader.csv"}


def _text(value) -> str:
    return "" if value is None else str(value)


def read_roster(path: Path, match: str) -> dict[str, dict[str, str]]:
    """The LMS's own export, keyed by the column that holds our student ids."""
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if rows and match not in rows[0]:
        raise SystemExit(f"autograder export: the roster {path} has no column {match!r} "
                         f"(its columns: {', '.join(rows[0])}); name the one holding the students' ids with --match")
    return {r[match].strip(): r for r in rows if r.get(match, "").strip()}


def penalty(entry: dict) -> float:
    """The late penalty, taken on the whole score (written answers included)."""
    return float((entry.get("late") or {}).get("penalty", 0.0))


def sync_penalties(gb, meta: dict, entries: dict) -> None:
    """nbgrader's gradebook keeps the penalty taken on the whole score, so that its own views
    (formgrader, `nbgrader export`) agree with ours after a human graded the written answers."""
    for student, e in entries.items():
        if (e.get("late") or {}).get("policy_spec"):
            gb.find_submission_notebook(meta["notebook"], meta["assignment"], student).late_submission_penalty = penalty(e)
    gb.db.commit()


def rows_for(fmt: str, gb, meta: dict, entries: dict, roster: dict | None, match: str) -> list[list[str]]:
    """The CSV's rows (header first) in format `fmt`, from the gradebook."""
    assignment, notebook = meta["assignment"], meta["notebook"]
    cells = [c.name for c in gb.find_notebook(notebook, assignment).grade_cells]
    maxes = [gb.find_grade_cell(c, notebook, assignment).max_score for c in cells]

    def scores(student):
        return [gb.find_grade(c, notebook, assignment, student).score for c in cells]

    if fmt == "questions":
        rows = [["student", *cells, "total", "max", "late_penalty", "final", "flagged"]]
        for student in entries:
            got = scores(student)
            taken = penalty(entries[student])
            rows.append([student, *[f"{s:g}" for s in got], f"{sum(got):g}", f"{sum(maxes):g}", f"{taken:g}",
                         f"{max(0.0, sum(got) - taken):g}",
                         "grader error" if entries[student].get("grader_error") else
                         "yes" if entries[student]["flags"] else ""])
        return rows
    if fmt == "nbgrader":
        rows = [NBGRADER_COLUMNS]
        a = gb.find_assignment(assignment)
        for student in entries:
            st, sub = gb.find_student(student), gb.find_submission(assignment, student)
            taken = penalty(entries[student])
            rows.append([assignment, _text(a.duedate), _text(sub.timestamp), student, _text(st.last_name),
                         _text(st.first_name), _text(st.email), str(sub.score), str(taken),
                         str(max(0.0, sub.score - taken)), str(a.max_score)])
        return rows
    total = {s: gb.find_submission(assignment, s).score - penalty(entries[s]) for s in entries}
    if fmt == "canvas":
        rows = [[*CANVAS_IDS, assignment], ["Points Possible", "", "", "", "", f"{sum(maxes):g}"]]
        for student in entries:
            known = (roster or {}).get(student)
            ids = [known.get(c, "") for c in CANVAS_IDS] if known else ["", "", "", student, ""]
            rows.append([*ids, f"{max(0.0, total[student]):g}"])
        return rows
    if fmt == "moodle":
        extra = [c for c in next(iter((roster or {}).values()), {}) if c != match][:1] if roster else []
        rows = [[*extra, "Username", assignment]]
        for student in entries:
            known = (roster or {}).get(student, {})
            rows.append([*(known.get(c, "") for c in extra), student, f"{max(0.0, total[student]):g}"])
        return rows
    raise ValueError(f"unknown format {fmt!r}")


def run(args) -> int:
    from autograder.gradebook import GradeWriter

    meta, entries = load(Path(args.output))
    entries = with_human_scores(meta, entries)  # penalties taken again with the written answers' scores
    fmt = getattr(args, "format", "questions")
    match = getattr(args, "match", "SIS Login ID")
    roster = read_roster(args.roster, match) if getattr(args, "roster", None) else None
    writer = GradeWriter(meta["db_url"], Path(args.output) / "journal.jsonl")
    try:
        sync_penalties(writer.gb, meta, entries)
        rows = rows_for(fmt, writer.gb, meta, entries, roster, match)
    finally:
        writer.close()
    path = Path(args.csv or Path(args.output) / DEFAULT_NAMES[fmt])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        for row in rows:
            w.writerow([cell_text(v) for v in row])
    unmatched = [s for s in entries if roster is not None and s not in roster]
    print(f"grades of {len(entries)} students in {path} ({fmt} format)"
          + (f"; not in the roster (check --match): {', '.join(unmatched)}" if unmatched else ""))
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("export", help="the grades as a CSV: per question, or for Canvas, Moodle or nbgrader")
    add_common(p)
    p.add_argument("--format", default="questions", choices=list(DEFAULT_NAMES),
                   help="questions (default): one column per graded test; canvas, moodle: the LMS's grade import; "
                        "nbgrader: the columns of `nbgrader export`")
    p.add_argument("--csv", help="where to write (default OUTPUT/grades.csv, or grades-FORMAT.csv)")
    p.add_argument("--roster", help="the LMS's own gradebook export (CSV), for its student identifiers")
    p.add_argument("--match", default="SIS Login ID",
                   help="the roster's column that holds the students' ids here (default 'SIS Login ID')")
    p.set_defaults(func=run)
