"""`autograder similarity`: which submissions share code, for a human's academic-honesty review.

Only what students wrote is compared: the assignment's solution cells, taken from each
submission by their nbgrader ids; the release's text of those cells (signatures, docstrings,
`raise NotImplementedError()`) is starter code, discarded as boilerplate. The comparison is
the `copydetect` library's winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003: the method
of MOSS): the code is tokenised and names become placeholders, so renaming variables or
rewriting comments does not hide a copy; k-grams of tokens are hashed, a window keeps the
smallest hash, and two files share code where they share those fingerprints.

Every pair of students is compared. A pair is ranked by the larger of its two shares (the
fraction of one student's code found in the other's), and listed with both solutions side by
side, the shared parts highlighted. The page says, and this tool means, that a high share is
a reason for a person to look, never a verdict or a penalty: short tasks with one natural
answer make honest solutions alike, which is why the threshold is the instructor's to set.

Writes `similarity.html` and `similarity.csv` (mode 0600) into the grading folder.
"""
from __future__ import annotations

import csv
import html
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder import notebook_checks as checks


@dataclass
class Pair:
    a: str
    b: str
    share_a: float       # fraction of a's code (tokens after filtering) that b's code also holds
    share_b: float
    tokens: int          # tokens in common
    code_a: str          # a's code as HTML, the shared parts highlighted
    code_b: str

    @property
    def share(self) -> float:
        return max(self.share_a, self.share_b)


def written_code(nb: nbformat.NotebookNode, solution_ids: list[str]) -> str:
    """The text of the notebook's solution cells, in the source's order, each under its id."""
    by_id: dict[str, str] = {}
    for cell in nb.cells:
        gid = checks.nbgrader_meta(cell).get("grade_id")
        if gid in solution_ids and gid not in by_id and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            by_id[gid] = "".join(src) if isinstance(src, list) else str(src)
    return "".join(f"# --- {gid}\n{by_id.get(gid, '')}\n\n" for gid in solution_ids)


def compare(codes: dict[str, str], starter: str, noise: int = 25, guarantee: int = 30,
            min_share: float = 0.33) -> list[Pair]:
    """Every pair of `codes` (student -> code) whose larger share is at least `min_share`,
    most similar first. `noise`: shortest match (in filtered characters) that counts;
    `guarantee`: a match at least this long is always found (winnowing window)."""
    from copydetect.detector import CodeFingerprint, compare_files
    from copydetect.utils import highlight_overlap

    window = guarantee - noise + 1
    boiler = CodeFingerprint("starter.py", noise, 1, fp=io.StringIO(starter)).hashes
    prints = {s: CodeFingerprint(f"{s}.py", noise, window, boilerplate=list(boiler), fp=io.StringIO(code))
              for s, code in codes.items()}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        tokens, (share_a, share_b), (slices_a, slices_b) = compare_files(prints[a], prints[b])
        if max(share_a, share_b) < min_share or tokens == 0:
            continue
        code_a, _ = highlight_overlap(prints[a].raw_code, slices_a, "<mark>", "</mark>", escape_html=True)
        code_b, _ = highlight_overlap(prints[b].raw_code, slices_b, "<mark>", "</mark>", escape_html=True)
        pairs.append(Pair(a, b, float(share_a), float(share_b), int(tokens), code_a, code_b))
    pairs.sort(key=lambda p: (-p.share, p.a, p.b))
    return pairs


