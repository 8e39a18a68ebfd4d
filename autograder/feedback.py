"""`autograder feedback`: one HTML page per student.

Each graded question appears as the notebook presents it (number, heading, points), with its
result and, at full detail, the message of the student's own failing call: never the test's
source or an expected value (stock nbgrader's feedback shows the hidden tests). Notes about
the student's cells name the section of the notebook, not a cell index. The page links to the
assignment in the published book, and reads at phone width. Built from the journal, which
holds no test source at all.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from autograder.results import AWAITING, GRADED_BY_HAND, NOT_ANSWERED, load, manual_as_tests, with_human_scores


# How much a feedback page says (`--detail`), for instructors who release feedback while
# an assignment is still open (`autograder watch`) and do not want the messages of the
# hidden tests, or even their names, to guide guessing:
#   full    every test's name, result, points and error message (the default)
#   names   every test's name, result and points; no messages
#   scores  the total score and how many tests passed; no test names
DETAILS = ("full", "names", "scores")


# The page's look: the book's typeface and colours (sphinx-book-theme's defaults), one card per
# question so that a phone shows it without sideways scrolling (tests/browser/test_feedback_page.py).
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5; color: #222;
       margin: 0 auto; padding: 1rem; max-width: 48rem; }
h1 { font-size: 1.5rem; margin: .2rem 0 .6rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
.score { font-size: 1.2rem; } a { color: #0a7d91; }
.q { border: 1px solid #d0d7de; border-left-width: 6px; border-radius: 6px; padding: .5rem .8rem; margin: .6rem 0; }
.q.passed, .q.graded-by-hand { border-left-color: #2e7d32; } .q.awaiting-grading { border-left-color: #b08800; } .q.failed, .q.not-run, .q.tampered { border-left-color: #c62828; }
.q h3 { font-size: 1rem; margin: 0; } .q .meta { color: #555; font-size: .9rem; }
.q code, .msg { overflow-wrap: anywhere; word-break: break-word; }
.msg { white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem;
       background: #f6f8fa; padding: .4rem .6rem; border-radius: 4px; margin: .4rem 0 0; }
"""
MANUAL_NOTE = {NOT_ANSWERED: "Left as the notebook gave it: no points.",
               AWAITING: "A written answer: your instructor grades it by hand.",
               GRADED_BY_HAND: "Graded by your instructor."}
# how the grader names the cell a note is about: "cell 'conv2d_naive' (cell 21) raised ...",
# "your added cell 12 (cell 12) ...", "cell 30 (cell 30) ..." (an instructor cell without an id)
_CELL_REF = re.compile(r"^(?:cell '(?P<gid>[^']+)'|(?P<added>your added cell) \d+|cell \d+|(?P<bare>[^\s(]+)) \(cell \d+\) ")


def _note(d: dict, titles: dict[str, str]) -> str:
    """A diagnostic as the student can place it: the section of their notebook, not a cell index."""
    message = d["message"]
    m = _CELL_REF.match(message)
    if not m:
        return message
    rest, gid = message[m.end():], m.group("gid") or m.group("bare")
    where = f" under \u201c{d['section']}\u201d" if d.get("section") else ""
    if gid in titles:
        return f"your code in \u201c{titles[gid]}\u201d ({gid}) {rest}"
    if m.group("added"):
        return f"a cell you added{where} {rest}"
    if gid:
        return f"the notebook's cell {gid}{where} {rest}"
    return f"a cell of the notebook{where} (not one you write) {rest}"


