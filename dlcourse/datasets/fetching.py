"""Get a verified local copy of a registered file: cache, then offline mirror, then the web.

Order of sources (first that yields a verified file wins):
  1. the cache: ``$DLCOURSE_DATA_DIR``, else pooch's per-user cache (``~/.cache/dlcourse``
     on Linux); if it cannot be written, a per-user folder in the temporary directory;
  2. an offline mirror directory: ``$DLCOURSE_DATA_MIRROR``, else ``../shared/data`` next
     to a checkout (set the variable to an empty string or ``none`` to disable);
     mirror files are used where they are, nothing is copied;
  3. the registry's URLs in order (``$DLCOURSE_DATA_URL`` replaces them with one base URL,
     e.g. a campus mirror), downloaded with pooch (progress bar) into a temporary file
     next to the target, verified, then atomically moved into place. ``DLCOURSE_OFFLINE=1``
     skips this step (a machine known to have no network need not wait for timeouts).

``locate(name)`` returns the path together with the step that provided it ("cache",
"mirror" or "download"), so that callers can say where their data came from.

A file whose hash does not match is never used: it is renamed ``<file>.corrupt`` and the
error names the file with the expected and the actual hash.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import warnings
import zlib
from pathlib import Path

from dlcourse.datasets.registry import Entry, registry_entry


class DataError(RuntimeError):
    """A data set could not be provided; the message says what to do."""


class ChecksumError(DataError):
    """A file's content does not match the registry's hash."""

    def __init__(self, path: Path, expected: str, actual: str, kept: Path | None = None):
        self.path, self.expected, self.actual, self.kept = Path(path), expected, actual, kept
        msg = f"checksum mismatch for {path}: expected {expected}, got {actual}"
        if kept is not None:
            msg += f"; the bad file was kept aside as {kept}"
        super().__init__(msg)


class DataUnavailableError(DataError):
    """No cached copy, no mirror copy and no download worked."""


OFFLINE_ENV = "DLCOURSE_OFFLINE"
ORIGINS = ("cache", "mirror", "download")  # what locate() reports, in the order it tries them


def offline() -> bool:
    """True when ``$DLCOURSE_OFFLINE`` asks for no downloads (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------- locations
def _checkout_mirror() -> Path | None:
    """``<checkout>/../shared/data`` when dlcourse runs from a checkout (not site-packages)."""
    import dlcourse

    root = Path(dlcourse.__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root.parent / "shared" / "data"
    return None


def mirror_dir() -> Path | None:
    """The offline mirror directory, or None when there is none."""
    env = os.environ.get("DLCOURSE_DATA_MIRROR")
    if env is not None:
        return None if env.strip().lower() in ("", "none") else Path(env).expanduser()
    found = _checkout_mirror()
    return found if found is not None and found.is_dir() else None


def _writable(folder: Path) -> bool:
    """Really try to create the folder and a file in it (os.access lies for root and on some mounts)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        return True
    except OSError:
        return False


def _fallback_cache() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"dlcourse-data-{uid}"


def preferred_cache_dir() -> Path:
    """The configured cache (may be read-only): ``$DLCOURSE_DATA_DIR`` or pooch's OS cache."""
    env = os.environ.get("DLCOURSE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("dlcourse"))


def cache_dir() -> Path:
    """The cache folder to write to: the preferred one if writable, else a temporary one."""
    preferred = preferred_cache_dir()
    if _writable(preferred):
        return preferred
    fallback = _fallback_cache()
    if not _writable(fallback):
        raise DataError(f"neither the data cache {preferred} nor the fallback {fallback} can be "
                        "written; set DLCOURSE_DATA_DIR to a writable folder")
    warnings.warn(f"data cache {preferred} is not writable; using {fallback} instead "
                  "(set DLCOURSE_DATA_DIR to choose another folder)", stacklevel=3)
    return fallback


def urls_for(entry: Entry) -> tuple[str, ...]:
    """The URLs to try: ``$DLCOURSE_DATA_URL`` + path when set, else the registry's."""
    base = os.environ.get("DLCOURSE_DATA_URL")
    if base:
        return (base.rstrip("/") + "/" + entry.path,)
    return entry.urls


# ---------------------------------------------------------------------------- hashing
_verified: dict[tuple, bool] = {}  # (path, size, mtime_ns, hash) -> verified in this process


def file_digest(path: Path, scheme: str) -> str:
    """Hex digest of a file under a registry hash scheme (gunzip-*: of the decompressed payload)."""
    algo = scheme.split("-")[-1]
    h = hashlib.new(algo)
    opener = gzip.open if scheme.startswith("gunzip-") else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, entry: Entry, keep_aside: bool = True) -> None:
    """Raise ChecksumError unless ``path`` matches ``entry``'s hash.

    With ``keep_aside`` the bad file is renamed ``<name>.corrupt`` (so it is not used again
    but can be inspected); the shared mirror is left untouched (``keep_aside=False``).
    """
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, entry.hash)
    if _verified.get(key):
        return
    try:
        actual = f"{entry.scheme}:{file_digest(path, entry.scheme)}"
    except (OSError, EOFError, zlib.error) as exc:  # truncated or not gzip at all
        actual = f"unreadable ({type(exc).__name__}: {exc})"
    if actual.lower() != entry.hash.lower():
        raise ChecksumError(path, entry.hash, actual, _keep_aside(path) if keep_aside else None)
    _verified[key] = True


def _keep_aside(path: Path) -> Path | None:
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        return aside
    except OSError:
        return None


# ---------------------------------------------------------------------------- fetching
def _download(url: str, target: Path, entry: Entry, progress: bool) -> None:
    """Download with pooch into a temporary file beside ``target``; verify; move into place."""
    from pooch.downloaders import choose_downloader

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        downloader = choose_downloader(url, progressbar=progress)
        downloader(url, str(tmp), None)
        try:
            verify(tmp, entry)
        except ChecksumError as exc:
            # Report the final name (what the user recognises), keep the bad bytes aside.
            kept = target.with_name(target.name + ".corrupt")
            os.replace(exc.kept or tmp, kept)
            raise ChecksumError(target, exc.expected, exc.actual, kept) from None
        # mkstemp makes 0600 files; a verified data file gets the modes the umask gives any new
        # file (a shared cache that the grader's sandboxed kernels read must be readable by them)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(name: str, *, progress: bool = True, registry: str | os.PathLike | None = None) -> Path:
    """Return the path of a verified local copy of registered file ``name``.

    Tries the cache, the offline mirror, then each URL. Raises ChecksumError when the only
    copies found were corrupt, DataUnavailableError (saying what to download and where to
    put it) when nothing could be had.
    """
    return locate(name, progress=progress, registry=registry)[0]


def locate(name: str, *, progress: bool = True,
           registry: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Like ``fetch``, but also say which step provided the file: (path, origin), origin in ORIGINS."""
    entry = registry_entry(name, registry)
    problems: list[str] = []
    corrupt: list[ChecksumError] = []

    # The configured cache, then the fallback used when it was read-only (deduplicated).
    for path in dict.fromkeys([preferred_cache_dir() / entry.path, _fallback_cache() / entry.path]):
        if path.is_file():
            try:
                verify(path, entry)
                return path, "cache"
            except ChecksumError as exc:
                corrupt.append(exc)

    mirror = mirror_dir()
    if mirror is not None:
        path = mirror / entry.path
        if path.is_file():
            try:
                verify(path, entry, keep_aside=False)
                return path, "mirror"
            except ChecksumError as exc:
                corrupt.append(exc)
        else:
            problems.append(f"not in the mirror: {path}")

    import requests  # pooch's HTTP transport; its errors mean "this URL did not work"

    target = cache_dir() / entry.path
    urls = urls_for(entry)
    if offline():
        problems.append(f"downloads are switched off ({OFFLINE_ENV}={os.environ[OFFLINE_ENV]})")
        urls = ()
    for url in urls:
        try:
            _download(url, target, entry, progress)
        except ChecksumError as exc:
            corrupt.append(exc)
            continue
        except (requests.RequestException, OSError, ValueError) as exc:  # refused, 404, cut off
            problems.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        for exc in corrupt:
            warnings.warn(f"ignored a corrupt copy: {exc}", stacklevel=3)
        return target, "download"

    if corrupt:
        detail = "; ".join(str(e) for e in corrupt)
        first = corrupt[0]
        err = ChecksumError(first.path, first.expected, first.actual, first.kept)
        err.args = (detail + ". Delete or replace the file, or download it again from one of: "
                    + ", ".join(urls_for(entry)),)
        raise err
    where_mirror = str(mirror) if mirror is not None else "a folder of your choice"
    raise DataUnavailableError(
        f"could not get data set {name!r} ({entry.path}): no verified copy in the cache, "
        f"no mirror copy, and no download succeeded.\n  "
        + "\n  ".join(problems)
        + f"\nTo fix: download {entry.path.rsplit('/', 1)[-1]} from one of\n    "
        + "\n    ".join(entry.urls)
        + f"\nand save it as\n    {target}\n"
        + f"(or put it at <mirror>/{entry.path} with DLCOURSE_DATA_MIRROR=<mirror>, e.g. {where_mirror}). "
        + f"Expected {entry.hash}."
    )
