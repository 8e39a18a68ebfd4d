"""Where student code runs: a kernel wrapped in bubblewrap and resource limits.

Only the *kernel* is sandboxed. The executor (nbclient) stays in the grading worker and
sends the kernel one cell at a time over Unix-domain sockets in the submission's private
work directory, so the kernel needs no network at all and never sees a notebook file
with hidden tests in it.

Isolation levels, strongest first (`isolation()` reports which one this machine gives):
  "bwrap+nobody"  bubblewrap: new user, network, PID, IPC and UTS namespaces, no network
                  interfaces, all capabilities dropped, uid/gid 65534; the file system is
                  read-only except the work directory, with /tmp, $HOME, the grading output,
                  the submissions and the repository (except .venv and the course library)
                  replaced by empty tmpfs mounts, so solutions/, the gradebook, other
                  submissions and the hidden tests are not there to be read.
  "bwrap"         the same, as the calling user (when a user namespace cannot switch uid).
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
    """Paths replaced by empty tmpfs mounts in the sandbox (outermost first)."""
    paths = [Path("/tmp"), Path("/var/tmp"), Path("/root"), Path.home(), REPO, *extra]
    out = []
    for p in paths:
        p = Path(os.path.realpath(p))
        if p.is_dir() and p != Path("/") and p not in out:
            out.append(p)
    return sorted(out, key=lambda p: len(p.parts))


def bwrap_prefix(workdir: Path, level: str, hide: list[Path]) -> list[str]:
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if level == "bwrap+nobody":
        cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for p in hidden_paths(hide):
        cmd += ["--tmpfs", str(p)]
    # Put back what the kernel needs from the repository: the interpreter and the course
    # library (read-only), never solutions/, tests/, the gradebook or submissions.
    allowed = [Path(sys.prefix), Path(sys.base_prefix), REPO / "dlcourse", REPO / "data"]
    for p in allowed:
        if p.exists():
            cmd += ["--ro-bind", str(p), str(p)]
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
