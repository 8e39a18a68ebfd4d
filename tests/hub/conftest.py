"""The course on a real JupyterHub, set up once per test session and shared by the hub tests.

What an instructor setting up a course on one machine does, done by the fixture:

- local accounts: an instructor and three students, in the Unix groups the hub admits
  (made with useradd; removed afterwards);
- the users' environment (hub/jupyterhub_config.py's DLCOURSE_USER_ENV): an interpreter
  every user can run, this project's packages, the course (library and autograder)
  installed from the wheel the book publishes, and the course's settings from hub/image/;
  readable by all, uid 65534 included, so it is also the watch service's interpreter (the
  configuration's default), and the service's kernels run at the "bwrap+nobody" level;
- the data cache of the watch's kernels (DLCOURSE_DATA_DIR): MNIST's test set copied from
  this machine's cache or offline mirror (never downloaded), left private (folder 0700,
  files 0600) as a download by root leaves it, for the hub to make readable at start;
- the kernel group and the sudoers rule of the guide's step 3 (`hubkit.allow_kernels`): the
  watch service runs as the instructor, never root, and reaches uid 65534 for its kernels
  through them;
- nbgrader's exchange: its root 1777 (writable by all, as nbgrader insists, with the sticky
  bit), the course's folders made by hub/jupyterhub_config.py's `ensure_exchange` at hub
  start (the course folder the instructor's, inbound 3733, feedback 0711);
- the instructor's clone of the course (solutions/, assignments/, nbgrader_config.py) in
  their home folder;
- JupyterHub with hub/jupyterhub_config.py on loopback, with the `autograder watch`
  service grading a01-convolution on submission (one grading per student per 10
  minutes, feedback showing test names only, a look at the exchange every 2 s).

Needs root (local accounts, servers spawned as other users) and configurable-http-proxy
(`make hub-deps`); skips with the reason otherwise (fails instead in CI as root, where
`make test` installs them: suite_helpers.require_or_skip).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import hubkit
from suite_helpers import require_or_skip
from scenario import (ASSIGNMENT, COURSE_ID, DATA_SETS, INSTRUCTOR, INSTRUCTOR_GROUP, KERNEL_GROUP, STUDENT_GROUP, STUDENTS,
                      SUDOERS_RULE, WATCH_DETAIL, WATCH_INTERVAL, WATCH_RATE, WATCH_WORKERS)

ROOT = hubkit.ROOT


@dataclass
class Course:
    """Everything the hub tests share: the hub, its users, where things are, what was measured."""

    root: Path
    hub: hubkit.Hub
    users: dict[str, hubkit.HubUser]
    exchange: Path
    watch_output: Path
    course_dir: Path
    password: str
    user_env: Path
    data_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def instructor(self) -> hubkit.HubUser:
        return self.users[INSTRUCTOR]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the hub test creates local accounts and spawns servers as them: run it as root"
    if not (ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        return "configurable-http-proxy is not installed: run `make hub-deps`"
    for tool in ("useradd", "userdel", "usermod", "chpasswd", "setpriv", "git", "sudo", "visudo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if hubkit.world_python() is None:
        return (f"no Python {sys.version_info[0]}.{sys.version_info[1]} that every user can run "
                "(install Debian's python3, or put the interpreter where others can reach it)")
    return None


def _data_cache(folder: Path) -> Path:
    """The data cache of the watch's kernels, as root leaves it after fetching MNIST's test set.

    Copied from this machine's own cache or offline mirror when there (never downloaded;
    absent, the folder stays empty and the test that reads it skips), private as a download
    by root is (the library writes 0600 files, the grader runs with umask 077): the hub's
    configuration must make it readable for the kernels, which run as uid 65534.
    """
    from dlcourse.datasets.fetching import mirror_dir, preferred_cache_dir
    from dlcourse.datasets.registry import registry_entry

    for name in DATA_SETS:
        entry = registry_entry(name)
        for where in (preferred_cache_dir(), mirror_dir()):
            if where is not None and (where / entry.path).is_file():
                (folder / entry.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(where / entry.path, folder / entry.path)
                break
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return folder


def _wheel(folder: Path) -> Path:
    """The wheel the book build publishes (`make wheel`) when it is current, else one built now."""
    from autograder import publish

    built = Path(os.environ.get("DLCOURSE_WHEEL_DIR") or ROOT / "_build" / "dist") / \
        publish.wheel_name(publish.project_version())
    if built.is_file() and not publish.wheel_mismatches(built):
        return built
    return publish.build_wheel(folder)


def _course_copy(home: Path, owner: str) -> Path:
    """The instructor's clone of the course: what `git clone` would give them, working tree as is."""
    course = home / "dlcourse"
    for part in (f"solutions/{ASSIGNMENT}", f"assignments/{ASSIGNMENT}"):
        shutil.copytree(ROOT / part, course / part)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    subprocess.run(["chown", "-R", f"{owner}:", str(course)], check=True)
    course.chmod(0o700)  # the solutions: the instructor's (and root's) only
    return course


