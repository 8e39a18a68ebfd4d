"""nbgrader's exchange, read and written the way nbgrader's own commands do, safe against its users.

On a JupyterHub the course's files travel through a shared folder, the exchange
(`c.Exchange.root`, e.g. /srv/nbgrader/exchange):

    <root>/                                       0755 root (or 1777 where nbgrader may make courses)
    <root>/<course>/                              0755, the instructor's: students cannot rename or replace it
    <root>/<course>/outbound/<assignment>/        released assignments (instructor -> students)
    <root>/<course>/inbound/<student>+<assignment>+<timestamp>+<random>/
                                                  submissions (3733: students can write, not list,
                                                  and, with the sticky bit, not rename or delete
                                                  another student's folder)
    <root>/<course>/feedback/<md5(secret + notebook)>.html
                                                  feedback (0711: a student reads only the file
                                                  whose name their own submission's secret gives)

This module lets the autograder take part: it lists submissions in `inbound/`, copies one
into a private `submitted/{student}/{assignment}/` (what `nbgrader collect` does, without
following links: `autograder collect`), lays `autograder feedback` pages out as
`feedback/{student}/{assignment}/{notebook}.html` with the submission's `timestamp.txt` and
`submission_secret.txt` (what `nbgrader generate_feedback` would leave for `nbgrader
release_feedback`), and releases a page into the exchange under the name nbgrader's
`fetch_feedback` looks for. Students fetch with stock nbgrader; nothing on their side changes.

    autograder collect ASSIGNMENT [--course-dir .] [--exchange ROOT --course-id ID]
    autograder release-feedback ASSIGNMENT --output _grading [--course-dir .]

Submissions are student-controlled files read by the instructor (by hand, or through
`autograder watch`, which runs as the instructor's account on the course's hub), so:
- each inbound entry is judged on its own: an odd name or an unreadable time refuses that
  entry (`Refusal`), never the listing;
- a submission's time is the service's (when `watch` first saw it) or the folder's ctime
  (`autograder collect`), never the time in the folder's name, which the student chose;
- the folder and every file in it must belong to the student it names, and student names
  must be plain user names;
- everything is opened through `autograder.safefs`: component by component without
  following links, regular files only, up to a size cap; what is written into the
  exchange is created exclusively under a random name and renamed into place;
- what is collected is private (folders 0700, files 0600).
"""
from __future__ import annotations

import datetime
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autograder import safefs

# A student id as nbgrader's exchange uses it: the Unix user name. Anything else in a
# folder name is refused before it becomes part of a path.
STUDENT_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# nbgrader's submit writes secrets.token_hex(64); a shorter or odd one was not made by it
SECRET = re.compile(r"^[0-9a-f]{32,256}$")
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024  # per submission; notebooks are far smaller
MAX_SUBMISSION_ENTRIES = 1000
SKIP = frozenset({".ipynb_checkpoints"})  # Jupyter's autosaves, never graded


class ExchangeError(Exception):
    """A submission cannot be taken from the exchange; the message says which and why."""


@dataclass(frozen=True)
class Submission:
    """One folder in `inbound/`: who submitted which assignment, and when the service got it.

    `received` (seconds since the epoch) is the time the grading side trusts; `claimed`
    is the time in the folder's name, written by the student's nbgrader and kept only to
    be shown (a student can name a folder 2099 or last Monday).
    """

    student: str
    assignment: str
    claimed: str
    path: Path
    uid: int
    received: float
    ctime: float = 0.0  # the folder's, to order submissions the service first saw in the same look

    @property
    def key(self) -> str:
        """The folder's name: unique per submission."""
        return self.path.name

    @property
    def when(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.received, datetime.timezone.utc)

    @property
    def timestamp(self) -> str:
        """`received` as nbgrader writes timestamps, e.g. "2026-11-28 18:40:01.123456 UTC"."""
        return self.when.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


@dataclass(frozen=True)
class Refusal:
    """An inbound entry that is not a submission the grader can take, and why."""

    key: str
    reason: str


def course_path(root: Path, course_id: str) -> Path:
    return Path(root) / course_id


def _parse_name(name: str) -> tuple[str, str, str]:
    """(student, assignment, claimed time) from `student+assignment+time+random`; ExchangeError if odd."""
    from nbgrader.utils import parse_utc

    parts = name.split("+")
    if len(parts) != 4:
        raise ExchangeError(f"{name}: not a submission folder name (student+assignment+time+random)")
    student, assignment, claimed, _ = parts
    if not STUDENT_ID.match(student):
        raise ExchangeError(f"{name}: {student!r} is not a user name")
    try:
        parse_utc(claimed)
    except Exception as err:  # noqa: BLE001 - dateutil raises several kinds; any of them refuses this entry only
        raise ExchangeError(f"{name}: unreadable time {claimed!r} ({type(err).__name__})") from None
    return student, assignment, claimed


