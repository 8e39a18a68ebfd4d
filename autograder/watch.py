"""`autograder watch`: grade submissions as they arrive in nbgrader's exchange, and release feedback.

Stock nbgrader grades when the instructor collects; students wait until then. This
service polls the exchange's inbound folder (every `--interval` seconds) and, for each
new submission of a watched assignment:

  1. check    - the folder belongs to the student it names (the inbound folder is
                writable by every student), names are plain user names
  2. limit    - at most N gradings per student per period (`--rate 3/1h`): a submission
                over the limit gets a short "queued until HH:MM" page at once and is
                graded when the window allows (the newest one then; older queued ones
                are superseded)
  3. collect  - copy it to <output>/submitted/{student}/{assignment}/ (regular files only)
  4. grade    - `python -m autograder grade` on that folder, through the command line:
                the same sandbox, limits, tamper checks and gradebook as a batch run,
                and only changed submissions are graded again
  5. feedback - `python -m autograder feedback --detail D` (D: full / names / scores), then
                the student's page goes into the exchange under the name nbgrader's
                `fetch_feedback` looks for (autograder.exchange)

so feedback is available within one interval plus the grading time of the batch (each
notebook is bounded by `--timeout`). State (what was graded when, and the rate-limit
history) is kept in <output>/watch-state.json, written after every step, so a restarted
service neither regrades nor forgets the limits. On a hub it runs as a JupyterHub
managed service (see hub/jupyterhub_config.py); `--once` does one round and exits (for
cron, or by hand).

    autograder watch a01-convolution --exchange /srv/nbgrader/exchange --course-id dlcourse \\
        --root /srv/dlcourse --output /srv/autograder --rate 3/1h --detail names
"""
from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autograder import exchange

STATE_FILE = "watch-state.json"


