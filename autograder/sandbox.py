"""Where student code runs: a kernel wrapped in bubblewrap and resource limits.

Only the *kernel* is sandboxed. The executor (nbclient) stays in the grading worker and
sends the kernel one cell at a time over Unix-domain sockets in the submission's private
work directory, so the kernel needs no network at all and never sees a notebook file
with hidden tests in it.

Isolation levels, strongest first (`isolation()` reports which one this machine gives):
  "bwrap+nobody"  the grader (root) drops to uid/gid 65534 with setpriv, then bubblewrap:
                  new user, network, PID, IPC and UTS namespaces (no network interface),
                  all capabilities dropped. The file system holds only read-only system
                  directories (/usr, /etc without shadow, ...), the Python environment, the
                  course library and a writable private work directory: solutions/, the
                  gradebook, other submissions and the hidden tests are not mounted at all.
  "bwrap"         the same namespaces and mounts, but the process keeps the caller's real
                  uid (shown as 65534 inside a user namespace, with no capabilities). Used
                  when uid 65534 cannot reach the interpreter (e.g. Python under /root).
  "rlimits-only"  no bubblewrap: resource limits only. Student code can read what the
                  instructor can read and use the network. Said so in every report.
Resource limits (prlimit) apply at every level: address space, processes, file size,
open files, core dumps. RLIMIT_NPROC does not bind a process whose real uid is root (the
"bwrap" level), so where this machine lets us create cgroups, each bwrap kernel also runs
in its own `pids` cgroup capped at `Limits.processes` tasks (`process_cap()` says which).
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


@dataclass
class Limits:
    """Per-submission limits (seconds, MiB, counts)."""

    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    memory_mb: int = 4096
    processes: int = 64
    file_size_mb: int = 64
    open_files: int = 256
    output_kb: int = 256  # outputs kept per cell; the rest is dropped with a note

    def as_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=None)
def isolation(prefer: str = "auto") -> str:
    """The strongest isolation level that works here (probed once per process)."""
    if prefer == "none" or shutil.which("bwrap") is None:
        return "rlimits-only"
    for level in ("bwrap+nobody", "bwrap"):
        if level == "bwrap+nobody" and (os.geteuid() != 0 or shutil.which("setpriv") is None):
            continue
        if prefer not in ("auto", level):
            continue
        probe_dir = Path(tempfile.mkdtemp(prefix="autograder-probe-"))
        prepare_workdir(probe_dir, level)
        cmd = bwrap_prefix(probe_dir, level, hide=[]) + [sys.executable, "-c", "import ipykernel"]
        ok = subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
        shutil.rmtree(probe_dir, ignore_errors=True)
        if ok:
            return level
    return "rlimits-only"


def prlimit_prefix(limits: Limits) -> list[str]:
    mib = 1024 * 1024
    return ["prlimit", f"--as={limits.memory_mb * mib}", f"--nproc={limits.processes}",
            f"--fsize={limits.file_size_mb * mib}", f"--nofile={limits.open_files}", "--core=0", "--"]


def hidden_paths(extra: list[Path]) -> list[Path]:
    """Extra paths (grading output, submissions) that must stay invisible in the sandbox."""
    return [Path(os.path.realpath(p)) for p in extra]


# Read-only system directories the kernel needs; everything else (/root, /home, /work, /srv,
# /tmp, the repository, ...) simply does not exist inside the sandbox.
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt"]


def bwrap_prefix(workdir: Path, level: str, hide: list[Path]) -> list[str]:
    cmd = []
    if level == "bwrap+nobody":
        cmd += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    cmd += ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for d in SYSTEM_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            cmd += ["--ro-bind", d, d]
        elif os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
    cmd += ["--ro-bind", "/dev/null", "/etc/shadow", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # The interpreter and the course library (read-only); never solutions/, tests/, the
    # gradebook or submissions, which are simply not mounted.
    allowed = [Path(sys.base_prefix), Path(sys.prefix), REPO / "dlcourse", REPO / "data"]
    # The data sets, read-only: the kernel has no network, so it must find the verified
    # files where this machine keeps them (see data_locations).
    allowed += [p for p in data_locations() if p is not None]
    for p in allowed:
        if p.exists():
            cmd += ["--ro-bind", str(p), str(p)]
    for p in hidden_paths(hide):
        if p.exists() and any(p == a or a in p.parents for a in allowed):
            cmd += ["--tmpfs", str(p)]
    cmd += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir),
            "--setenv", "HOME", str(workdir), "--setenv", "TMPDIR", str(workdir / "tmp")]
    return cmd


def data_locations() -> tuple[Path | None, Path]:
    """(offline mirror or None, data cache) as this machine resolves them, outside the sandbox.

    Resolved here because inside the sandbox neither the checkout's `../shared/data` nor
    the user's home exists: a kernel that looked for them itself would find no data and
    quietly fall back to another data set (or fail), and a correct submission would lose
    points. Both are mounted read-only and named in the kernel's environment.
    """
    from dlcourse.datasets import fetching

    return fetching.mirror_dir(), fetching.preferred_cache_dir()


def kernel_env(threads: int, workdir: Path) -> dict[str, str]:
    """A small, explicit environment: nothing of the instructor's leaks in."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"), "LANG": "C.UTF-8",
        "DLCOURSE_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
        "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "JUPYTER_PLATFORM_DIRS": "1", "IPYTHONDIR": str(workdir / ".ipython"),
        "DLCOURSE_DEVICE": os.environ.get("DLCOURSE_DEVICE", "cpu"),
    }
    mirror, cache = data_locations()
    env["DLCOURSE_DATA_MIRROR"] = str(mirror) if mirror is not None else "none"
    env["DLCOURSE_DATA_DIR"] = str(cache)
    return env