def inbound(root: Path, course_id: str, assignment: str | None = None,
            received: Callable[[str, float], float] | None = None) -> tuple[list[Submission], list[Refusal]]:
    """The course's inbound folder: (submissions oldest first, refused entries).

    Each entry is judged on its own, so one odd folder never hides the others. An entry of
    another assignment is left out silently; one whose name, time or type is wrong is a
    `Refusal` with the reason. `received(key, ctime)` gives the time the service trusts for
    a submission (`watch`: when it first saw the folder); by default the folder's ctime,
    which the kernel sets when the folder is made or changed and no user can set back.
    """
    try:
        fd = safefs.open_dir(root, course_id, "inbound")
    except safefs.Unsafe as err:
        if "does not exist" in str(err):
            return [], []
        raise ExchangeError(f"the course's inbound folder: {err}") from None
    found, refused = [], []
    folder = course_path(root, course_id) / "inbound"
    try:
        for name in os.listdir(fd):
            try:
                student, name_assignment, claimed = _parse_name(name)
                if assignment is not None and name_assignment != assignment:
                    continue
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode):
                    raise ExchangeError(f"{name}: not a folder")
            except (ExchangeError, OSError) as err:
                refused.append(Refusal(name, str(err)))
                continue
            when = received(name, info.st_ctime) if received else info.st_ctime
            found.append(Submission(student, name_assignment, claimed, folder / name, info.st_uid, when,
                                    info.st_ctime))
    finally:
        os.close(fd)
    return sorted(found, key=lambda s: (s.received, s.ctime, s.key)), refused


