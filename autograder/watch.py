"""`autograder watch`: grade submissions as they arrive in nbgrader's exchange, and release feedback.

Stock nbgrader grades when the instructor collects; students wait until then. This
service looks at the exchange's inbound folder (every `--interval` seconds) and, for each
new submission of a watched assignment:

  1. check    - each inbound entry on its own: an odd name or time refuses that entry
                (recorded with the reason in the state), never the round; the folder must
                belong to the student it names; its time is when this service first saw
                it (the service's clock), never the time in the folder's name
  2. limit    - at most N gradings per student per period (`--rate 3/1h`): a submission
                over the limit gets a short "queued until HH:MM" page at once and is
                graded when the window allows (the newest one then; older queued ones
                are superseded)
  3. collect  - copy it to <output>/work/{assignment}/{student}/submitted/{student}/{assignment}/
                through autograder.safefs: no link followed, regular files the student owns
                only; a submission secret that another student's submission already used
                is refused (it would name that student's feedback page)
  4. grade    - `python -m autograder grade` on that student's folder alone, in its own
                process with a wall limit (`--wall`), up to `--workers` students at once:
                one slow notebook holds one worker for at most one grading's limit, and the
                others' feedback goes on through the other workers
  5. feedback - `python -m autograder feedback --detail D` (D: full / names / scores), then
                the student's page goes into the exchange under the name nbgrader's
                `fetch_feedback` looks for (autograder.exchange)

Everything it writes under <output> is the service's alone (umask 077: folders 0700, files
0600): the collected notebooks, their secrets, the autograded copies with the hidden tests
and the gradebooks. State (first sightings, what was graded when, refusals, the secrets in
use and the rate-limit history) is kept in <output>/watch-state.json, written after every
step, so a restarted service neither regrades nor forgets. On a hub it runs as a
JupyterHub managed service (see hub/jupyterhub_config.py); `--once` does one round, waits
for its gradings and exits (for cron, or by hand).

    autograder watch a01-convolution --exchange /srv/nbgrader/exchange --course-id dlcourse \\
        --root /srv/dlcourse --output /srv/autograder --rate 3/1h --detail names --workers 4
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
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

from autograder import exchange, safefs

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
    """What the watcher has done, on disk: sightings, graded and queued submissions, refusals,
    secrets in use and grading times per student."""

    def __init__(self, folder: Path):
        self.folder = folder
        path = folder / STATE_FILE
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.first_seen: dict[str, float] = data.get("first_seen", {})  # submission key -> service clock
        self.graded: dict[str, dict] = data.get("graded", {})      # submission key -> record
        self.queued: dict[str, float] = data.get("queued", {})     # submission key -> when it may be graded
        self.rejected: dict[str, str] = data.get("rejected", {})   # submission key -> reason
        self.secrets: dict[str, dict] = data.get("secrets", {})    # sha256(secret) -> {student, key}
        self.history: dict[str, list[float]] = data.get("history", {})  # student -> grading start times

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self) -> None:
        text = json.dumps({"first_seen": self.first_seen, "graded": self.graded, "queued": self.queued,
                           "rejected": self.rejected, "secrets": self.secrets, "history": self.history}, indent=1)
        fd = safefs.open_dir(self.folder)
        try:
            safefs.write_file(fd, STATE_FILE, text, mode=0o600)
        finally:
            os.close(fd)

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


def timeout_page(assignment: str, sub: exchange.Submission, wall: float) -> str:
    """What a student fetches when grading their submission ran past the service's wall limit."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>not graded</title></head><body>"
            f"<h1>{html.escape(assignment)}: your submission of {html.escape(sub.timestamp)} was not graded</h1>"
            f"<p>Grading it took longer than {wall:g} seconds and was stopped. Look for a cell that runs for a "
            "long time (a loop that does not end, a sleep, a large training run) and submit again.</p></body></html>")


@dataclass
class Job:
    """One student's submission being graded in its own `autograder grade` process."""

    sub: exchange.Submission
    assignment: str
    secret: str
    notebooks: list[str]  # the names (no .ipynb) in the collected copy: where feedback pages go
    work: Path
    proc: subprocess.Popen
    started: float      # the round's clock, for the rate limit's history
    began: float        # time.monotonic(), for the wall limit
    log: object


