"""Where student code runs: a kernel wrapped in bubblewrap and resource limits.

Only the *kernel* is sandboxed. The executor (nbclient) stays in the grading worker and
sends the kernel one cell at a time over Unix-domain sockets in the submission's private
work directory, so the kernel needs no network at all and never sees a notebook file
with hidden tests in it.

Isolation levels, strongest first (`isolation()` reports which one this machine gives):
  "bwrap+nobody"  the kernel runs as uid 65534 inside bubblewrap. A grader running as root
                  drops to uid/gid 65534 with setpriv; a grader running as an ordinary
                  account (the hub's watch service, see `nobody_prefix`) asks sudo for
                  uid 65534 with the kernel group as its only group. Then bubblewrap:
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
open files, core dumps. Bytes written: the work directory (the kernel's HOME, its /tmp and
its current directory) is a tmpfs of `Limits.disk_mb` when the grader may mount one (root);
being RAM, that quota is taken out of the memory budget (address space = memory_mb -
disk_mb). Elsewhere a watchdog measures the work directory between and during cells and
stops a kernel that writes more (`disk_quota()` says which).
The course library is mounted read-only as a copy in which the modules that answer the
assignment being graded are stubs that raise ImportError (`dlcourse.answers`). RLIMIT_NPROC does not bind a process whose real uid is root (the
"bwrap" level), so where this machine lets us create cgroups, each bwrap kernel also runs
in its own `pids` cgroup capped at `Limits.processes` tasks (`process_cap()` says which).
"""
from __future__ import annotations

import functools
import multiprocessing.util
import os
import shutil
import signal
import stat
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

    cell_timeout: float = 60.0        # CPU seconds of the kernel per cell (wall clock: WALL_FACTOR times this)
    notebook_timeout: float = 600.0   # CPU seconds of the kernel per notebook (wall clock: likewise)
    memory_mb: int = 4096
    processes: int = 64
    file_size_mb: int = 64
    open_files: int = 256
    output_kb: int = 256  # outputs kept per cell; the rest is dropped with a note
    total_output_kb: int = 4096  # outputs kept in the whole notebook
    disk_mb: int = 512    # bytes the kernel may write (work directory, HOME and /tmp together)

    def as_dict(self) -> dict:
        return asdict(self)


# Time limits count the kernel's CPU seconds (`process_tree_times`); a cell that waits instead of
# computing (sleep, a blocked read) is stopped once it has waited this many times its limit, where
# the time spent waiting for a core on a busy machine (by the kernel, and in a test by the grader)
# does not count as waiting.
WALL_FACTOR = 4.0
# A last bound on the plain wall clock, whatever the accounting says: this many times the limit.
HARD_WALL_FACTOR = 40.0


@functools.lru_cache(maxsize=None)
def isolation(prefer: str = "auto") -> str:
    """The strongest isolation level that works here (probed once per process)."""
    if prefer == "none" or shutil.which("bwrap") is None:
        return "rlimits-only"
    for level in ("bwrap+nobody", "bwrap"):
        if level == "bwrap+nobody" and nobody_prefix() is None:
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


KERNEL_GROUP_SETTING = "DLCOURSE_KERNEL_GROUP"
DEFAULT_KERNEL_GROUP = "dlcourse-kernels"


def kernel_group() -> int | None:
    """The group a grader that is not root shares with its uid-65534 kernels, or None.

    Its gid, when the group (`DLCOURSE_KERNEL_GROUP`, default dlcourse-kernels) exists and
    this process belongs to it. The kernels run as uid 65534 with this group as their only
    one: it lets them write their work directory and lets the grader reach the sockets they
    make there, while students (not members) cannot enter either.
    """
    import grp

    try:
        gid = grp.getgrnam(os.environ.get(KERNEL_GROUP_SETTING) or DEFAULT_KERNEL_GROUP).gr_gid
    except KeyError:
        return None
    return gid if gid in os.getgroups() or gid == os.getegid() else None


