"""JupyterHub for the course on one machine: local users, nbgrader's exchange, grading on submission.

This is the configuration the hub test (tests/hub/) starts, and the one an instructor can
run on a single server as root (`jupyterhub -f hub/jupyterhub_config.py`); the guide
"Running the course on a JupyterHub" (book/guides/jupyterhub.md) says what changes on
The Littlest JupyterHub and on Zero to JupyterHub. Settings come from environment
variables, with the defaults of a real installation:

  DLCOURSE_USER_ENV          the users' Python environment, "the image" (default /opt/dlcourse/user):
                             jupyterhub, jupyterlab, notebook, nbgrader, nbgitpuller, torch and the
                             course library, plus the files of hub/image/ copied into it
  DLCOURSE_EXCHANGE          nbgrader's exchange, shared by all users (default /srv/nbgrader/exchange)
  DLCOURSE_COURSE_ID         the course's id in the exchange (default dlcourse)
  DLCOURSE_STUDENT_GROUP     Unix group of the students (default dlcourse-students)
  DLCOURSE_INSTRUCTOR_GROUP  Unix group of the instructors (default dlcourse-instructors)
  DLCOURSE_HUB_STATE         the hub's own files: database, cookie secret (default /srv/jupyterhub)
  DLCOURSE_PROXY             the configurable-http-proxy program (default: hub/node_modules, from `make hub-deps`)
  DLCOURSE_WATCH             assignments graded on submission, comma-separated (empty: no watch service)
  DLCOURSE_WATCH_ROOT        the course repository the watch service grades against (default /srv/dlcourse)
  DLCOURSE_WATCH_OUTPUT      the watch service's folder (default /srv/autograder)
  DLCOURSE_WATCH_RATE        gradings per student per period (default 3/1h)
  DLCOURSE_WATCH_DETAIL      what feedback shows: full, names or scores (default names)
  DLCOURSE_WATCH_INTERVAL    seconds between looks at the exchange (default 5)
  DLCOURSE_WATCH_WORKERS     students graded at once, each in its own process (default 1; about one per two cores)
  DLCOURSE_WATCH_PYTHON      the interpreter of the watch service (default: the users' environment's,
                             DLCOURSE_USER_ENV/bin/python); it must be one that uid 65534 can read, with the
                             course (library and autograder) installed in it, for kernels as `nobody`
  DLCOURSE_DATA_DIR          the data sets' cache the watch's kernels read (default /opt/dlcourse/data)
  DLCOURSE_WATCH_USER        the account the watch service runs as (default: the instructor who owns the
                             exchange's course folder, the first member of the instructor group); never root
  DLCOURSE_KERNEL_GROUP      the group the watch's account shares with its kernels (default dlcourse-kernels):
                             a sudoers rule lets that account run commands as uid 65534 with this group

Choices, and why:

- Authenticator: PAM, i.e. the machine's own accounts. nbgrader's exchange identifies a
  student by the Unix user that owns a submission, so every student needs their own
  account; only members of the two groups may log in.
- Spawner: LocalProcessSpawner. Each user's server runs as that user, in their home
  directory, so students cannot read each other's work or the instructor's course
  folder (solutions, gradebook) and the exchange's permissions mean what they say.
  It enforces no memory or CPU limits; see the guide for the spawners that do.
- Student view: the image's configuration (hub/image/etc/jupyter/) turns nbgrader's
  instructor tools off (Create Assignment, Formgrader, Course List, the toolbar's
  Validate); students keep the Assignment List (fetch, submit, validate, feedback). For
  members of the instructor group the hub adds hub/image/etc/dlcourse-instructor/ to
  JUPYTER_CONFIG_PATH, which turns them back on.
- Grading on submission: `autograder watch` as a hub-managed service, started and stopped
  with the hub, running as the instructor's account (DLCOURSE_WATCH_USER), never as root:
  a student who found a way to redirect what it writes or reads would reach only what
  the instructor can, not the machine. Its sandbox still runs each kernel as `nobody`
  (uid 65534) inside bubblewrap, the "bwrap+nobody" level, through a sudoers rule that
  lets that account, and only it, run commands as uid 65534 with the kernel group
  (DLCOURSE_KERNEL_GROUP; see the guide). The service never follows a student's link:
  every path in the exchange is opened component by component without following links
  (autograder.safefs), and what it writes is private (umask 077). `ensure_watch` gives its
  output folder and the data cache to that account when the hub starts.
- The watch's interpreter: by default the users' environment's. bubblewrap runs as uid
  65534 and mounts the interpreter, the installed course (library and autograder) and the
  data cache read-only; all three must be readable by that uid (one it cannot reach: the
  sandbox falls back to the weaker "bwrap" level; a data file it cannot read: the kernel
  runs without that data set). The users'
  environment is readable by every account by construction, holds the course from the
  book's wheel (not the instructor's private clone), and is what the students' own
  kernels run, so a notebook is graded with the packages it was written against. The
  service runs from "/", so that `-m autograder` never imports a checkout in the hub's
  working folder. The data cache (DLCOURSE_DATA_DIR) is made at hub start if missing and
  everything in it readable by all (`ensure_data`): the data sets are public, and a file
  the grader downloaded as root is private (0600) until then.
- The exchange: the root 1777 (nbgrader's commands insist that it is writable by all; the
  sticky bit keeps students from renaming or replacing the course's folder), the course's
  folder made by the instructor before students log in (see the guide). `ensure_exchange`
  below makes that layout when the hub starts as root.
"""
import grp
import os
import pwd
import stat
from pathlib import Path

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