def page(assignment: str, e: dict, detail: str = "full", questions: dict | None = None,
         book_url: str | None = None, solution_titles: dict[str, str] | None = None) -> str:
    """One student's page. `questions` (autograder.questions) gives each test the number, title
    and points the notebook shows; `book_url`, the assignment's page in the published book."""
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {detail!r}")
    esc = html.escape
    questions = questions or {}
    order = {g: q.number for g, q in questions.items()}
    tests = sorted(manual_as_tests(e), key=lambda t: order.get(t["grade_id"], 1000))
    got, total = sum(t["score"] for t in tests), sum(t["points"] for t in tests)
    awaiting = sum(t["points"] for t in tests if t["status"] == AWAITING)
    late = e.get("late") or {}
    late_line = ""
    if late.get("late_seconds", 0) > 0:
        hours = late["late_seconds"] / 3600
        late_line = (f"<p class='late'>Submitted {hours:.1f} hours after the due date ({esc(late['due'])}"
                     f"{', your extension' if late.get('extension') else ''}). Late policy: {esc(late.get('policy', ''))}: "
                     f"{late.get('penalty', 0):g} points taken from the {got:g} earned.</p>")
        got = max(0.0, got - late.get("penalty", 0.0))
    elif late.get("due"):
        late_line = f"<p>Due {esc(late['due'])}{' (your extension)' if late.get('extension') else ''}: on time.</p>"
    cards = []
    for i, t in enumerate(tests, 1):
        q = questions.get(t["grade_id"])
        title = esc(q.label) if q else f"Question {i}"
        status = t["status"].replace(" ", "-")
        message = f"<div class='msg'>{esc(t['message'])}</div>" if detail == "full" and t["message"] else ""
        if t.get("manual"):  # a written answer: your instructor's score, or not yet
            message = f"<div class='note'>{MANUAL_NOTE[t['status']]}</div>"
        shown = "\u2013" if t["status"] == AWAITING else f"{t['score']:g}"
        cards.append(f"<div class='q {esc(status)}'><h3>{title}</h3><div class='meta'>{esc(t['status'])} \u00b7 "
                     f"{shown} / {t['points']:g} points \u00b7 <code>{esc(t['grade_id'])}</code></div>{message}</div>")
    if detail == "scores":
        auto = [t for t in tests if not t.get("manual")]
        passed = sum(t["status"] == "passed" for t in auto)
        cards = [f"<p>{passed} of {len(auto)} tests passed</p>"]
    notes = "".join(f"<li>{esc(_note(d, solution_titles or {}))}</li>" for d in e["diagnostics"])
    # what the grader marked for a human (computed lookups, patched libraries, ...): the
    # student is told, since it does not change the score by itself but an instructor will look
    review = "" if detail == "scores" else "".join(f"<li>{esc(f)}</li>" for f in e.get("flags", []))
    link = (f"<p>The tasks, and the chapter they go with: <a href='{esc(book_url)}'>{esc(assignment)} in the book</a>.</p>"
            if book_url else "")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(assignment)}: {esc(e['student'])}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(assignment)}: feedback for {esc(e['student'])}</h1>"
            f"<p class='score'>Score: <b>{got:g} / {total:g}</b></p>"
            + (f"<p class='awaiting'>{awaiting:g} of the points are for written answers your instructor has not "
               f"graded yet; this page is written again when they have.</p>" if awaiting else "")
            + f"{late_line}{link}" + "".join(cards)
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
            + (f"<h2>Marked for your instructor's review</h2><p>These do not change the score by themselves; "
               f"your instructor will read the code they point at.</p><ul>{review}</ul>" if review else "")
            + "</body></html>")


def _book_url(root: Path, assignment: str) -> str | None:
    """The assignment's page in the published book, or None while the course is not published."""
    try:
        from autograder import publish
        site = publish.read(root).site
    except Exception:  # noqa: BLE001 - no or malformed config: the page simply has no link
        return None
    return f"{site}book/assignments/{assignment}.html" if site else None


def _solution_titles(root: Path, assignment: str) -> dict[str, str]:
    """Solution cell id -> the heading above it in the notebook."""
    import nbformat

    from autograder import notebook_checks as checks
    from autograder.questions import HEADING, _plain
    folder = Path(root) / "solutions" / assignment
    source = next(iter(sorted(folder.glob("*.ipynb"))), None) if folder.is_dir() else None
    titles, heading = {}, ""
    for cell in (nbformat.read(source, as_version=4).cells if source else []):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if HEADING.match(line):
                    heading = _plain(HEADING.match(line).group(1))
        elif checks.nbgrader_meta(cell).get("grade_id") and heading:
            titles[checks.nbgrader_meta(cell)["grade_id"]] = heading
    return titles


def run(args) -> int:
    from autograder.questions import load as load_questions

    meta, entries = load(Path(args.output))
    entries = with_human_scores(meta, entries)  # the written answers as humans graded them
    root = Path(meta.get("root", "."))
    qs, url = load_questions(root, meta["assignment"]), _book_url(root, meta["assignment"])
    titles = _solution_titles(root, meta["assignment"])
    out = Path(args.output) / "feedback"
    out.mkdir(exist_ok=True)
    for student, e in entries.items():
        (out / f"{student}.html").write_text(page(meta["assignment"], e, getattr(args, "detail", "full"), qs, url, titles))
    print(f"feedback for {len(entries)} students in {out}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("feedback", help="per-student HTML feedback (no hidden test source)")
    add_common(p)
    p.add_argument("--detail", choices=DETAILS, default="full",
                   help="full: names, results, points, messages; names: no messages; scores: totals only")
    p.set_defaults(func=run)