def nobody_prefix() -> list[str] | None:
    """The command prefix that runs what follows as uid 65534, or None where this grader cannot.

    As root: setpriv. As an ordinary account (the hub's watch service runs as the
    instructor, never root): sudo, where a sudoers rule lets this account run commands as
    uid 65534 with the kernel group (`kernel_group`) and no password; `-n` makes sudo
    fail rather than ask, and `isolation()` probes the whole command before using it.
    """
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            return None
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    gid = kernel_group()
    if gid is None or shutil.which("sudo") is None:
        return None
    return ["sudo", "-n", "-u", f"#{NOBODY}", "-g", f"#{gid}", "--"]


def via_sudo(level: str) -> bool:
    """True where the kernel is uid 65534 by sudo: a grader that is not root, at "bwrap+nobody"."""
    return level == "bwrap+nobody" and os.geteuid() != 0


def prlimit_prefix(limits: Limits, ram_backed_disk: bool = False) -> list[str]:
    mib = 1024 * 1024
    # a RAM-backed work directory is memory too: what the kernel may write there comes out
    # of its memory budget
    memory = limits.memory_mb - (limits.disk_mb if ram_backed_disk else 0)
    return ["prlimit", f"--as={max(256, memory) * mib}", f"--nproc={limits.processes}",
            f"--fsize={limits.file_size_mb * mib}", f"--nofile={limits.open_files}", "--core=0", "--"]


def hidden_paths(extra: list[Path]) -> list[Path]:
    """Extra paths (grading output, submissions) that must stay invisible in the sandbox."""
    return [Path(os.path.realpath(p)) for p in extra]


# Read-only system directories the kernel needs; everything else (/root, /home, /work, /srv,
# /tmp, the repository, ...) simply does not exist inside the sandbox.
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt"]


def bwrap_prefix(workdir: Path, level: str, hide: list[Path], library: Path | None = None,
                 env: dict[str, str] | None = None) -> list[str]:
    cmd = []
    if level == "bwrap+nobody":
        cmd += nobody_prefix() or []
    if via_sudo(level):
        # sudo resets the environment (its env_reset): the kernel's is given again, exactly,
        # and nothing of sudo's own (SUDO_USER, ...) passes
        cmd += ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in (env or {}).items())]
    cmd += ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for d in SYSTEM_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            cmd += ["--ro-bind", d, d]
        elif os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
    # /tmp is the work directory's tmp/: what the kernel writes there counts against its quota
    cmd += ["--ro-bind", "/dev/null", "/etc/shadow", "--dev", "/dev", "--proc", "/proc"]
    # The interpreter and the course library (read-only); never solutions/, tests/, the
    # gradebook or submissions, which are simply not mounted.
    allowed = [Path(sys.base_prefix), Path(sys.prefix), REPO / "dlcourse", REPO / "data"]
    # The data sets, read-only: the kernel has no network, so it must find the verified
    # files where this machine keeps them (see data_locations).
    allowed += [p for p in data_locations() if p is not None]
    for p in allowed:
        if p.exists():
            cmd += ["--ro-bind", str(p), str(p)]
    if library is not None:
        # the assignment's answer modules replaced by stubs: first on the kernel's path
        # (PYTHONPATH, see kernel_env) and also mounted over the real package
        cmd += ["--ro-bind", str(library), LIBRARY_MOUNT, "--ro-bind", str(library / "dlcourse"), str(library_location())]
    for p in hidden_paths(hide):
        if p.exists() and any(p == a or a in p.parents for a in allowed):
            cmd += ["--tmpfs", str(p)]
    cmd += ["--bind", str(workdir / "tmp"), "/tmp"]
    cmd += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir),
            "--setenv", "HOME", str(workdir), "--setenv", "TMPDIR", str(workdir / "tmp")]
    if via_sudo(level):
        # sudo gives the kernel the grader's private umask (077): what it makes (its sockets
        # above all) must stay open to the kernel group, i.e. to the grader, never to others
        cmd += ["--", "/bin/sh", "-c", 'umask 007 && exec "$0" "$@"']
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


LIBRARY_MOUNT = "/dlcourse-library"


def kernel_env(threads: int, workdir: Path, library: Path | None = None, level: str = "bwrap") -> dict[str, str]:
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
    if library is not None:
        env["PYTHONPATH"] = LIBRARY_MOUNT if level.startswith("bwrap") else str(library)
    return env


WORK_SUBDIRS = ("tmp", ".ipython", ".grader")


