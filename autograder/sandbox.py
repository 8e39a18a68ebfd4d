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
open files, core dumps.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
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
    mirror = os.environ.get("DLCOURSE_DATA_MIRROR")
    if mirror:
        allowed.append(Path(mirror))
    for p in allowed:
        if p.exists():
            cmd += ["--ro-bind", str(p), str(p)]
    for p in hidden_paths(hide):
        if p.exists() and any(p == a or a in p.parents for a in allowed):
            cmd += ["--tmpfs", str(p)]
    cmd += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir),
            "--setenv", "HOME", str(workdir), "--setenv", "TMPDIR", str(workdir / "tmp")]
    return cmd


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
    if os.environ.get("DLCOURSE_DATA_MIRROR"):
        env["DLCOURSE_DATA_MIRROR"] = os.environ["DLCOURSE_DATA_MIRROR"]
    return env


def prepare_workdir(workdir: Path, level: str) -> None:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    (workdir / ".ipython").mkdir(exist_ok=True)
    if level == "bwrap+nobody" and os.geteuid() == 0:
        for p in (workdir, workdir / "tmp", workdir / ".ipython"):
            os.chown(p, NOBODY, NOBODY)


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
        self.connection_file = str(workdir / "kernel.json")

    def format_kernel_cmd(self, extra_arguments=None):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(self.sandbox_workdir / "kernel.json"),
                "--HistoryManager.enabled=False", "--IPKernelApp.parent_handle=1"]
        prefix = prlimit_prefix(self.sandbox_limits)
        if self.sandbox_level.startswith("bwrap"):
            prefix += bwrap_prefix(self.sandbox_workdir, self.sandbox_level, self.sandbox_hide)
        return prefix + argv

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        kw["env"] = kernel_env(self.sandbox_threads, self.sandbox_workdir)
        kw["cwd"] = str(self.sandbox_workdir)
        if self.sandbox_level == "rlimits-only" and os.geteuid() == 0:
            kw["user"], kw["group"] = NOBODY, NOBODY  # unprivileged at least
            kw["extra_groups"] = []
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_launch_kernel(kernel_cmd, **kw)
