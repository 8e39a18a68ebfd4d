"""Reading files that someone else controls: regular files only, never through a link.

Submissions come from students; replies and logs come from a kernel that owns the folder
they are in. Either could plant a symbolic link (to the instructor's solution, to
/etc/shadow), a FIFO that blocks a reader forever, or a huge file. `read_regular` opens
without following links and without blocking, checks the file type and size on the open
descriptor (so nothing can be swapped in between), and reads at most `limit` bytes.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotReadable(ValueError):
    """The path is a link, not a regular file, too large, or cannot be opened."""


class Missing(NotReadable):
    """Nothing is at the path."""


def read_regular(path: Path, limit: int, tail: bool = False, dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file `path` (the last `limit` bytes with `tail`, else at most
    `limit`, refusing larger files). With `dir_fd`, `path` is a name inside that open
    directory, so that nothing above it can be swapped for a link either."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Missing("does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotReadable("is a symbolic link, not a file") from None
        raise NotReadable(f"cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotReadable("is not a regular file")
        if tail:
            os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        elif st.st_size > limit:
            raise NotReadable(f"is {st.st_size / 2**20:.1f} MiB, over the {limit / 2**20:g} MiB limit")
        chunks, left = [], min(st.st_size, limit)
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
