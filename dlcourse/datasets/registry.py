"""The data-set registry: which file each data set is, where it comes from, how to verify it.

The registry is a plain text file shipped inside the package (``registry.txt`` beside this
module), so the same entries are used from a checkout, a pip install from git, or Colab.
The environment variable ``DLCOURSE_DATA_REGISTRY`` may point to another file with the
same format (instructors adding data sets; the tests' fake 60k MNIST).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("registry.txt")
HASH_SCHEMES = ("sha256", "md5", "gunzip-sha256")


@dataclass(frozen=True)
class Entry:
    """One downloadable file. ``path`` is relative to the cache and to a mirror directory."""

    name: str
    path: str
    hash: str  # "scheme:hexdigest", scheme one of HASH_SCHEMES
    licence: str
    urls: tuple[str, ...]

    @property
    def scheme(self) -> str:
        return self.hash.split(":", 1)[0]

    @property
    def digest(self) -> str:
        return self.hash.split(":", 1)[1].lower()


def parse_registry(text: str, source: str = "<registry>") -> dict[str, Entry]:
    """Parse registry text into ``{name: Entry}``; a malformed line is an error naming it."""
    entries: dict[str, Entry] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{source}, line {lineno}"
        if len(fields) < 5:
            raise ValueError(f"{where}: expected 'name path hash licence url...', got {raw!r}")
        name, path, hash_, licence, *urls = fields
        scheme, sep, digest = hash_.partition(":")
        if not sep or scheme not in HASH_SCHEMES or not digest:
            raise ValueError(f"{where}: hash must be one of {HASH_SCHEMES} as 'scheme:hex', got {hash_!r}")
        if name in entries:
            raise ValueError(f"{where}: duplicate entry {name!r}")
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError(f"{where}: path must be relative and stay inside the cache, got {path!r}")
        entries[name] = Entry(name, path, hash_, licence, tuple(urls))
    return entries


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Entry]:
    """Read the registry: ``path``, else ``$DLCOURSE_DATA_REGISTRY``, else the packaged file."""
    path = Path(path or os.environ.get("DLCOURSE_DATA_REGISTRY") or REGISTRY_FILE)
    return parse_registry(path.read_text(encoding="utf-8"), str(path))


def registry_entry(name: str, registry: str | os.PathLike | None = None) -> Entry:
    """Look up one entry; an unknown name is an error that lists the known ones."""
    entries = load_registry(registry)
    try:
        return entries[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; the registry knows {sorted(entries)}") from None
