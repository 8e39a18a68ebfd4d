"""nbgrader's exchange, read and written the way nbgrader's own commands do.

On a JupyterHub the course's files travel through a shared folder, the exchange
(`c.Exchange.root`, e.g. /srv/nbgrader/exchange):

    <root>/<course>/outbound/<assignment>/       released assignments (instructor -> students)
    <root>/<course>/inbound/<student>+<assignment>+<timestamp>+<random>/
                                                  submissions (0733: students can write, not list)
    <root>/<course>/feedback/<md5(secret + notebook)>.html
                                                  feedback (0711: a student reads only the file
                                                  whose name their own submission's secret gives)

This module lets the autograder take part: it lists submissions in `inbound/`, copies one
into the instructor's `submitted/{student}/{assignment}/` (what `nbgrader collect` does),
lays `autograder feedback` pages out as `feedback/{student}/{assignment}/{notebook}.html`
with the submission's `timestamp.txt` and `submission_secret.txt` (what `nbgrader
generate_feedback` would leave for `nbgrader release_feedback`), and releases a page into
the exchange under the name nbgrader's `fetch_feedback` looks for. Students fetch with
stock nbgrader; nothing on their side changes.

    autograder release-feedback ASSIGNMENT --output _grading [--course-dir .]

stages the pages of a graded batch and runs `nbgrader release_feedback` on them: the last
step of the hub workflow (collect, `autograder grade`, `autograder feedback`, this).

Submissions are student-controlled files read by the instructor (or by root, in
`autograder watch`): a submission folder must belong to the student it names, student
names must be plain user names, and only regular files are copied (no symlinks, no
devices), up to a size cap.
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# A student id as nbgrader's exchange uses it: the Unix user name. Anything else in a
# folder name is refused before it becomes part of a path.
STUDENT_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024  # per submission; notebooks are far smaller


class ExchangeError(Exception):
    """A submission cannot be taken from the exchange; the message says which and why."""


@dataclass(frozen=True)
class Submission:
    """One folder in `inbound/`: who submitted which assignment when."""

    student: str
    assignment: str
    timestamp: str  # as nbgrader wrote it, e.g. "2026-11-28 18:40:01.123456 UTC"
    path: Path

    @property
    def key(self) -> str:
        """The folder's name: unique per submission."""
        return self.path.name

    @property
    def when(self) -> datetime.datetime:
        from nbgrader.utils import parse_utc

        return parse_utc(self.timestamp)


def course_path(root: Path, course_id: str) -> Path:
    return Path(root) / course_id


def inbound(root: Path, course_id: str, assignment: str | None = None) -> list[Submission]:
    """Every well-formed submission in the course's inbound folder, oldest first."""
    folder = course_path(root, course_id) / "inbound"
    found = []
    if not folder.is_dir():
        return found
    for entry in os.scandir(folder):
        parts = entry.name.rsplit("+", 3)
        if len(parts) != 4 or not entry.is_dir(follow_symlinks=False):
            continue
        student, name, timestamp, _ = parts
        if assignment is not None and name != assignment:
            continue
        found.append(Submission(student, name, timestamp, Path(entry.path)))
    return sorted(found, key=lambda s: (s.when, s.key))


def check(sub: Submission, check_owner: bool = True) -> None:
    """Refuse a submission whose name is not a user name or whose folder another user made.

    The inbound folder is writable by every student; without the owner check, one student
    could submit in another's name.
    """
    if not STUDENT_ID.match(sub.student):
        raise ExchangeError(f"{sub.key}: {sub.student!r} is not a user name")
    if check_owner:
        import pwd

        uid = os.lstat(sub.path).st_uid
        try:
            owner = pwd.getpwuid(uid).pw_name
        except KeyError:
            owner = f"uid {uid}"
        if owner != sub.student:
            raise ExchangeError(f"{sub.key}: submitted in the name of {sub.student} but made by {owner}")