HERE = Path(__file__).resolve().parent


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


USER_ENV = Path(setting("DLCOURSE_USER_ENV", "/opt/dlcourse/user"))
EXCHANGE = setting("DLCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
COURSE_ID = setting("DLCOURSE_COURSE_ID", "dlcourse")
STUDENTS = setting("DLCOURSE_STUDENT_GROUP", "dlcourse-students")
INSTRUCTORS = setting("DLCOURSE_INSTRUCTOR_GROUP", "dlcourse-instructors")
STATE = Path(setting("DLCOURSE_HUB_STATE", "/srv/jupyterhub"))
PROXY = setting("DLCOURSE_PROXY", str(HERE / "node_modules" / ".bin" / "configurable-http-proxy"))
DATA = Path(setting("DLCOURSE_DATA_DIR", "/opt/dlcourse/data"))

# ---------------------------------------------------------------- the hub itself
STATE.mkdir(parents=True, exist_ok=True, mode=0o700)
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [PROXY]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
# Behind a TLS-terminating reverse proxy in production; the test binds 127.0.0.1.
c.JupyterHub.bind_url = setting("DLCOURSE_HUB_URL", "http://:8000")

# ---------------------------------------------------------------- who may log in
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {STUDENTS, INSTRUCTORS}


def _groups(user: str) -> set[str]:
    """The Unix groups of a user, primary group included."""
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    try:
        names.add(grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)
    except KeyError:
        pass
    return names


# ---------------------------------------------------------------- each user's own server
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(USER_ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120  # a cold start imports JupyterLab and nbgrader
c.Spawner.http_timeout = 90
c.Spawner.environment = {
    "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "DLCOURSE_EXCHANGE": EXCHANGE,   # read by the image's nbgrader_config.py
    "DLCOURSE_COURSE_ID": COURSE_ID,
    "DLCOURSE_THREADS": "1",         # many kernels share the machine's cores
}


def role_config(spawner) -> None:
    """Instructors get nbgrader's instructor tools; everyone else the student view."""
    if INSTRUCTORS in _groups(spawner.user.name):
        spawner.environment["JUPYTER_CONFIG_PATH"] = str(USER_ENV / "etc" / "dlcourse-instructor")
    else:
        spawner.environment.pop("JUPYTER_CONFIG_PATH", None)


c.Spawner.pre_spawn_hook = role_config

# ---------------------------------------------------------------- the exchange
def first_instructor(instructors: str):
    """The account (pwd entry) of the instructor group's first member, or None: it owns the
    exchange's course folders and runs the watch service."""
    members = grp.getgrnam(instructors).gr_mem or [u.pw_name for u in pwd.getpwall()
                                                    if u.pw_gid == grp.getgrnam(instructors).gr_gid]
    return pwd.getpwnam(sorted(members)[0]) if members else None


def ensure_exchange(root: str, course_id: str, instructors: str) -> None:
    """The exchange as students cannot rewrite it for each other (made once, as root).

    <root> 1777 root (nbgrader requires a root writable by all; the sticky bit keeps the
    course folder from being renamed or replaced), <root>/<course> 0755, outbound 0755,
    inbound 3733 (write-only for students; sticky: nobody renames or deletes another's
    submission; setgid: submissions get the instructors' group) and feedback 0711, owned by
    the first member of the instructor group (nbgrader's release insists it owns them).
    Existing folders are left as they are unless they belong to a student.
    """
    if os.geteuid() != 0:
        return
    owner = first_instructor(instructors)
    if owner is None:
        return
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    os.chown(base, 0, 0)
    os.chmod(base, 0o1777)
    course = base / course_id
    for folder, mode in ((course, 0o755), (course / "outbound", 0o755), (course / "inbound", 0o3733),
                         (course / "feedback", 0o711)):
        if folder.is_symlink() or (folder.exists() and folder.stat().st_uid not in (0, owner.pw_uid)):
            raise SystemExit(f"{folder} was not made by the instructor: move it away and start again")
        folder.mkdir(exist_ok=True)
        os.chown(folder, owner.pw_uid, grp.getgrnam(instructors).gr_gid)
        os.chmod(folder, mode)


try:
    ensure_exchange(EXCHANGE, COURSE_ID, INSTRUCTORS)
except KeyError:  # the instructor group does not exist yet: the guide's step 3 makes it
    pass

# ---------------------------------------------------------------- grading on submission
def ensure_data(folder: Path, owner=None) -> None:
    """The data sets' cache of the watch's kernels, readable by all (as root, at hub start).

    The kernels have no network: the grader fetches what an assignment declares into this
    folder first, and bubblewrap, already running as uid 65534, mounts it read-only. A folder
    uid 65534 cannot reach cannot be mounted (the sandbox falls back to the "bwrap" level);
    one it cannot list, or a file it cannot read, leaves the kernel without the data. The
    data sets are public, so every folder there is made
    readable and searchable by all, every file readable by all (nothing is made writable
    by others); links are neither followed nor changed. The folder's parents must be
    searchable by all. With `owner` (the watch service's account), what is there becomes
    that account's, so that the service can fetch what is missing.
    """
    if os.geteuid() != 0:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for top, _, files in os.walk(folder):  # each real folder once; linked ones are not entered
        for path in [top, *(os.path.join(top, name) for name in files)]:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode) | 0o555)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode) | 0o444)
            else:
                continue
            if owner is not None:
                os.lchown(path, owner.pw_uid, owner.pw_gid)


def ensure_watch(output: Path, owner) -> None:
    """The watch service's output folder, the service account's alone (as root, at hub start).

    Made if missing, else taken over when it is root's (an older hub ran the service as
    root); the hub refuses to start when it is a link or belongs to another account.
    """
    if os.geteuid() != 0:
        return
    if output.is_symlink() or (output.exists() and output.stat().st_uid not in (0, owner.pw_uid)):
        raise SystemExit(f"{output} is a link or belongs to another account: move it away and start again")
    output.mkdir(parents=True, exist_ok=True, mode=0o700)
    for top, dirs, files in os.walk(output):
        for path in [top, *(os.path.join(top, name) for name in dirs + files)]:
            if os.lstat(path).st_uid == 0:
                os.lchown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(output, 0o700)


def watch_account(instructors: str):
    """The account the watch service runs as (DLCOURSE_WATCH_USER, else the first instructor).

    Never root: the hub stops with the reason rather than grade as root.
    """
    name = setting("DLCOURSE_WATCH_USER", "")
    try:
        account = pwd.getpwnam(name) if name else first_instructor(instructors)
    except KeyError:
        raise SystemExit(f"the watch service's account {name or '(instructor group ' + instructors + ')'} "
                         "does not exist: make it first (the guide's step 3)") from None
    if account is None:
        raise SystemExit(f"the watch service needs an account to run as: add an instructor to {instructors} "
                         "or set DLCOURSE_WATCH_USER")
    if account.pw_uid == 0:
        raise SystemExit("the watch service does not run as root: set DLCOURSE_WATCH_USER to the instructor's account")
    return account


WATCH = [a for a in setting("DLCOURSE_WATCH", "").split(",") if a.strip()]
if WATCH:
    WATCH_ACCOUNT = watch_account(INSTRUCTORS)
    WATCH_OUTPUT = Path(setting("DLCOURSE_WATCH_OUTPUT", "/srv/autograder"))
    ensure_data(DATA, WATCH_ACCOUNT)
    ensure_watch(WATCH_OUTPUT, WATCH_ACCOUNT)
    c.JupyterHub.services = [{
        "name": "autograder-watch",
        "user": WATCH_ACCOUNT.pw_name,
        "command": [setting("DLCOURSE_WATCH_PYTHON", str(USER_ENV / "bin" / "python")), "-m", "autograder", "watch",
                    *WATCH, "--exchange", EXCHANGE, "--course-id", COURSE_ID,
                    "--root", setting("DLCOURSE_WATCH_ROOT", "/srv/dlcourse"),
                    "--output", str(WATCH_OUTPUT),
                    "--rate", setting("DLCOURSE_WATCH_RATE", "3/1h"),
                    "--detail", setting("DLCOURSE_WATCH_DETAIL", "names"),
                    "--interval", setting("DLCOURSE_WATCH_INTERVAL", "5"),
                    "--workers", setting("DLCOURSE_WATCH_WORKERS", "1")],
        # "/": `-m autograder` imports the interpreter's own installation, never a checkout that
        # happens to be the hub's working folder
        "cwd": "/",
        "environment": {"DLCOURSE_THREADS": "1", "PYTHONUNBUFFERED": "1", "DLCOURSE_DATA_DIR": str(DATA),
                        "HOME": WATCH_ACCOUNT.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin",
                        # unset: the sandbox's default, dlcourse-kernels
                        **({"DLCOURSE_KERNEL_GROUP": os.environ["DLCOURSE_KERNEL_GROUP"]}
                           if os.environ.get("DLCOURSE_KERNEL_GROUP") else {})},
    }]