def _uid_of(student: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(student).pw_uid
    except KeyError:
        return None


def _name_of(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check(sub: Submission, check_owner: bool = True) -> None:
    """Refuse a submission whose name is not a user name or whose folder another user made.

    The inbound folder is writable by every student; without the owner check, one student
    could submit in another's name. (`collect` checks every file inside as well.)
    """
    if not STUDENT_ID.match(sub.student):
        raise ExchangeError(f"{sub.key}: {sub.student!r} is not a user name")
    if check_owner and _uid_of(sub.student) != sub.uid:
        raise ExchangeError(f"{sub.key}: submitted in the name of {sub.student} but made by {_name_of(sub.uid)}")


def _open_submission(sub: Submission, check_owner: bool) -> int:
    """The submission's folder, reached without links, still owned by whom `inbound` saw."""
    inbound_dir = sub.path.parent
    try:
        fd = safefs.open_dir(inbound_dir.parent.parent, inbound_dir.parent.name, "inbound", sub.key)
    except safefs.Unsafe as err:
        raise ExchangeError(f"{sub.key}: {err}") from None
    if check_owner and os.fstat(fd).st_uid != sub.uid:
        os.close(fd)
        raise ExchangeError(f"{sub.key}: the folder changed owner while it was read")
    return fd


def check_secret(key: str, raw: bytes) -> str:
    """A submission secret as nbgrader makes it (hex), or ExchangeError naming the submission."""
    secret = raw.decode("ascii", "replace").strip()
    if not SECRET.match(secret):
        raise ExchangeError(f"{key}: submission_secret.txt is not a secret made by `nbgrader submit`")
    return secret


def read_secret(sub: Submission, check_owner: bool = True) -> str:
    """A submission's `submission_secret.txt`, read without following links, from the student's own file."""
    fd = _open_submission(sub, check_owner)
    try:
        raw = safefs.read_file(fd, "submission_secret.txt", 1024, owner_uid=sub.uid if check_owner else None)
    except safefs.Unsafe as err:
        raise ExchangeError(f"{sub.key}: no usable submission_secret.txt ({err})") from None
    finally:
        os.close(fd)
    return check_secret(sub.key, raw)


def inspect(sub: Submission, check_owner: bool = True) -> None:
    """Refuse, as `collect` would, a submission with a link, special file, file of another user or
    no real secret, without copying it (for a submission that waits in the rate limit's queue)."""
    fd = _open_submission(sub, check_owner)
    try:
        safefs.copy_tree(fd, None, limit=MAX_SUBMISSION_BYTES, owner_uid=sub.uid if check_owner else None,
                         max_entries=MAX_SUBMISSION_ENTRIES, skip=SKIP)
    except safefs.Unsafe as err:
        raise ExchangeError(f"{sub.key}: refused: {err}") from None
    finally:
        os.close(fd)


def notebooks_of(sub: Submission, check_owner: bool = True) -> list[str]:
    """The names (without .ipynb) of the notebooks at the top of a submission folder."""
    fd = _open_submission(sub, check_owner)
    try:
        return sorted(n[:-len(".ipynb")] for n in os.listdir(fd) if n.endswith(".ipynb") and len(n) > len(".ipynb"))
    finally:
        os.close(fd)


def collect(sub: Submission, course_dir: Path, check_owner: bool = True) -> Path:
    """Copy a submission to `course_dir/submitted/{student}/{assignment}/` (replacing an older one).

    The copy walks the student's folder by descriptors (autograder.safefs.copy_tree): a
    link, FIFO or device anywhere, a file another user owns (with `check_owner`), or more
    than MAX_SUBMISSION_BYTES refuses the whole submission with the reason; nothing is
    followed out of the folder. The copy is private (0700/0600) and is put in place by a
    rename, so a reader sees the old one or the complete new one. `timestamp.txt` is the
    service's time (`sub.timestamp`), not the one the student's folder holds.
    """
    src = _open_submission(sub, check_owner)
    parent = None
    staging = f".{sub.assignment}.incoming-{os.urandom(6).hex()}"
    try:
        Path(course_dir).mkdir(parents=True, exist_ok=True, mode=0o700)  # the caller's own folder
        parent = safefs.make_dirs(course_dir, "submitted", sub.student)
        out = safefs.make_dir(parent, staging)
        try:
            safefs.copy_tree(src, out, limit=MAX_SUBMISSION_BYTES, owner_uid=sub.uid if check_owner else None,
                             max_entries=MAX_SUBMISSION_ENTRIES, skip=SKIP)
            try:
                check_secret(sub.key, safefs.read_file(out, "submission_secret.txt", 1024))
            except safefs.Unsafe:
                raise ExchangeError(f"{sub.key}: no submission_secret.txt (not made by `nbgrader submit`)") from None
            safefs.write_file(out, "timestamp.txt", sub.timestamp)
        finally:
            os.close(out)
        safefs.remove_tree(parent, sub.assignment)
        os.rename(staging, sub.assignment, src_dir_fd=parent, dst_dir_fd=parent)
    except safefs.Unsafe as err:
        if parent is not None:
            safefs.remove_tree(parent, staging)
        raise ExchangeError(f"{sub.key}: refused: {err}") from None
    except BaseException:
        if parent is not None:
            safefs.remove_tree(parent, staging)
        raise
    finally:
        os.close(src)
        if parent is not None:
            os.close(parent)
    return Path(course_dir) / "submitted" / sub.student / sub.assignment


def stage_feedback(course_dir: Path, assignment: str, student: str, page: Path, notebook: str,
                   page_mode: int = 0o644) -> Path:
    """Put one feedback page where `nbgrader release_feedback` looks for it.

    `feedback/{student}/{assignment}/{notebook}.html`, with the timestamp and secret of the
    submission it belongs to (copied from `submitted/`). Both folders are the instructor's
    own (or the service's), made private; nothing here is student-writable.
    """
    submitted = safefs.open_dir(course_dir, "submitted", student, assignment)
    dest = safefs.make_dirs(course_dir, "feedback", student, assignment)
    try:
        for name in ("timestamp.txt", "submission_secret.txt"):
            safefs.write_file(dest, name, safefs.read_file(submitted, name, 4096))
        # 0644 as nbgrader's generate_feedback leaves it: release_feedback copies the mode into the
        # exchange, where the student opens the page by name (the folders here are 0700)
        safefs.write_file(dest, f"{notebook}.html", Path(page).read_bytes(), mode=page_mode)
    finally:
        os.close(submitted)
        os.close(dest)
    return Path(course_dir) / "feedback" / student / assignment / f"{notebook}.html"


def feedback_name(secret: str, notebook: str) -> str:
    """The file name nbgrader's fetch_feedback looks for: md5 of the secret and the notebook's name."""
    from nbgrader.utils import notebook_hash

    return f"{notebook_hash(secret=secret, notebook_id=notebook)}.html"


def release(root: Path, course_id: str, secret: str, notebook: str, html: str) -> Path:
    """Write one feedback page into the exchange, atomically, readable by whoever knows its name.

    `feedback/` is made as nbgrader makes it (0711: others may open a file, not list the
    folder), owned by the course folder's owner; one that belongs to anybody else (a
    student who made it to read every page) is refused. The page is written under a random
    exclusive name and renamed into place (autograder.safefs.write_file), so a link planted
    in the folder is replaced, never written through.
    """
    try:
        course = safefs.open_dir(root, course_id)
    except safefs.Unsafe as err:
        raise ExchangeError(f"the course folder: {err}") from None
    try:
        owner = os.fstat(course)
        try:
            os.mkdir("feedback", 0o711, dir_fd=course)
            made = True
        except FileExistsError:
            made = False
        try:
            folder = os.open("feedback", safefs.DIR_FLAGS, dir_fd=course)
        except OSError as err:
            raise ExchangeError(f"{course_id}/feedback: {err.strerror}; not releasing into it") from None
        try:
            if made:
                os.fchmod(folder, 0o711)
                if os.geteuid() == 0:  # the watch service: hand it to the course's owner, who releases by hand too
                    os.fchown(folder, owner.st_uid, owner.st_gid)
            info = os.fstat(folder)
            if info.st_uid not in (owner.st_uid, os.geteuid()):
                raise ExchangeError(f"{course_id}/feedback belongs to {_name_of(info.st_uid)}, not to the course's "
                                    f"owner: not releasing into it")
            if info.st_mode & 0o022:
                raise ExchangeError(f"{course_id}/feedback is writable by others (mode {stat.S_IMODE(info.st_mode):o}):"
                                    " not releasing into it")
            name = feedback_name(secret, notebook)
            safefs.write_file(folder, name, html, mode=0o644)
        finally:
            os.close(folder)
    finally:
        os.close(course)
    return course_path(root, course_id) / "feedback" / name


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


def _collect(args) -> int:
    """The newest submission of each student, copied link-safely into `submitted/` (nbgrader's layout)."""
    if not args.course_id:
        raise SystemExit("autograder collect: give --course-id (or set DLCOURSE_COURSE_ID)")
    course_dir = Path(args.course_dir).resolve()
    subs, refused = inbound(Path(args.exchange), args.course_id, args.assignment)
    for r in refused:
        print(f"refused {r.key}: {r.reason}", file=sys.stderr)
    by_student: dict[str, list[Submission]] = {}
    for sub in subs:
        try:
            check(sub, check_owner=not args.no_owner_check)
        except ExchangeError as err:
            print(f"refused {err}", file=sys.stderr)
            continue
        by_student.setdefault(sub.student, []).append(sub)
    collected = 0
    for student, theirs in sorted(by_student.items()):
        for sub in reversed(theirs):  # newest (by the folder's ctime) first; an older one if it is refused
            try:
                collect(sub, course_dir, check_owner=not args.no_owner_check)
            except ExchangeError as err:
                print(f"refused {err}", file=sys.stderr)
                continue
            collected += 1
            print(f"{student}: collected {sub.key} (received {sub.timestamp})")
            break
    print(f"collected {collected} of {len(by_student)} students' submissions of {args.assignment} into "
          f"{course_dir / 'submitted'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("release-feedback", help="send feedback pages back through nbgrader's exchange",
                              description=__doc__.splitlines()[0])
    p.add_argument("assignment")
    p.add_argument("--output", default="_grading", help="the grading folder `autograder feedback` wrote into")
    p.add_argument("--course-dir", default=".", help="nbgrader course directory holding submitted/ (default .)")
    p.set_defaults(func=_release_feedback)

    p = subparsers.add_parser("collect", help="collect submissions from nbgrader's exchange without following links",
                              description="What `nbgrader collect` does, safely: the newest submission of each "
                                          "student into submitted/{student}/{assignment}/, links, special files and "
                                          "files of other users refused, the time taken from the folder's ctime.")
    p.add_argument("assignment")
    p.add_argument("--course-dir", default=".", help="nbgrader course directory to collect into (default .)")
    p.add_argument("--exchange", default=os.environ.get("DLCOURSE_EXCHANGE", "/srv/nbgrader/exchange"),
                   help="nbgrader's exchange root (default $DLCOURSE_EXCHANGE or /srv/nbgrader/exchange)")
    p.add_argument("--course-id", default=os.environ.get("DLCOURSE_COURSE_ID"),
                   help="the course's id in the exchange (default $DLCOURSE_COURSE_ID)")
    p.add_argument("--no-owner-check", action="store_true",
                   help="accept folders and files another user made (only where all users share one uid)")
    p.set_defaults(func=_collect)