@functools.lru_cache(maxsize=None)
def disk_quota() -> str:
    """How the bytes a kernel writes are capped here, in words for reports (probed once)."""
    probe = Path(tempfile.mkdtemp(prefix="autograder-quota-"))
    try:
        if _mount_tmpfs(probe, 1):
            _unmount(probe)
            return TMPFS_QUOTA
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return "watchdog (no tmpfs mount allowed: a kernel is stopped once its work directory is over quota)"


TMPFS_QUOTA = "tmpfs size limit"


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,nr_inodes=65536,mode=0755", "tmpfs", str(path)],
                         capture_output=True)
    return res.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def prepare_workdir(workdir: Path, level: str, limits: Limits | None = None) -> bool:
    """Create the kernel's work directory; a size-limited tmpfs when possible. True if mounted."""
    workdir.mkdir(parents=True, exist_ok=True)
    mounted = limits is not None and disk_quota() == TMPFS_QUOTA and _mount_tmpfs(workdir, limits.disk_mb)
    for sub in WORK_SUBDIRS:
        (workdir / sub).mkdir(exist_ok=True)
    if level == "bwrap+nobody" and os.geteuid() == 0:
        for p in (workdir, *(workdir / sub for sub in WORK_SUBDIRS)):
            os.chown(p, NOBODY, NOBODY)
    elif via_sudo(level):
        # the grader keeps the folders; the kernel reaches them through the kernel group, and
        # setgid gives what either side makes there that group
        for p in (workdir, *(workdir / sub for sub in WORK_SUBDIRS)):
            os.chown(p, -1, kernel_group())
            os.chmod(p, 0o2770)
    elif level == "rlimits-only" and os.geteuid() == 0:
        for p in (workdir, *(workdir / sub for sub in WORK_SUBDIRS)):
            os.chown(p, NOBODY, NOBODY)
    return mounted