def prepare_workdir(workdir: Path, level: str) -> None:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    (workdir / ".ipython").mkdir(exist_ok=True)
    if level == "bwrap+nobody" and os.geteuid() == 0:
        for p in (workdir, workdir / "tmp", workdir / ".ipython"):
            os.chown(p, NOBODY, NOBODY)


# ---------------------------------------------------------------- process cap (cgroup)
# RLIMIT_NPROC counts processes per *real* uid and does not bind real uid 0, which is what
# the kernel runs as at the "bwrap" level (a user namespace maps it to 65534, but the host
# still sees root). A cgroup `pids` controller caps the kernel's whole process tree
# (threads included) whatever its uid. Used where this process may create cgroups (root
# on a VM or host with cgroup v1 `pids` mounted read-write, or a delegated cgroup v2 with
# the pids controller on); elsewhere RLIMIT_NPROC alone remains, and `process_cap()` says so.
CGROUP_FS = Path("/sys/fs/cgroup")


def _own_pids_cgroup() -> Path | None:
    """This process's own cgroup directory that offers pids.max, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = CGROUP_FS / "pids" / rel.lstrip("/")
        elif controllers == "":
            base = CGROUP_FS / rel.lstrip("/")  # cgroup v2
            if not (base / "cgroup.subtree_control").exists() or "pids" not in (base / "cgroup.subtree_control").read_text().split():
                continue
        else:
            continue
        if base.is_dir() and os.access(base, os.W_OK):
            return base
    return None


class PidsCgroup:
    """One kernel's cgroup: created with pids.max, joined by the launcher, killed and removed after."""

    def __init__(self, name: str, limit: int):
        base = _own_pids_cgroup()
        if base is None:
            raise OSError("no writable pids cgroup")
        self.path = base / f"autograder-{name}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(limit))
        except OSError:
            self.path.rmdir()
            raise

    def prefix(self) -> list[str]:
        """Join the cgroup, then exec the rest: everything the kernel starts is counted."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs")]

    def release(self) -> None:
        """SIGKILL whatever is left in the group (a fork bomb's children), then remove it."""
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                try:
                    self.path.rmdir()
                except OSError:
                    pass
                else:
                    return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)


CGROUP_CAP = "cgroup pids.max"


@functools.lru_cache(maxsize=None)
def process_cap() -> str:
    """How the number of student processes is capped here, in words for reports.

    Probed for real (create a group, let a shell join it, remove it): kernels use the
    cgroup only when this says CGROUP_CAP, so a half-working setup never stops them.
    """
    try:
        probe = PidsCgroup(f"probe-{os.getpid()}-{time.time_ns()}", 8)
    except OSError:
        probe = None
    if probe is not None:
        try:
            joined = subprocess.run(probe.prefix() + ["/bin/true"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            joined = False
        probe.release()
        if joined:
            return CGROUP_CAP
    return "RLIMIT_NPROC only (no usable pids cgroup: a kernel running as real root can fork without limit)"


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command is wrapped in prlimit and bubblewrap.

    Transport is IPC (Unix sockets inside the work directory): the kernel has no network
    namespace to listen in. Interrupts go as messages, since a signal to bubblewrap
    would not reach the kernel.
    """

    def __init__(self, *, workdir: Path, limits: Limits, level: str, hide: list[Path], threads: int, **kw):
        super().__init__(kernel_name="python3", transport="ipc", ip=str(workdir / "ipc"), **kw)
        self.sandbox_workdir = workdir
        self.sandbox_limits = limits
        self.sandbox_level = level
        self.sandbox_hide = hide
        self.sandbox_threads = threads
        self.sandbox_cgroup: PidsCgroup | None = None
        self.connection_file = str(workdir / "kernel.json")

    def format_kernel_cmd(self, extra_arguments=None):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(self.sandbox_workdir / "kernel.json"),
                "--HistoryManager.enabled=False", "--IPKernelApp.parent_handle=1"]
        prefix = prlimit_prefix(self.sandbox_limits)
        if self.sandbox_level.startswith("bwrap"):
            # (not at "rlimits-only": there the launcher already runs as uid 65534, which
            # cannot join a cgroup, and RLIMIT_NPROC binds it)
            if self.sandbox_cgroup is None and process_cap() == CGROUP_CAP:
                try:
                    self.sandbox_cgroup = PidsCgroup(f"{os.getpid()}-{time.time_ns()}", self.sandbox_limits.processes)
                except OSError:
                    self.sandbox_cgroup = None  # RLIMIT_NPROC only, as process_cap() reports
            if self.sandbox_cgroup is not None:
                prefix = self.sandbox_cgroup.prefix() + prefix
            prefix += bwrap_prefix(self.sandbox_workdir, self.sandbox_level, self.sandbox_hide)
        return prefix + argv

    def release_cgroup(self) -> None:
        """After the kernel is shut down: kill anything left in its cgroup and remove it."""
        if self.sandbox_cgroup is not None:
            self.sandbox_cgroup.release()
            self.sandbox_cgroup = None

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        kw["env"] = kernel_env(self.sandbox_threads, self.sandbox_workdir)
        kw["cwd"] = str(self.sandbox_workdir)
        if self.sandbox_level == "rlimits-only" and os.geteuid() == 0:
            kw["user"], kw["group"] = NOBODY, NOBODY  # unprivileged at least
            kw["extra_groups"] = []
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_launch_kernel(kernel_cmd, **kw)
