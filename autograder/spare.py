"""A sandboxed kernel started ahead of time, for the next notebook a grading worker runs.

Starting a kernel (bubblewrap, Python, ipykernel, the connection handshake) takes about half a
second, much of it waiting. A worker that grades a batch starts the kernel for its next
notebook while the current one runs, so the next notebook finds its kernel ready.

A spare is fresh: it has run no code, its work directory is new and private, and it is used
for one notebook only, with exactly the settings it was started with (isolation level,
limits, hidden paths, threads, library); any other notebook starts its own. A worker keeps
at most one spare, and shuts it down (and releases its work directory) when it exits.
"""
from __future__ import annotations

import asyncio
import multiprocessing.util
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from autograder.sandbox import Limits, SandboxKernelManager, prepare_workdir, release_workdir


@dataclass
class Spare:
    key: tuple
    km: SandboxKernelManager
    workdir: Path
    mounted: bool
    thread: threading.Thread | None = None
    error: BaseException | None = None


_spare: Spare | None = None


def settings_key(level: str, limits: Limits, hide: list[Path], threads: int, library: Path | None) -> tuple:
    return (level, tuple(sorted(limits.as_dict().items())), tuple(map(str, hide)), threads, str(library))


def new_manager(workdir: Path, *, limits: Limits, level: str, hide: list[Path], threads: int,
                library: Path | None) -> tuple[SandboxKernelManager, bool]:
    """A kernel manager for a fresh work directory (made a tmpfs where possible). Not started."""
    from autograder.execute import BoundedKernelClient

    mounted = prepare_workdir(workdir, level, limits)
    try:
        km = SandboxKernelManager(workdir=workdir, limits=limits, level=level, hide=hide, threads=threads,
                                  library=library, ram_backed_disk=mounted)
        km.client_factory = BoundedKernelClient
    except BaseException:
        release_workdir(workdir, mounted)
        raise
    return km, mounted


def prestart(scratch: Path, *, limits: Limits, level: str, hide: list[Path], threads: int,
             library: Path | None) -> None:
    """Start the kernel for the next notebook in the background (replacing an unused spare)."""
    global _spare
    discard()
    workdir = Path(tempfile.mkdtemp(prefix="work-", dir=scratch))
    try:
        km, mounted = new_manager(workdir, limits=limits, level=level, hide=hide, threads=threads, library=library)
    except Exception:  # noqa: BLE001 - no spare: the next notebook starts its own kernel
        workdir.rmdir()
        return
    spare = Spare(settings_key(level, limits, hide, threads, library), km, workdir, mounted)

    def start():
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(km.start_kernel())
        except BaseException as exc:  # noqa: BLE001 - reported when the spare is taken
            spare.error = exc
        finally:
            loop.close()

    spare.thread = threading.Thread(target=start, daemon=True, name="spare-kernel")
    spare.thread.start()
    _spare = spare


def take(level: str, limits: Limits, hide: list[Path], threads: int, library: Path | None):
    """(kernel manager with a started kernel, its work directory, mounted) for these settings, or
    None (no spare, other settings, or its start failed: the caller starts its own)."""
    global _spare
    spare, _spare = _spare, None
    if spare is None:
        return None
    spare.thread.join()
    process = getattr(getattr(spare.km, "provisioner", None), "process", None)
    if spare.key != settings_key(level, limits, hide, threads, library) or spare.error is not None \
            or process is None or process.poll() is not None:  # (other settings, or it failed or died)
        _shutdown(spare)
        return None
    return spare.km, spare.workdir, spare.mounted


def discard() -> None:
    """Shut down an unused spare (at exit, or before starting another)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.thread.join()
        _shutdown(spare)


def _shutdown(spare: Spare) -> None:
    loop = asyncio.new_event_loop()
    try:
        if spare.km.has_kernel:
            loop.run_until_complete(spare.km.shutdown_kernel(now=True))
    except Exception:  # noqa: BLE001 - gone already
        pass
    finally:
        loop.close()
        spare.km.release_cgroup()
        release_workdir(spare.workdir, spare.mounted)


# before the private scratch folder is removed (exitpriority 0): a spare lives inside it
multiprocessing.util.Finalize(None, discard, exitpriority=10)