def _write_private(path: Path, text: str) -> None:
    """Create or replace `path` as a 0600 file, never through a link."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def render(assignment: str, pairs: list[Pair], compared: int, skipped: dict[str, str], min_share: float) -> str:
    e = html.escape
    rows = "".join(f"<tr><td><a href='#p{i}'>{e(p.a)}</a></td><td>{e(p.b)}</td><td>{p.share_a:.0%}</td>"
                   f"<td>{p.share_b:.0%}</td><td>{p.tokens}</td></tr>" for i, p in enumerate(pairs))
    details = "".join(
        f"<section id='p{i}'><h2>{e(p.a)} and {e(p.b)}</h2><div class='side'>"
        f"<div><h3>{e(p.a)}: {p.share_a:.0%} of this code is also in the other</h3><pre>{p.code_a}</pre></div>"
        f"<div><h3>{e(p.b)}: {p.share_b:.0%}</h3><pre>{p.code_b}</pre></div></div></section>"
        for i, p in enumerate(pairs))
    skipped_list = "".join(f"<li>{e(s)}: {e(why)}</li>" for s, why in sorted(skipped.items())) or "<li>none</li>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Similarity: {e(assignment)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; max-width: 80rem; }}
.note {{ background: #fff7e0; border-left: 4px solid #e0a800; padding: .5rem 1rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .2rem .6rem; text-align: left; }}
.side {{ display: flex; flex-wrap: wrap; gap: 1rem; }} .side > div {{ flex: 1 1 30rem; min-width: 0; }}
pre {{ background: #f6f6f6; padding: .5rem; overflow-x: auto; font-size: .8rem; }}
mark {{ background: #ffd6d6; }}
</style></head><body>
<h1>Similarity of submissions: {e(assignment)}</h1>
<p class="note">A high share means two students' code has long stretches in common after names are
normalised; it is a reason for a person to look at both solutions, not evidence of copying and never a
penalty by itself. Short tasks with one natural answer make honest solutions alike. Starter code from
the release is not counted.</p>
<p>{compared} submissions compared; {len(pairs)} pairs share at least {min_share:.0%} of one student's code.</p>
<table><tr><th>student</th><th>student</th><th>share of the first</th><th>share of the second</th>
<th>tokens in common</th></tr>{rows}</table>
<h2>Not compared</h2><ul>{skipped_list}</ul>
{details}
</body></html>
"""


def run(args) -> int:
    from autograder.demo import load_assignment
    from autograder.grade import find_submissions
    from autograder.restore import SubmissionError, read_submission
    from autograder.text import clean

    root = Path(args.root)
    source, release, name = load_assignment(root, args.assignment)
    solution_ids = [checks.nbgrader_meta(c)["grade_id"] for c in source.cells
                    if checks.nbgrader_meta(c).get("solution") and c.cell_type == "code"]
    codes, skipped = {}, {}
    for student, (path, _) in find_submissions(Path(args.submissions), args.assignment, name).items():
        try:  # one unreadable notebook is listed, never stops the comparison of the others
            codes[student] = written_code(read_submission(path), solution_ids)
        except SubmissionError as exc:
            skipped[student] = clean(str(exc))
    pairs = compare(codes, written_code(release, solution_ids), args.noise, max(args.noise, args.guarantee),
                    args.min_share)
    out = Path(args.output)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(out / "similarity.html", render(args.assignment, pairs, len(codes), skipped, args.min_share))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student_a", "student_b", "share_a", "share_b", "tokens_in_common"])
    for p in pairs:
        w.writerow([p.a, p.b, f"{p.share_a:.3f}", f"{p.share_b:.3f}", p.tokens])
    _write_private(out / "similarity.csv", buf.getvalue())
    print(f"{len(codes)} submissions compared, {len(pairs)} pairs at or above {args.min_share:.0%}"
          + (f", {len(skipped)} not readable" if skipped else "") + f": {out / 'similarity.html'}")
    for p in pairs[:5]:
        print(f"  {p.share:5.0%}  {p.a}  {p.b}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("similarity", help="pairs of submissions that share code, for a human to review")
    p.add_argument("assignment", help="assignment name, e.g. a01-convolution")
    p.add_argument("submissions", help="submitted/{student}/{assignment}/*.ipynb layout or a flat folder of {student}.ipynb")
    add_common(p)
    p.add_argument("--root", default=".", help="course root holding solutions/ and assignments/ (default .)")
    p.add_argument("--min-share", type=float, default=0.33,
                   help="list pairs where at least this fraction of one student's code is shared (default 0.33)")
    p.add_argument("--noise", type=int, default=25, help="shortest match that counts, in filtered characters (default 25)")
    p.add_argument("--guarantee", type=int, default=30, help="matches this long are always found (default 30)")
    p.set_defaults(func=run)
