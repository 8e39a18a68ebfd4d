"""Restore a submitted notebook against the source notebook before it is executed.

Students can edit anything in their copy: delete or duplicate graded cells, change a
cell's type, corrupt metadata, or save something that is not JSON at all. nbgrader's
autograde overwrites locked cells in place and gives up on deleted ones; we rebuild the
notebook from the instructor's *source* instead, so the executed notebook always has
exactly the source's cells, in the source's order:

  - locked cells, graded test cells (with their hidden tests) and untagged instructor
    cells come from the source, whatever the submission did to them;
  - a solution cell takes the student's code, found by grade_id (first copy wins; a
    missing one is replaced by the release's stub, which fails its tests);
  - cells the student added (no nbgrader metadata, not a copy of an instructor cell)
    are kept, placed after the instructor cell that preceded them in the submission.

Every departure from the release becomes a Diagnostic naming the cell. Only the
instructor process runs this module: the hidden tests it restores reach the sandboxed
kernel one cell at a time, never as a file.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.files import NotReadable, read_regular

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


class SubmissionError(Exception):
    """The submission cannot be graded at all (e.g. not a notebook)."""


@dataclass
class Diagnostic:
    """One thing wrong with a submission, for the student's feedback and the report."""

    cell: str  # grade_id or "cell N"
    message: str
    severity: str = "warning"  # "warning" | "error" | "tamper"

    def as_dict(self) -> dict:
        return {"cell": self.cell, "message": self.message, "severity": self.severity}


@dataclass
class GradedCell:
    """A graded test cell of the restored notebook."""

    grade_id: str
    points: float
    index: int  # position in the restored notebook


@dataclass
class Restored:
    notebook: nbformat.NotebookNode
    graded: list[GradedCell]
    diagnostics: list[Diagnostic] = field(default_factory=list)


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader") or {}
    return meta if isinstance(meta, dict) else {}


MAX_SUBMISSION_BYTES = 64 * 1024 * 1024


def read_regular_file(path: Path, limit: int = MAX_SUBMISSION_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file reached without a symbolic link.

    A submission that is a link (to the instructor's solution, say), a FIFO or a device
    is refused: the grader reads only what the student actually handed in.
    """
    try:
        return read_regular(path, limit)
    except NotReadable as exc:
        raise SubmissionError(f"{Path(path).name}: {exc}" + ("; submit the notebook itself" if "link" in str(exc) else "")) from None


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Parse a submitted notebook; a clear SubmissionError when that is impossible."""
    try:
        raw = read_regular_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError(f"{path.name}: JSON but not a notebook (no list of cells)")
    try:
        return nbformat.reads(raw, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for odd versions
        raise SubmissionError(f"{path.name}: not a readable notebook ({type(exc).__name__}: {exc})") from None


def source_of(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def restore(source_nb: nbformat.NotebookNode, submitted: nbformat.NotebookNode,
            release_nb: nbformat.NotebookNode | None = None) -> Restored:
    """Rebuild `submitted` on the skeleton of `source_nb` (see the module docstring)."""
    diags: list[Diagnostic] = []
    release_by_id = {}
    if release_nb is not None:
        release_by_id = {nbgrader_meta(c).get("grade_id"): c for c in release_nb.cells if nbgrader_meta(c).get("grade_id")}
    src_ids = {nbgrader_meta(c).get("grade_id"): c for c in source_nb.cells if nbgrader_meta(c).get("grade_id")}
    instructor_sources = {source_of(c).strip() for c in source_nb.cells}
    instructor_sources |= {source_of(c).strip() for c in (release_nb.cells if release_nb else [])}

    # 1. Walk the submission: the student's solution code by grade_id, extra cells by anchor.
    student_code: dict[str, str] = {}
    extras: dict[str | None, list] = {}
    anchor = None
    seen: dict[str, int] = {}
    for i, cell in enumerate(submitted.cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in src_ids:
            seen[gid] = seen.get(gid, 0) + 1
            if seen[gid] == 2:
                diags.append(Diagnostic(gid, f"cell {gid!r} appears more than once (cell {i}); only the first copy is graded"))
                continue
            if seen[gid] > 2:
                continue
            want = src_ids[gid]
            if cell.get("cell_type") != want.cell_type:
                diags.append(Diagnostic(gid, f"cell {gid!r} was changed from {want.cell_type} to {cell.get('cell_type')}; "
                                             f"restored as {want.cell_type}"))
            meta = nbgrader_meta(want)
            if meta.get("solution"):
                student_code[gid] = source_of(cell)
            elif meta.get("locked") or meta.get("grade"):
                reference = release_by_id.get(gid)
                if reference is not None and source_of(cell).strip() != source_of(reference).strip():
                    diags.append(Diagnostic(gid, f"locked cell {gid!r} was edited; the instructor's version was restored"))
            anchor = gid
            continue
        if gid:
            diags.append(Diagnostic(f"cell {i}", f"cell {i} has an unknown grade_id {gid!r}; kept as an ordinary cell"))
        src = source_of(cell).strip()
        tags = cell.get("metadata", {}).get("tags", [])
        if src in instructor_sources or "parameters" in tags or "setup" in tags or "injected-parameters" in tags:
            continue  # an instructor cell without nbgrader metadata: the source's copy is used
        if cell.get("cell_type") == "code" and src:
            fresh = nbformat.v4.new_code_cell(source_of(cell))
            fresh.metadata["autograder-student-cell"] = True  # runs in the kernel only
            extras.setdefault(anchor, []).append(fresh)

    # 2. Emit the source's cells in order, student code in solution cells, extras after anchors.
    cells = []
    graded: list[GradedCell] = []
    pending_head = extras.get(None, [])
    for cell in source_nb.cells:
        new = copy.deepcopy(cell)
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if meta.get("solution") and gid:
            if gid in student_code:
                new.source = student_code[gid]
            else:
                new.source = source_of(release_by_id[gid]) if gid in release_by_id else STUB
                diags.append(Diagnostic(gid, f"solution cell {gid!r} is missing from the submission; graded as unanswered",
                                        severity="error"))
        if meta.get("grade") and not meta.get("solution") and gid and cell.cell_type == "code":
            if gid not in seen:
                diags.append(Diagnostic(gid, f"graded cell {gid!r} was deleted; the instructor's copy was restored"))
            graded.append(GradedCell(gid, float(meta.get("points", 0) or 0), len(cells)))
        cells.append(new)
        if gid and gid in extras:
            cells.extend(extras[gid])
    if pending_head:
        # student cells written before any nbgrader cell: run them just before the first
        # solution cell, i.e. after the setup, parameters and imports
        first = next((k for k, c in enumerate(cells) if nbgrader_meta(c).get("solution")), len(cells))
        cells[first:first] = pending_head
        for g in graded:
            if g.index >= first:
                g.index += len(pending_head)
    out = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source_nb.metadata))
    return Restored(out, graded, diags)
