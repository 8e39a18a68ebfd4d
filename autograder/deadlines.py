"""Due dates, per-student extensions and the late-penalty policy, from one course file.

The file (`--deadlines FILE`, default `deadlines.yml` in the course root when it exists) is
the instructor's, not the book's: extensions concern single students, so keep it out of a
public repository. Its form:

    timezone: Europe/Amsterdam          # for due dates written without an offset (default UTC)
    due:
      a01-convolution: 2026-10-02 23:59
      a02-building-blocks: 2026-10-09T23:59:00+02:00
    extensions:                         # a later due date for some students
      a01-convolution:
        alice: 2026-10-05 23:59
    late_policy:                        # in the spirit of nbgrader's LateSubmissionPlugin
      method: per_day                   # none | zero | per_hour | per_day
      fraction: 0.1                     # of the assignment's points, per started hour/day late
      cap: 0.5                          # never more than this fraction of the points

A submission's time is the one the exchange's service recorded (`timestamp.txt`, written by
`autograder collect` and `watch` from the service's clock, never from the student's folder
name); a submission without one is not judged late, and the journal says so. The penalty is
never more than the score: a late zero stays zero.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

METHODS = ("none", "zero", "per_hour", "per_day")
UNIT_SECONDS = {"per_hour": 3600, "per_day": 86400}


class DeadlineError(ValueError):
    """The course file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Policy:
    method: str = "none"
    fraction: float = 0.0
    cap: float = 1.0

    def penalty(self, late_seconds: float, score: float, max_score: float) -> float:
        """Points taken from `score` for a submission `late_seconds` after its due date."""
        if late_seconds <= 0 or self.method == "none":
            return 0.0
        if self.method == "zero":
            return score
        units = math.ceil(late_seconds / UNIT_SECONDS[self.method])    # a started hour/day counts
        return min(score, self.fraction * max_score * units, self.cap * max_score)

    def describe(self) -> str:
        if self.method == "none":
            return "no penalty for late work"
        if self.method == "zero":
            return "late work earns no points"
        unit = "hour" if self.method == "per_hour" else "day"
        return (f"{self.fraction:.0%} of the points per started {unit} late, "
                f"at most {self.cap:.0%}")


@dataclass
class Deadlines:
    due: dict[str, dt.datetime]
    extensions: dict[str, dict[str, dt.datetime]]
    policy: Policy

    def due_for(self, assignment: str, student: str) -> dt.datetime | None:
        return self.extensions.get(assignment, {}).get(student) or self.due.get(assignment)

    def judge(self, assignment: str, student: str, submitted: dt.datetime | None) -> dict:
        """What the journal records: due date, submission time, seconds late (0 when on time)."""
        due = self.due_for(assignment, student)
        if due is None:
            return {}
        out = {"due": due.isoformat(), "extension": student in self.extensions.get(assignment, {})}
        if assignment in self.due:
            out["assignment_due"] = self.due[assignment].isoformat()
        if submitted is None:
            return {**out, "submitted": None, "late_seconds": 0.0,
                    "late_note": "no submission time recorded: not judged late"}
        late = max(0.0, (submitted - due).total_seconds())
        return {**out, "submitted": submitted.isoformat(), "late_seconds": late}


def _when(value, zone: dt.tzinfo, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(23, 59, 59))
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise DeadlineError(f"{where}: {value!r} is not a date and time (e.g. 2026-10-02 23:59)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def parse(data: dict, source: str = "deadlines.yml") -> Deadlines:
    """Deadlines from the file's parsed content; DeadlineError naming the key on bad input."""
    if not isinstance(data, dict):
        raise DeadlineError(f"{source}: expected keys due, extensions, late_policy")
    try:
        zone = ZoneInfo(str(data.get("timezone", "UTC")))
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds
        raise DeadlineError(f"{source}: timezone {data.get('timezone')!r} is not a time zone name") from None
    due = {str(a): _when(v, zone, f"{source}: due.{a}") for a, v in (data.get("due") or {}).items()}
    extensions = {str(a): {str(s): _when(v, zone, f"{source}: extensions.{a}.{s}") for s, v in (students or {}).items()}
                  for a, students in (data.get("extensions") or {}).items()}
    lp = data.get("late_policy") or {}
    method = str(lp.get("method", "none"))
    if method not in METHODS:
        raise DeadlineError(f"{source}: late_policy.method must be one of {', '.join(METHODS)}, not {method!r}")
    try:
        policy = Policy(method, float(lp.get("fraction", 0.0)), float(lp.get("cap", 1.0)))
    except (TypeError, ValueError):
        raise DeadlineError(f"{source}: late_policy.fraction and cap must be numbers") from None
    if not (0 <= policy.fraction <= 1 and 0 <= policy.cap <= 1):
        raise DeadlineError(f"{source}: late_policy.fraction and cap must lie between 0 and 1")
    return Deadlines(due, extensions, policy)


def load(path: Path | None) -> Deadlines | None:
    """The course file's deadlines, or None when there is no file."""
    if path is None or not Path(path).exists():
        return None
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise DeadlineError(f"{path}: not valid YAML ({exc})") from None
    return parse(data or {}, str(path))


def submission_time(notebook: Path) -> dt.datetime | None:
    """The service's time of a submission: `timestamp.txt` beside the notebook, as nbgrader
    and `autograder collect` write it ("2026-11-28 18:40:01.123456 UTC"); None without one."""
    stamp = Path(notebook).parent / "timestamp.txt"
    if not stamp.is_file() or stamp.is_symlink():
        return None
    from nbgrader.utils import parse_utc
    try:
        moment = parse_utc(stamp.read_text().strip())
    except Exception:  # noqa: BLE001 - an unreadable time is no time: not judged late
        return None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment
