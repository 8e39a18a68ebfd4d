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
  DLCOURSE_WATCH_WORKERS     notebooks graded at once (default 1; about one per two cores)

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
  with the hub, running as the hub's user (root) so that its sandbox can also drop to
  the `nobody` user.
"""
import grp
import os
import pwd
import sys
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

# ---------------------------------------------------------------- grading on submission
WATCH = [a for a in setting("DLCOURSE_WATCH", "").split(",") if a.strip()]
if WATCH:
    c.JupyterHub.services = [{
        "name": "autograder-watch",
        "command": [sys.executable, "-m", "autograder", "watch", *WATCH,
                    "--exchange", EXCHANGE, "--course-id", COURSE_ID,
                    "--root", setting("DLCOURSE_WATCH_ROOT", "/srv/dlcourse"),
                    "--output", setting("DLCOURSE_WATCH_OUTPUT", "/srv/autograder"),
                    "--rate", setting("DLCOURSE_WATCH_RATE", "3/1h"),
                    "--detail", setting("DLCOURSE_WATCH_DETAIL", "names"),
                    "--interval", setting("DLCOURSE_WATCH_INTERVAL", "5"),
                    "--workers", setting("DLCOURSE_WATCH_WORKERS", "1")],
        "environment": {"DLCOURSE_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    }]