def _copy_regular_files(src: Path, dest: Path) -> None:
    """Copy the regular files under src (no symlinks or special files), within the size cap."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)) and d != ".ipynb_checkpoints"]
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            if total > MAX_SUBMISSION_BYTES:
                raise ExchangeError(f"{src.name}: more than {MAX_SUBMISSION_BYTES // 2**20} MiB")
            # open without following a link that may have replaced the file since lstat
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(dest / rel / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)


def read_secret(folder: Path) -> str:
    """A submission's `submission_secret.txt`, refusing a symlink (the folder is the student's)."""
    try:
        fd = os.open(Path(folder) / "submission_secret.txt", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise ExchangeError(f"{Path(folder).name}: no readable submission_secret.txt ({err.strerror})") from err
    with os.fdopen(fd) as fh:
        return fh.read(1024)


def collect(sub: Submission, course_dir: Path) -> Path:
    """Copy a submission to `course_dir/submitted/{student}/{assignment}/` (replacing an older one)."""
    dest = Path(course_dir) / "submitted" / sub.student / sub.assignment
    staging = dest.with_name(dest.name + ".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _copy_regular_files(sub.path, staging)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not (staging / "submission_secret.txt").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise ExchangeError(f"{sub.key}: no submission_secret.txt (not made by `nbgrader submit`)")
    (staging / "timestamp.txt").write_text(sub.timestamp)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def stage_feedback(course_dir: Path, assignment: str, student: str, page: Path, notebook: str) -> Path:
    """Put one feedback page where `nbgrader release_feedback` looks for it.

    `feedback/{student}/{assignment}/{notebook}.html`, with the timestamp and secret of the
    submission it belongs to (copied from `submitted/`).
    """
    submitted = Path(course_dir) / "submitted" / student / assignment
    dest = Path(course_dir) / "feedback" / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("timestamp.txt", "submission_secret.txt"):
        shutil.copyfile(submitted / name, dest / name)
    target = dest / f"{notebook}.html"
    shutil.copyfile(page, target)
    return target


def feedback_name(secret: str, notebook: str) -> str:
    """The file name nbgrader's fetch_feedback looks for: md5 of the secret and the notebook's name."""
    from nbgrader.utils import notebook_hash

    return f"{notebook_hash(secret=secret, notebook_id=notebook)}.html"


def release(root: Path, course_id: str, secret: str, notebook: str, html: str) -> Path:
    """Write one feedback page into the exchange, atomically, readable by whoever knows its name."""
    folder = course_path(root, course_id) / "feedback"
    if not folder.is_dir():
        folder.mkdir(mode=0o711)
        os.chmod(folder, 0o711)  # as nbgrader makes it: others may open a file, not list the folder
        if os.geteuid() == 0:  # the watch service: hand it to the course's owner, who releases by hand too
            owner = folder.parent.stat()
            os.chown(folder, owner.st_uid, owner.st_gid)
    target = folder / feedback_name(secret, notebook)
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    tmp.write_text(html)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------- the command
def _release_feedback(args) -> int:
    from autograder.results import load

    output, course_dir = Path(args.output).resolve(), Path(args.course_dir).resolve()
    meta, entries = load(output)
    if meta["assignment"] != args.assignment:
        raise SystemExit(f"{output} holds grades of {meta['assignment']}, not {args.assignment}")
    staged = 0
    for student in entries:
        page = output / "feedback" / f"{student}.html"
        if not page.is_file():
            raise SystemExit(f"no feedback page {page}: run `autograder feedback --output {args.output}` first")
        if not (course_dir / "submitted" / student / args.assignment / "submission_secret.txt").is_file():
            print(f"{student}: not collected from the exchange (no submission_secret.txt): skipped", file=sys.stderr)
            continue
        stage_feedback(course_dir, args.assignment, student, page, meta["notebook"])
        staged += 1
    print(f"staged feedback for {staged} students in {course_dir / 'feedback'}")
    cmd = [sys.executable, "-m", "nbgrader", "release_feedback", args.assignment]
    return subprocess.run(cmd, cwd=course_dir).returncode


def register(subparsers) -> None:
    p = subparsers.add_parser("release-feedback", help="send feedback pages back through nbgrader's exchange",
                              description=__doc__.splitlines()[0])
    p.add_argument("assignment")
    p.add_argument("--output", default="_grading", help="the grading folder `autograder feedback` wrote into")
    p.add_argument("--course-dir", default=".", help="nbgrader course directory holding submitted/ (default .)")
    p.set_defaults(func=_release_feedback)