@dataclass(frozen=True)
class Rate:
    """At most `count` gradings per student in any `seconds`-long window."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> "Rate":
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d+)?\s*([smhd]?)\s*", text)
        if not m or int(m.group(1)) < 1:
            raise argparse.ArgumentTypeError(f"rate must look like 3/1h, 1/10m or 5/3600s, got {text!r}")
        number = float(m.group(2) or 1)
        unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(3)]
        return cls(int(m.group(1)), number * unit)

    def next_slot(self, history: list[float], now: float) -> float:
        """When the next grading may start, given the start times of earlier ones (<= now: at once)."""
        recent = sorted(t for t in history if t > now - self.seconds)
        if len(recent) < self.count:
            return now
        return recent[-self.count] + self.seconds

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds:g} s"


class State:
    """What the watcher has done, on disk: graded and queued submissions, grading times per student."""

    def __init__(self, path: Path):
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.graded: dict[str, dict] = data.get("graded", {})      # submission key -> record
        self.queued: dict[str, float] = data.get("queued", {})     # submission key -> when it may be graded
        self.rejected: dict[str, str] = data.get("rejected", {})   # submission key -> reason
        self.history: dict[str, list[float]] = data.get("history", {})  # student -> grading start times

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"graded": self.graded, "queued": self.queued, "rejected": self.rejected,
                                   "history": self.history}, indent=1))
        os.replace(tmp, self.path)

    def seen(self, key: str) -> bool:
        return key in self.graded or key in self.rejected


def _log(msg: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[autograder watch {stamp}] {msg}", flush=True)


def queued_page(assignment: str, sub: exchange.Submission, when: float, rate: Rate) -> str:
    """What a student fetches while their submission waits for the rate limit."""
    at = datetime.datetime.fromtimestamp(when).astimezone().strftime("%H:%M %Z")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>queued</title></head><body>"
            f"<h1>{html.escape(assignment)}: your submission of {html.escape(sub.timestamp)} is queued</h1>"
            f"<p>Submissions are graded at most {rate.count} time(s) per {rate.seconds / 60:g} minutes per student. "
            f"This one will be graded at about {html.escape(at)}; fetch feedback again after that. If you submit "
            "again before then, the newer submission is graded instead.</p></body></html>")


class Watcher:
    """One polling loop over the exchange for a set of assignments."""

    def __init__(self, args):
        self.args = args
        self.output = Path(args.output).resolve()
        self.output.mkdir(parents=True, exist_ok=True)
        self.state = State(self.output / STATE_FILE)
        self.rate: Rate = args.rate

    # -------------------------------------------------------------- one round
    def round(self, now: float | None = None) -> list[dict]:
        """Look at the exchange once; grade and release what is due. Returns the records released."""
        released = []
        for assignment in self.args.assignments:
            due = self._due(assignment, time.time() if now is None else now)
            if due:
                released += self._grade(assignment, due)
        return released

    def _due(self, assignment: str, now: float) -> list[exchange.Submission]:
        """The newest unseen submission per student that the rate limit lets through now."""
        newest: dict[str, exchange.Submission] = {}
        for sub in exchange.inbound(Path(self.args.exchange), self.args.course_id, assignment):
            if self.state.seen(sub.key):
                continue
            try:
                exchange.check(sub, check_owner=not self.args.no_owner_check)
            except exchange.ExchangeError as err:
                self.state.rejected[sub.key] = str(err)
                _log(f"refused {err}")
                continue
            older = newest.get(sub.student)
            if older is not None:
                self.state.rejected[older.key] = f"superseded by {sub.key}"
                self.state.queued.pop(older.key, None)
            newest[sub.student] = sub
        due = []
        for student, sub in newest.items():
            slot = self.rate.next_slot(self.state.history.get(student, []), now)
            if slot <= now:
                due.append(sub)
                continue
            if sub.key not in self.state.queued:
                self.state.queued[sub.key] = slot
                try:
                    self._release_page(sub, queued_page(assignment, sub, slot, self.rate))
                except (exchange.ExchangeError, OSError) as err:
                    _log(f"{student}: no 'queued' page for {sub.key}: {err}")
                _log(f"{student}: {sub.key} queued until {time.strftime('%H:%M:%S', time.localtime(slot))} ({self.rate})")
        self.state.save()
        return due

    def _release_page(self, sub: exchange.Submission, page: str, notebook: str | None = None) -> None:
        secret = exchange.read_secret(sub.path)
        for name in ([notebook] if notebook else [p.stem for p in sub.path.glob("*.ipynb")]):
            exchange.release(Path(self.args.exchange), self.args.course_id, secret, name, page)

    def _grade(self, assignment: str, due: list[exchange.Submission]) -> list[dict]:
        start = time.time()
        collected = []
        for sub in due:
            try:
                exchange.collect(sub, self.output)
                collected.append(sub)
                self.state.history.setdefault(sub.student, []).append(start)
                self.state.queued.pop(sub.key, None)
            except (exchange.ExchangeError, OSError) as err:
                self.state.rejected[sub.key] = str(err)
                _log(f"refused {sub.key}: {err}")
        self.state.save()
        if not collected:
            return []
        grading = self.output / "grading" / assignment
        _log(f"grading {len(collected)} submission(s) of {assignment}: {', '.join(s.student for s in collected)}")
        a = self.args
        grade = [sys.executable, "-m", "autograder", "grade", assignment, str(self.output / "submitted"),
                 "--root", str(Path(a.root).resolve()), "--output", str(grading), "--workers", str(a.workers),
                 "--cell-timeout", str(a.cell_timeout), "--timeout", str(a.timeout), "--memory", str(a.memory),
                 "--isolation", a.isolation, "--quiet"]
        # cwd: the output folder, so `-m autograder` is this installation's, not a copy in the course root
        done = subprocess.run(grade, cwd=self.output, capture_output=True, text=True)
        sys.stdout.write(done.stdout + done.stderr)
        if done.returncode != 0:
            return self._retry_later(collected, start, f"grading failed (exit {done.returncode})")
        feedback = subprocess.run([sys.executable, "-m", "autograder", "feedback", "--output", str(grading),
                                   "--detail", a.detail], cwd=self.output, capture_output=True, text=True)
        if feedback.returncode != 0:
            sys.stdout.write(feedback.stdout + feedback.stderr)
            return self._retry_later(collected, start, "feedback failed")
        meta = json.loads((grading / "meta.json").read_text())
        released = []
        for sub in collected:
            page = grading / "feedback" / f"{sub.student}.html"
            exchange.stage_feedback(self.output, assignment, sub.student, page, meta["notebook"])
            self._release_page(sub, page.read_text(), meta["notebook"])
            record = {"student": sub.student, "assignment": assignment, "timestamp": sub.timestamp,
                      "released": time.time(), "latency_s": round(time.time() - sub.when.timestamp(), 1),
                      "grading_s": round(time.time() - start, 1)}
            self.state.graded[sub.key] = record
            released.append(record)
            _log(f"{sub.student}: feedback released {record['latency_s']} s after submission "
                 f"(batch of {len(collected)} graded in {record['grading_s']} s)")
        self.state.save()
        return released

    def _retry_later(self, collected: list[exchange.Submission], start: float, why: str) -> list[dict]:
        """A failure of the grader, not of the students: their submissions stay unseen and do not count."""
        _log(f"{why}; these submissions are tried again next round")
        for sub in collected:
            self.state.history[sub.student].remove(start)
        self.state.save()
        return []

    # -------------------------------------------------------------- the loop
    def run(self) -> int:
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        _log(f"watching {', '.join(self.args.assignments)} in {self.args.exchange}/{self.args.course_id} "
             f"every {self.args.interval:g} s; at most {self.rate} per student; feedback detail: {self.args.detail}")
        while not stop:
            try:
                self.round()
            except Exception as exc:  # noqa: BLE001 - a service keeps going; the next round retries
                _log(f"round failed: {type(exc).__name__}: {exc}")
            if self.args.once:
                break
            deadline = time.monotonic() + self.args.interval
            while not stop and time.monotonic() < deadline:
                time.sleep(min(0.5, self.args.interval))
        return 0


def _main(args) -> int:
    if not Path(args.exchange).is_dir():
        raise SystemExit(f"autograder watch: the exchange {args.exchange} does not exist")
    for assignment in args.assignments:
        if not any((Path(args.root) / "solutions" / assignment).glob("*.ipynb")):
            raise SystemExit(f"autograder watch: no source notebook in {Path(args.root) / 'solutions' / assignment}")
    return Watcher(args).run()


def register(subparsers) -> None:
    from autograder.feedback import DETAILS

    p = subparsers.add_parser("watch", help="grade submissions as they arrive in nbgrader's exchange",
                              description=__doc__.splitlines()[0])
    p.add_argument("assignments", nargs="+", metavar="ASSIGNMENT", help="assignments to grade on submission")
    p.add_argument("--exchange", default="/srv/nbgrader/exchange", help="nbgrader's exchange root (c.Exchange.root)")
    p.add_argument("--course-id", required=True, help="nbgrader course id (c.CourseDirectory.course_id)")
    p.add_argument("--root", default=".", help="course root holding solutions/ and assignments/ (default .)")
    p.add_argument("--output", default="_watch", help="the watcher's folder: submitted/, grading/, state (default _watch)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between looks at the exchange (default 5)")
    p.add_argument("--rate", type=Rate.parse, default=Rate.parse("3/1h"),
                   help="gradings per student per period, e.g. 3/1h (default), 1/10m")
    p.add_argument("--detail", choices=DETAILS, default="names",
                   help="what feedback shows: full, names (no messages; default), scores (totals only)")
    p.add_argument("--workers", type=int, default=1, help="notebooks graded at once (default 1)")
    p.add_argument("--cell-timeout", type=float, default=60.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per notebook (default 300)")
    p.add_argument("--memory", type=int, default=4096, help="MiB of address space per kernel")
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap+nobody", "bwrap", "none"])
    p.add_argument("--no-owner-check", action="store_true",
                   help="accept submissions whose folder another user made (only where all users share one uid)")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.set_defaults(func=_main)