class Watcher:
    """One polling loop over the exchange for a set of assignments."""

    def __init__(self, args):
        self.args = args
        self.output = Path(args.output).resolve()
        self.output.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.output, 0o700)  # an older or hand-made folder may be wider: nothing here is for students
        self.state = State(self.output)
        self.rate: Rate = args.rate
        self.running: dict[tuple[str, str], Job] = {}   # (assignment, student) -> job
        self.retry_after: dict[str, float] = {}         # submission key -> monotonic time (grader failures)

    @property
    def wall(self) -> float:
        """Seconds one grading process may take: the notebook's limit plus start-up and bookkeeping."""
        return self.args.wall or self.args.timeout + 120

    # -------------------------------------------------------------- one round
    def round(self, now: float | None = None, wait: bool = True) -> list[dict]:
        """Look at the exchange once; start what is due; release what has finished.

        With `wait`, keep going until no grading runs (what `--once` and the tests use);
        otherwise return at once and let `run` reap the processes between looks.
        Returns the records released.
        """
        now = time.time() if now is None else now
        released = self.reap()
        self._start_due(now)
        while wait and self.running:
            time.sleep(0.2)
            released += self.reap()
            self._start_due(now)
        return released

    def _start_due(self, now: float) -> None:
        due = []
        for assignment in self.args.assignments:
            due += self._due(assignment, now)
        for sub in sorted(due, key=lambda s: (s.received, s.ctime, s.key)):  # the longest waiting first
            if len(self.running) >= max(1, self.args.workers):
                break
            self._start(sub, now)
        self.state.save()

    def _due(self, assignment: str, now: float) -> list[exchange.Submission]:
        """The newest unseen submission per student that the rate limit lets through now."""
        def received(key: str, ctime: float) -> float:
            return self.state.first_seen.setdefault(key, now)  # the service's clock, recorded once

        try:
            subs, refused = exchange.inbound(Path(self.args.exchange), self.args.course_id, assignment, received)
        except exchange.ExchangeError as err:
            _log(f"cannot read the exchange: {err}")
            return []
        for r in refused:
            if r.key not in self.state.rejected:
                self.state.rejected[r.key] = r.reason
                _log(f"refused {r.reason}")
        newest: dict[str, exchange.Submission] = {}
        for sub in subs:
            if self.state.seen(sub.key) or self.retry_after.get(sub.key, 0) > time.monotonic():
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
            if (assignment, student) in self.running:
                continue  # their previous submission is still being graded: this one waits for it
            slot = self.rate.next_slot(self.state.history.get(student, []), now)
            if slot <= now:
                due.append(sub)
                continue
            if sub.key not in self.state.queued:
                # checked now, not when its turn comes: a refusal is said at once
                try:
                    exchange.inspect(sub, check_owner=not self.args.no_owner_check)
                    secret = exchange.read_secret(sub, check_owner=not self.args.no_owner_check)
                    self._claim_secret(sub, secret)
                except (exchange.ExchangeError, OSError) as err:
                    self.state.rejected[sub.key] = str(err)
                    _log(f"refused {err}")
                    continue
                self.state.queued[sub.key] = slot
                try:
                    for name in exchange.notebooks_of(sub, check_owner=not self.args.no_owner_check):
                        exchange.release(Path(self.args.exchange), self.args.course_id, secret, name,
                                         queued_page(assignment, sub, slot, self.rate))
                except (exchange.ExchangeError, OSError) as err:
                    _log(f"{student}: no 'queued' page for {sub.key}: {err}")
                _log(f"{student}: {sub.key} queued until {time.strftime('%H:%M:%S', time.localtime(slot))} ({self.rate})")
        return due

    def _claim_secret(self, sub: exchange.Submission, secret: str) -> None:
        """Refuse a secret that another student's submission used first.

        The feedback page's name is md5(secret + notebook), and nbgrader's fetch_feedback
        looks it up with the secret of the student's own submission. A student who copies a
        classmate's secret into their own submission would have their feedback written under
        the classmate's name. The page's name cannot be changed without changing nbgrader on
        the students' side, so the secret is bound to the first student who used it.
        """
        digest = hashlib.sha256(secret.encode()).hexdigest()
        holder = self.state.secrets.get(digest)
        if holder is not None and holder["student"] != sub.student:
            raise exchange.ExchangeError(f"{sub.key}: its submission secret was already used by another student's "
                                         f"submission ({holder['key']}); not graded")
        self.state.secrets.setdefault(digest, {"student": sub.student, "key": sub.key})

    def _start(self, sub: exchange.Submission, now: float) -> None:
        """Collect one submission and start its grading process."""
        a = self.args
        check_owner = not a.no_owner_check
        try:
            fd = safefs.make_dirs(self.output, "work", sub.assignment, sub.student)
            os.close(fd)
            work = self.output / "work" / sub.assignment / sub.student
            collected = exchange.collect(sub, work, check_owner=check_owner)
            secret = exchange.check_secret(sub.key, (collected / "submission_secret.txt").read_bytes())
            self._claim_secret(sub, secret)
            notebooks = sorted(p.stem for p in collected.glob("*.ipynb")) or [sub.assignment]
        except (exchange.ExchangeError, safefs.Unsafe, OSError) as err:
            self.state.rejected[sub.key] = str(err)
            self.state.queued.pop(sub.key, None)
            _log(f"refused {sub.key}: {err}")
            return
        self.state.history.setdefault(sub.student, []).append(now)
        self.state.queued.pop(sub.key, None)
        grade = [sys.executable, "-m", "autograder", "grade", sub.assignment, str(work / "submitted"),
                 "--root", str(Path(a.root).resolve()), "--output", str(work / "grading"), "--workers", "1",
                 "--threads", str(a.threads), "--cell-timeout", str(a.cell_timeout), "--timeout", str(a.timeout),
                 "--memory", str(a.memory), "--isolation", a.isolation, "--quiet"]
        log = open(os.open(work / "grade.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb")
        # cwd: the output folder, so `-m autograder` is this installation's, not a copy in the course root;
        # a session of its own, so that the wall limit stops the grader and every process it started
        proc = subprocess.Popen(grade, cwd=self.output, stdout=log, stderr=subprocess.STDOUT, umask=0o077,
                                start_new_session=True)
        self.running[(sub.assignment, sub.student)] = Job(sub, sub.assignment, secret, notebooks, work, proc, now,
                                                          time.monotonic(), log)
        _log(f"{sub.student}: grading {sub.key} ({len(self.running)} of {max(1, a.workers)} workers busy)")

    def reap(self) -> list[dict]:
        """Finish the gradings that ended (or ran past the wall limit); returns the records released."""
        released = []
        for key, job in list(self.running.items()):
            rc = job.proc.poll()
            timed_out = False
            if rc is None:
                if time.monotonic() - job.began <= self.wall:
                    continue
                _stop(job.proc)
                timed_out = True
            del self.running[key]
            job.log.close()
            try:
                record = self._finish(job, rc, timed_out)
            except Exception as exc:  # noqa: BLE001 - one student's release never stops the others'
                _log(f"{job.sub.student}: releasing {job.sub.key} failed: {type(exc).__name__}: {exc}")
                record = self._retry_later(job, f"release failed ({type(exc).__name__})")
            if record:
                released.append(record)
        if released:
            self.state.save()
        return released

    def _finish(self, job: Job, rc: int | None, timed_out: bool) -> dict | None:
        sub, a = job.sub, self.args
        grading = job.work / "grading"
        if timed_out:
            page, status = timeout_page(job.assignment, sub, self.wall), "stopped at the wall limit"
            names = job.notebooks
        else:
            if rc != 0:
                sys.stdout.write(_tail(job.work / "grade.log"))
                return self._retry_later(job, f"grading failed (exit {rc})")
            feedback = subprocess.run([sys.executable, "-m", "autograder", "feedback", "--output", str(grading),
                                       "--detail", a.detail], cwd=self.output, capture_output=True, text=True,
                                      umask=0o077, timeout=300)
            if feedback.returncode != 0:
                sys.stdout.write(feedback.stdout + feedback.stderr)
                return self._retry_later(job, "feedback failed")
            meta = json.loads((grading / "meta.json").read_text())
            page_path = grading / "feedback" / f"{sub.student}.html"
            exchange.stage_feedback(job.work, job.assignment, sub.student, page_path, meta["notebook"],
                                    page_mode=0o600)  # the service releases it itself, not nbgrader
            page, status, names = page_path.read_text(), "graded", [meta["notebook"]]
        for name in names:
            exchange.release(Path(a.exchange), a.course_id, job.secret, name, page)
        released = time.time()
        record = {"student": sub.student, "assignment": job.assignment, "timestamp": sub.timestamp,
                  "claimed": sub.claimed, "status": status, "released": released,
                  "latency_s": round(released - sub.received, 1),
                  "grading_s": round(time.monotonic() - job.began, 1)}
        self.state.graded[sub.key] = record
        self.state.save()
        _log(f"{sub.student}: feedback released {record['latency_s']} s after the submission was seen "
             f"({status} in {record['grading_s']} s)")
        return record

    def _retry_later(self, job: Job, why: str) -> None:
        """A failure of the grader, not of the student: the submission stays unseen and does not count."""
        _log(f"{job.sub.student}: {why}; {job.sub.key} is tried again in a minute")
        history = self.state.history.get(job.sub.student, [])
        if job.started in history:
            history.remove(job.started)
        self.retry_after[job.sub.key] = time.monotonic() + 60
        self.state.save()
        return None

    def stop_all(self) -> None:
        for job in self.running.values():
            _stop(job.proc)
            job.log.close()
        self.running.clear()

    # -------------------------------------------------------------- the loop
    def run(self) -> int:
        stop = []
        # JupyterHub stops a managed service with SIGTERM or SIGINT: finish the look, stop the gradings
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        signal.signal(signal.SIGINT, lambda *_: stop.append(True))
        _log(f"watching {', '.join(self.args.assignments)} in {self.args.exchange}/{self.args.course_id} "
             f"every {self.args.interval:g} s; at most {self.rate} per student; {max(1, self.args.workers)} "
             f"worker(s), {self.wall:g} s per grading; feedback detail: {self.args.detail}")
        try:
            while not stop:
                try:
                    self.round(wait=self.args.once)
                except Exception as exc:  # noqa: BLE001 - a service keeps going; the next round retries
                    _log(f"round failed: {type(exc).__name__}: {exc}")
                if self.args.once:
                    break
                deadline = time.monotonic() + self.args.interval
                while not stop and time.monotonic() < deadline:
                    time.sleep(min(0.5, self.args.interval))
                    try:
                        if self.reap():
                            break  # a worker is free: look at the exchange again now
                    except Exception as exc:  # noqa: BLE001
                        _log(f"reaping failed: {type(exc).__name__}: {exc}")
        finally:
            self.stop_all()
        return 0


def _stop(proc: subprocess.Popen) -> None:
    """Kill a grading process and everything it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _main(args) -> int:
    # everything this service writes is for the instructor's eyes only (the exchange pages
    # get their modes explicitly)
    os.umask(0o077)
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
    p.add_argument("--workers", type=int, default=1,
                   help="students graded at once, each in its own process (default 1; about one per two cores)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per notebook (default 1)")
    p.add_argument("--wall", type=float, default=0.0,
                   help="seconds one grading process may run before it is stopped (default: --timeout + 120)")
    p.add_argument("--cell-timeout", type=float, default=60.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per notebook (default 300)")
    p.add_argument("--memory", type=int, default=4096, help="MiB of address space per kernel")
    p.add_argument("--isolation", default="auto", choices=["auto", "bwrap+nobody", "bwrap", "none"])
    p.add_argument("--no-owner-check", action="store_true",
                   help="accept submissions whose folder another user made (only where all users share one uid)")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.set_defaults(func=_main)