def release_workdir(workdir: Path, mounted: bool) -> None:
    """Unmount (when it was a tmpfs) and delete a work directory."""
    if mounted:
        _unmount(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    if os.path.lexists(workdir) and os.geteuid() != 0 and nobody_prefix() is not None:
        # what a uid-65534 kernel made and closed (chmod in student code): opened again and
        # removed as uid 65534, inside the folder, which stays ours; neither command follows
        # a link met on the way
        clean = 'cd "$0" && chmod -R u+rwX . 2>/dev/null; exec rm -rf -- ./* ./.[!.]* ./..?*'
        subprocess.run(nobody_prefix() + ["/bin/sh", "-c", clean, str(workdir)], capture_output=True, timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)


def directory_bytes(path: Path, limit_entries: int = 200_000) -> int:
    """Bytes under `path` (files not followed through links); stops counting after many entries."""
    total, seen = 0, 0
    stack = [str(path)]
    while stack and seen < limit_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    seen += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass
        except OSError:
            pass
    return total if seen < limit_entries else max(total, 1 << 62)


# ---------------------------------------------------------------- CPU time of a kernel
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _run_delay(pid: int | str) -> float:
    """Seconds the process's main thread has waited on a run queue, ready but not running
    (/proc/PID/schedstat; 0 where the kernel does not keep it)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def process_tree_times(root_pid: int) -> tuple[float, float]:
    """(CPU seconds, run-queue seconds) of `root_pid` and every live descendant: the CPU time
    they used (user + system, with the children they have already reaped), and the time they
    were ready to run but waited for a core.

    The limits that judge student code count these rather than the wall clock: on a machine busy
    with other gradings (or students working beside `autograder watch`), a correct cell takes
    longer on the wall clock, but it uses the same CPU time, and the difference is time it spent
    waiting for a core, which is counted apart. Read from /proc, which shows a sandbox's
    processes too (a PID namespace renumbers them only inside).
    """
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:  # the process is gone
            continue
        fields = data[data.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        try:
            ppid = int(fields[1])
            ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, delay, stack, seen = 0, 0.0, [root_pid], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if pid in ticks:
            total += ticks[pid]
            delay += _run_delay(pid)
        stack += children.get(pid, [])
    return total / _CLOCK_TICKS, delay


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds used by `root_pid` and its descendants (see `process_tree_times`)."""
    return process_tree_times(root_pid)[0]


def own_run_delay() -> float:
    """Seconds this process's main thread (where the grader runs hidden tests) waited for a core."""
    return _run_delay("self")


# ---------------------------------------------------------------- the library copy
def library_location() -> Path:
    """Where the running interpreter imports the course library from."""
    import dlcourse

    return Path(dlcourse.__file__).resolve().parent


# ---------------------------------------------------------------- private scratch
_PRIVATE: dict[tuple[int, str], Path] = {}


def _owned_private_dir(path: Path) -> bool:
    """A real directory (not a link) owned by this process's user that no one else may write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def private_scratch(scratch: Path) -> Path:
    """This process's own folder under `scratch` (e.g. /tmp, which every user can write).

    Created exclusively under an unguessable name (mkdtemp), so nothing another user or a
    kernel planted can be taken for it; mode 0711, so that a kernel running as another user
    can reach what is mounted from inside it without listing it; verified again (owner,
    mode, not a link) each time it is handed out; removed when the process exits.
    """
    key = (os.getpid(), str(scratch))
    path = _PRIVATE.get(key)
    if path is not None and _owned_private_dir(path):
        return path
    # the pid in the name lets a later grader clean up after one that was killed (`sweep_stale`)
    path = Path(tempfile.mkdtemp(prefix=f"autograder-{os.getpid()}-", dir=scratch))
    os.chmod(path, 0o711)
    if not _owned_private_dir(path):  # pragma: no cover - mkdtemp guarantees it
        raise OSError(f"{path}: not a private directory")
    _PRIVATE[key] = path
    # multiprocessing runs its finalizers when a pool worker exits (atexit does not run there)
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(str(path), True), exitpriority=0)
    return path


def sweep_stale(scratch: Path) -> list[Path]:
    """Remove what graders that died (killed at a wall limit, out of memory) left in `scratch`:
    their private folders, with any work-directory tmpfs still mounted inside. Only folders of
    this user whose process is gone are touched, never through a link. Returns what was removed."""
    import re

    removed = []
    try:
        entries = list(os.scandir(scratch))
    except OSError:
        return removed
    try:
        with open("/proc/self/mounts") as fh:
            mounts = [line.split()[1].replace("\\040", " ") for line in fh]
    except OSError:
        mounts = []
    for entry in entries:
        m = re.fullmatch(r"autograder-(\d+)-\w+", entry.name)
        if not m or not _owned_private_dir(Path(entry.path)):
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its grader is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        for mount in sorted((p for p in mounts if p.startswith(entry.path + "/")), key=len, reverse=True):
            _unmount(Path(mount))
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    # kernels a dead grader left running (bubblewrap starts a session of its own, so killing the
    # grader's process group misses them): their pids cgroups carry the grader's pid
    base = _own_pids_cgroup()
    if base is not None:
        for entry in os.scandir(base):
            m = re.fullmatch(r"autograder-(\d+)-\d+", entry.name)
            if not m or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                os.kill(int(m.group(1)), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            group = PidsCgroup.__new__(PidsCgroup)
            group.path = Path(entry.path)
            group.release()
            removed.append(group.path)
    return removed


# The kernel's sockets are Unix sockets in its work directory, whose paths may not exceed 107
# bytes. Under `scratch` come "/autograder-<pid>-<8>" (at most 28), "/work-<8>" (14) and
# "/ipc-<n>" (at most 7): a scratch folder longer than this cannot hold a working kernel.
MAX_SCRATCH_PATH = 107 - 28 - 14 - 7


def check_scratch(scratch: Path) -> None:
    """Refuse, with the reason, a scratch folder whose path leaves no room for the kernel's sockets."""
    length = len(os.fsencode(str(Path(scratch).resolve())))
    if length > MAX_SCRATCH_PATH:
        raise ValueError(f"the scratch folder {scratch} has a path of {length} bytes; the kernels' sockets live "
                         f"under it and Unix socket paths are limited, so use a folder whose path has at most "
                         f"{MAX_SCRATCH_PATH} bytes (e.g. /tmp or /var/tmp/grading)")


def private_workdir(scratch: Path) -> Path:
    """A fresh, unguessable work directory for one kernel inside this process's private scratch."""
    return Path(tempfile.mkdtemp(prefix="work-", dir=private_scratch(scratch)))


def withheld_library(assignment: str, scratch: Path) -> Path | None:
    """A folder holding a copy of the course library (`dlcourse/`) without `assignment`'s
    answer modules.

    Built once per assignment, library content and process, inside this process's private
    scratch (`private_scratch`): never taken from a shared folder by a predictable name,
    where another user could have planted a library of their own. None when nothing is
    withheld for the assignment.
    """
    import hashlib

    from dlcourse.answers import stub_source, withheld

    modules = withheld(assignment)
    if not modules:
        return None
    src = library_location()
    h = hashlib.sha256(assignment.encode())
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(src)).encode())
            h.update(p.read_bytes())
    private = private_scratch(Path(scratch))
    target = private / f"library-{assignment}-{h.hexdigest()[:16]}"
    if _owned_private_dir(target) and _owned_private_dir(target / "dlcourse"):
        return target
    tmp = Path(tempfile.mkdtemp(prefix="library-", dir=private))
    copy = tmp / "lib" / "dlcourse"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in modules:
        rel = Path(*module.split(".")[1:])
        package = copy / rel
        if package.is_dir():  # a sub-package: withhold all of it
            shutil.rmtree(package)
            package.mkdir()
            (package / "__init__.py").write_text(stub_source(module, assignment))
        else:
            (copy / rel.with_suffix(".py")).write_text(stub_source(module, assignment))
    for p in [copy.parent, copy, *copy.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    shutil.rmtree(target, ignore_errors=True)  # a stale copy of an older library
    os.rename(copy.parent, target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


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

    def __init__(self, *, workdir: Path, limits: Limits, level: str, hide: list[Path], threads: int,
                 library: Path | None = None, ram_backed_disk: bool = False, **kw):
        super().__init__(kernel_name="python3", transport="ipc", ip=str(workdir / "ipc"), **kw)
        self.sandbox_library = library
        self.sandbox_ram_disk = ram_backed_disk
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
        prefix = prlimit_prefix(self.sandbox_limits, self.sandbox_ram_disk)
        # made once: passed to Popen (`_async_launch_kernel`) and, after sudo, on the command line
        self.sandbox_env = kernel_env(self.sandbox_threads, self.sandbox_workdir, self.sandbox_library,
                                      self.sandbox_level)
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
            prefix += bwrap_prefix(self.sandbox_workdir, self.sandbox_level, self.sandbox_hide, self.sandbox_library,
                                   self.sandbox_env)
        return prefix + argv

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the kernel's console output (for a kernel that failed to start)."""
        from autograder.files import NotReadable, read_regular

        try:  # the kernel owns this folder: never follow a link it may have planted
            data = read_regular(self.sandbox_workdir / "kernel.log", limit, tail=True)
        except NotReadable:
            return ""
        return data.decode("utf-8", "replace").strip()

    def release_cgroup(self) -> None:
        """After the kernel is shut down: kill anything left in its cgroup and remove it."""
        log = getattr(self, "sandbox_log", None)
        if log is not None:
            log.close()
        if self.sandbox_cgroup is not None:
            self.sandbox_cgroup.release()
            self.sandbox_cgroup = None

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        kw["env"] = self.sandbox_env
        kw["cwd"] = str(self.sandbox_workdir)
        # the kernel's own console output (ipykernel's internal errors, C-level prints) is the
        # student's: keep it out of the instructor's terminal, in a file the grader may quote
        self.sandbox_log = open(self.sandbox_workdir / "kernel.log", "wb")
        kw["stdout"] = kw["stderr"] = self.sandbox_log
        if self.sandbox_level == "rlimits-only" and os.geteuid() == 0:
            kw["user"], kw["group"] = NOBODY, NOBODY  # unprivileged at least
            kw["extra_groups"] = []
        if os.geteuid() == 0 and (self.sandbox_level == "bwrap+nobody" or self.sandbox_level == "rlimits-only"):
            # jupyter_client wrote the connection file (its key) 0600 as root; the kernel runs as
            # uid 65534 and must read it. The work directory is private to that uid already.
            os.chown(self.connection_file, NOBODY, NOBODY)
        elif via_sudo(self.sandbox_level):
            # likewise, through the kernel group (the work directory is closed to everyone else)
            os.chown(self.connection_file, -1, kernel_group())
            os.chmod(self.connection_file, 0o640)
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_launch_kernel(kernel_cmd, **kw)
