"""The single writer of grades: nbgrader's Gradebook, plus a journal for resuming.

Workers never touch the database; they return results and this class, living in the
instructor process, writes them one at a time. The journal (`journal.jsonl` beside
the database) records, per student, the hash of what was graded and the per-test
results; a rerun skips a submission whose hash is unchanged, and a batch that crashed
resumes with whatever has no journal line yet. The gradebook is written before the
journal line, so a crash in between only means that submission is graded again
(an update, never a duplicate).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import warnings

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from autograder.environment import gradebook_schema_in_process, path_with_interpreter_bin

# nbgrader 0.9's add_submission triggers harmless autoflush warnings under SQLAlchemy 2
warnings.filterwarnings("ignore", category=SAWarning)


class GradeWriter:
    def __init__(self, db_url: str, journal: Path):
        self.db_url = db_url
        self.journal = Path(journal)
        # a new gradebook is stamped with nbgrader's schema head, read in this process; the
        # `alembic` script of this environment stays reachable for nbgrader's own fallback
        gradebook_schema_in_process()
        os.environ["PATH"] = path_with_interpreter_bin()
        self.gb = Gradebook(db_url)

    def register_assignment(self, assignment: str, notebook: str, graded: list[tuple[str, float]],
                            manual: list[tuple[str, float, str]] = (), solutions: list[str] = ()) -> None:
        """The assignment's graded cells: autograded tests (locked code) and manually graded
        answers (a student's Markdown or code, scored by a human in the formgrader)."""
        self.gb.update_or_create_assignment(assignment)
        self.gb.update_or_create_notebook(notebook, assignment)
        cells = [(g, p, "code", True) for g, p in graded] + [(g, p, kind, False) for g, p, kind in manual]
        for grade_id, points, kind, locked in cells:
            self.gb.update_or_create_grade_cell(grade_id, notebook, assignment, max_score=points, cell_type=kind)
            # nbgrader's schema pairs every grade cell with a source cell
            self.gb.update_or_create_source_cell(grade_id, notebook, assignment, cell_type=kind, locked=locked,
                                                 source="", checksum=None)
        # the formgrader keeps a comment per solution cell and submission (nbgrader makes them with the submission)
        for name in solutions:
            self.gb.update_or_create_solution_cell(name, notebook, assignment)

    def _previous(self, student: str) -> dict:
        """The student's journal entry before this write ({} when there is none)."""
        if not hasattr(self, "_done"):
            self._done = self.done()
        return self._done.get(student, {})

    def done(self) -> dict[str, dict]:
        """Latest journal entry per student."""
        out: dict[str, dict] = {}
        if self.journal.exists():
            for line in self.journal.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a half-written last line from a crash
                out[entry["student"]] = entry
        return out

    def write(self, assignment: str, notebook: str, result: dict) -> None:
        student = result["student"]
        self.gb.update_or_create_student(student)
        try:
            self.gb.find_submission(assignment, student)
        except MissingEntry:
            self.gb.add_submission(assignment, student)
        for test in result["tests"]:
            grade = self.gb.find_grade(test["grade_id"], notebook, assignment, student)
            grade.auto_score = test["score"]
            # a grader error is no score of the student's: a human grades it (or the next run does)
            grade.needs_manual_grade = test["status"] == "tampered" or bool(result.get("grader_error"))
        before = {m["grade_id"]: m.get("digest") for m in (self._previous(student).get("manual") or [])}
        for answer in result.get("manual", []):
            grade = self.gb.find_grade(answer["grade_id"], notebook, assignment, student)
            if not answer["answered"]:
                # left as the release gave it: 0, and nothing for a human to read (as nbgrader does)
                grade.auto_score, grade.manual_score, grade.needs_manual_grade = 0.0, None, False
            else:
                grade.auto_score = None
                # a human's score stays; a new or changed answer goes back to the human
                if grade.manual_score is None or before.get(answer["grade_id"]) != answer["digest"]:
                    grade.needs_manual_grade = True
        late = result.get("late") or {}
        if late:
            import datetime as dt
            naive_utc = lambda s: dt.datetime.fromisoformat(s).astimezone(dt.timezone.utc).replace(tzinfo=None)  # noqa: E731
            sub = self.gb.find_submission(assignment, student)
            if late.get("submitted"):
                sub.timestamp = naive_utc(late["submitted"])
            if late.get("assignment_due"):
                self.gb.find_assignment(assignment).duedate = naive_utc(late["assignment_due"])
                sub.extension = naive_utc(late["due"]) - naive_utc(late["assignment_due"]) if late.get("extension") else None
            self.gb.find_submission_notebook(notebook, assignment, student).late_submission_penalty = late.get("penalty", 0.0)
        self.gb.db.commit()
        torn = self.journal.exists() and self.journal.stat().st_size and not self.journal.read_bytes().endswith(b"\n")
        with self.journal.open("a") as fh:
            # after a crash the last line may be half written: end it, never extend it
            fh.write(("\n" if torn else "") + json.dumps(result) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if hasattr(self, "_done"):
            self._done[student] = result

    def close(self) -> None:
        self.gb.close()
