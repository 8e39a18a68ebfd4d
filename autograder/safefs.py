"""Files in folders that other users can write, opened so that nobody can redirect us.

The grading side (the `autograder watch` service, the instructor's collect) reads and
writes inside nbgrader's exchange, where every student may create, rename and delete
entries. A path such as `inbound/<folder>/sub/file` is only as safe as each of its
components: a student who replaces `sub` with a symbolic link to the instructor's home
between our check and our open sends a privileged reader there. So, as openat(2) allows:

- a folder is reached component by component from a file descriptor of its parent, each
  opened with O_NOFOLLOW | O_DIRECTORY: a link anywhere on the way fails with ELOOP or
  ENOTDIR instead of being followed (`open_dir`);
- a file is opened through its folder's descriptor with O_NOFOLLOW | O_NONBLOCK, and only
  a regular file is read (a FIFO would block the reader, a device would read forever)
  (`read_file`);
- anything written is created under a random name with O_CREAT | O_EXCL | O_NOFOLLOW, so
  a link planted at a predictable temporary name is never written through, then renamed
  over the final name inside the same folder descriptor; rename(2) replaces a link at the
  destination instead of following it (`write_file`);
- a tree is copied by walking descriptors, never names: regular files only, and a link,
  device or FIFO anywhere is refused with the path it was found at (`copy_tree`).

Every refusal is an `Unsafe` error whose message names the offending path, so that the
caller can say which submission was refused and why.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20


class Unsafe(Exception):
    """A path cannot be used safely: a link, a special file, a wrong owner, too large, missing."""


def _check_name(name: str) -> str:
    """One path component: no separators, not empty, not `.` or `..` (they would leave the folder)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Unsafe(f"{name!r} is not a plain file name")
    return name


def _why(err: OSError, where: str, dir_fd: int | None = None, name: str | None = None) -> Unsafe:
    """An OSError from an O_NOFOLLOW open, said in words (O_DIRECTORY on a link gives ENOTDIR:
    given the folder and name, a link is named as one)."""
    if err.errno == errno.ENOTDIR and dir_fd is not None and name is not None:
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return Unsafe(f"{where} is a symbolic link")
        except OSError:
            pass
    if err.errno in (errno.ELOOP, errno.EMLINK):
        return Unsafe(f"{where} is a symbolic link")
    if err.errno == errno.ENOTDIR:
        return Unsafe(f"{where} is not a folder (or a link on the way to it)")
    if err.errno == errno.ENOENT:
        return Unsafe(f"{where} does not exist")
    return Unsafe(f"{where}: {err.strerror}")


def open_dir(base: str | os.PathLike | int, *parts: str) -> int:
    """A descriptor of the folder `base/parts[0]/parts[1]/...`, no component reached through a link.

    `base` is a path the administrator chose (the exchange root, the watch's output folder)
    or a descriptor from an earlier call; it is opened as given, because a link the
    administrator put there is theirs to put. Every component in `parts` is opened with
    O_NOFOLLOW | O_DIRECTORY relative to its parent's descriptor. The caller closes the result.
    """
    if isinstance(base, int):
        fd = os.dup(base)
    else:
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise _why(err, str(base)) from None
    where = str(base) if not isinstance(base, int) else "."
    for part in parts:
        where = f"{where}/{part}"
        try:
            child = os.open(_check_name(part), DIR_FLAGS, dir_fd=fd)
        except OSError as err:
            why = _why(err, where, fd, part)
            os.close(fd)
            raise why from None
        os.close(fd)
        fd = child
    return fd


def make_dir(parent_fd: int, name: str, mode: int = 0o700, owner_uid: int | None = None) -> int:
    """Create the folder `name` in `parent_fd` (or open it if it is there) and return its descriptor.

    An existing entry must be a real folder (not a link) owned by `owner_uid` (default: us),
    and its mode is set to `mode`: a folder someone else made, or left open, is not reused.
    """
    _check_name(name)
    owner_uid = os.geteuid() if owner_uid is None else owner_uid
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        pass
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as err:
        raise _why(err, name, parent_fd, name) from None
    info = os.fstat(fd)
    if info.st_uid != owner_uid:
        os.close(fd)
        raise Unsafe(f"{name} belongs to uid {info.st_uid}, not {owner_uid}")
    os.fchmod(fd, mode)  # mkdir's mode passes through the umask; an old folder may be wider
    return fd


def make_dirs(base: str | os.PathLike | int, *parts: str, mode: int = 0o700) -> int:
    """`make_dir` for each component in turn; the descriptor of the last."""
    fd = open_dir(base)
    for part in parts:
        child = make_dir(fd, part, mode)
        os.close(fd)
        fd = child
    return fd


def read_file(dir_fd: int, name: str, limit: int, owner_uid: int | None = None) -> bytes:
    """The bytes of the regular file `name` in `dir_fd`: no link, no FIFO or device, at most `limit` bytes.

    With `owner_uid`, the file must also belong to that user.
    """
    try:
        fd = os.open(_check_name(name), FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise _why(err, name) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unsafe(f"{name} is not a regular file")
        if owner_uid is not None and info.st_uid != owner_uid:
            raise Unsafe(f"{name} belongs to uid {info.st_uid}, not {owner_uid}")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Unsafe(f"{name} is larger than {limit} bytes")
    return data


def write_file(dir_fd: int, name: str, data: bytes | str, mode: int = 0o600,
               owner: tuple[int, int] | None = None) -> None:
    """Replace `name` in `dir_fd` with `data`, atomically, with `mode` (and `owner`, as root).

    Written to a new file of a random name, created exclusively and without following a
    link, then renamed over `name`: a link planted at `name` or at any guessable temporary
    name is replaced or never touched, and a reader sees the old file or the new one.
    """
    _check_name(name)
    if isinstance(data, str):
        data = data.encode()
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fd, mode)  # the mode exactly, whatever the umask
            if owner is not None:
                os.fchown(fd, *owner)
            fh.write(data)
            fh.flush()
            os.fsync(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def remove_tree(parent_fd: int, name: str) -> None:
    """Delete `name` in `parent_fd` and everything under it, never following a link out of it."""
    _check_name(name)
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            remove_tree(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def copy_tree(src_fd: int, dest_fd: int | None, *, limit: int, owner_uid: int | None = None, max_entries: int = 1000,
              skip: frozenset[str] = frozenset(), file_mode: int = 0o600, dir_mode: int = 0o700,
              _state: list[int] | None = None, _where: str = "") -> int:
    """Copy the folder `src_fd` into the (empty) folder `dest_fd`; returns the bytes copied.

    Regular files and folders only: a symbolic link, FIFO, socket or device anywhere in the
    tree is refused (`Unsafe`, naming where), as is an entry not owned by `owner_uid` when
    given, more than `limit` bytes or `max_entries` entries in all. Each entry is opened
    relative to its folder's descriptor without following links, and checked on the
    descriptor it was opened as (fstat), so swapping an entry for a link between listing and
    opening is caught, not followed. Names in `skip` (e.g. .ipynb_checkpoints) are left out.
    With `dest_fd` None the tree is only checked by the same rules (sizes from fstat).
    """
    state = _state if _state is not None else [0, 0]  # bytes, entries
    if owner_uid is not None and os.fstat(src_fd).st_uid != owner_uid:
        raise Unsafe(f"{_where or '.'} belongs to uid {os.fstat(src_fd).st_uid}, not {owner_uid}")
    for name in sorted(os.listdir(src_fd)):
        if name in skip:
            continue
        where = f"{_where}/{name}" if _where else name
        state[1] += 1
        if state[1] > max_entries:
            raise Unsafe(f"more than {max_entries} files and folders")
        info = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise Unsafe(f"{where} is a symbolic link")
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=src_fd)
            except OSError as err:
                raise _why(err, where, src_fd, name) from None
            try:
                if not stat.S_ISDIR(os.fstat(child).st_mode):
                    raise Unsafe(f"{where} is not a folder")
                if dest_fd is None:
                    copy_tree(child, None, limit=limit, owner_uid=owner_uid, max_entries=max_entries, skip=skip,
                              _state=state, _where=where)
                    continue
                os.mkdir(name, dir_mode, dir_fd=dest_fd)
                out = os.open(name, DIR_FLAGS, dir_fd=dest_fd)
                try:
                    os.fchmod(out, dir_mode)
                    copy_tree(child, out, limit=limit, owner_uid=owner_uid, max_entries=max_entries, skip=skip,
                              file_mode=file_mode, dir_mode=dir_mode, _state=state, _where=where)
                finally:
                    os.close(out)
            finally:
                os.close(child)
            continue
        if not stat.S_ISREG(info.st_mode):
            raise Unsafe(f"{where} is not a regular file")
        try:
            fd = os.open(name, FILE_FLAGS, dir_fd=src_fd)
        except OSError as err:
            raise _why(err, where) from None
        with os.fdopen(fd, "rb") as fin:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise Unsafe(f"{where} is not a regular file")
            if owner_uid is not None and opened.st_uid != owner_uid:
                raise Unsafe(f"{where} belongs to uid {opened.st_uid}, not {owner_uid}")
            if dest_fd is None:
                state[0] += opened.st_size
                if state[0] > limit:
                    raise Unsafe(f"more than {limit // 2**20} MiB in all")
                continue
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode,
                          dir_fd=dest_fd)
            with os.fdopen(out, "wb") as fout:
                os.fchmod(out, file_mode)
                while True:
                    chunk = fin.read(CHUNK)
                    if not chunk:
                        break
                    state[0] += len(chunk)
                    if state[0] > limit:  # counted as read: a file growing while we copy cannot slip past
                        raise Unsafe(f"more than {limit // 2**20} MiB in all")
                    fout.write(chunk)
    return state[0]


def owner_of(dir_fd: int, name: str | None = None) -> int:
    """The uid owning `name` in `dir_fd` (not following a link), or the folder itself."""
    if name is None:
        return os.fstat(dir_fd).st_uid
    return os.stat(_check_name(name), dir_fd=dir_fd, follow_symlinks=False).st_uid


def path_of(fd: int) -> Path:
    """Where a descriptor points now, for messages only (never to open again)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(f"<fd {fd}>")