@pytest.fixture(scope="session")
def course():
    reason = _skip_reason()
    if reason:
        require_or_skip(reason)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="dlcourse-hubtest-", dir="/var/tmp"))
    root.chmod(0o755)
    hub = None
    users = [INSTRUCTOR, *STUDENTS]
    try:
        env = hubkit.build_user_env(root / "user-env", _wheel(root / "dist"), hubkit.world_python())
        password = hubkit.new_password()
        hubkit.add_group(STUDENT_GROUP)
        hubkit.add_group(INSTRUCTOR_GROUP)
        homes = {name: hubkit.add_user(name, INSTRUCTOR_GROUP if name == INSTRUCTOR else STUDENT_GROUP, password)
                 for name in users}
        hubkit.allow_kernels(INSTRUCTOR, KERNEL_GROUP, SUDOERS_RULE)
        exchange = root / "exchange"
        exchange.mkdir()
        # every user writes here (nbgrader checks it); the sticky bit keeps a student from renaming
        # or replacing the course's folder, which the hub's configuration makes as the instructor's
        exchange.chmod(0o1777)
        course_dir = _course_copy(homes[INSTRUCTOR], INSTRUCTOR)
        watch_output = root / "autograder-watch"
        data = root / "data"
        data.mkdir()
        _data_cache(data)
        hub = hubkit.Hub(root, {
            "DLCOURSE_USER_ENV": str(env), "DLCOURSE_EXCHANGE": str(exchange), "DLCOURSE_COURSE_ID": COURSE_ID,
            "DLCOURSE_STUDENT_GROUP": STUDENT_GROUP, "DLCOURSE_INSTRUCTOR_GROUP": INSTRUCTOR_GROUP,
            "DLCOURSE_HUB_STATE": str(root / "hub-state"), "DLCOURSE_WATCH": ASSIGNMENT,
            "DLCOURSE_WATCH_ROOT": str(course_dir), "DLCOURSE_WATCH_OUTPUT": str(watch_output),
            "DLCOURSE_WATCH_RATE": WATCH_RATE, "DLCOURSE_WATCH_DETAIL": WATCH_DETAIL,
            "DLCOURSE_WATCH_INTERVAL": WATCH_INTERVAL, "DLCOURSE_WATCH_WORKERS": WATCH_WORKERS,
            # DLCOURSE_WATCH_PYTHON unset: the users' environment, the configuration's default
            "DLCOURSE_DATA_DIR": str(data), "DLCOURSE_THREADS": "1", "DLCOURSE_KERNEL_GROUP": KERNEL_GROUP})
        timings["setup: accounts, users' environment"] = time.monotonic() - t0
        t1 = time.monotonic()
        hub.start()
        timings["hub start"] = time.monotonic() - t1
        clients = {name: hubkit.HubUser(hub, name, password) for name in users}

        def up(user: hubkit.HubUser):
            user.login()
            user.start_server()
            user.wait_ready()

        t1 = time.monotonic()
        with ThreadPoolExecutor(len(clients)) as pool:  # everyone logs in at the start of the lab session
            list(pool.map(up, clients.values()))
        timings["log in and start 4 servers"] = time.monotonic() - t1
        yield Course(root, hub, clients, exchange, watch_output, course_dir, password, env, data, timings)
    except Exception:
        if hub is not None:
            print(f"--- jupyterhub log (tail) ---\n{hub.tail(120)}", file=sys.stderr)
        raise
    finally:
        if hub is not None:
            hub.stop()
        for name in users:
            hubkit.remove_user(name)
        hubkit.disallow_kernels(KERNEL_GROUP)
        hubkit.remove_group(STUDENT_GROUP)
        hubkit.remove_group(INSTRUCTOR_GROUP)
        shutil.rmtree(root, ignore_errors=True)
