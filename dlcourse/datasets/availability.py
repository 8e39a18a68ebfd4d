"""Before a notebook runs: get the data it declares, and say what it will work on.

Every notebook's setup cell calls ``ensure([...])`` with the data sets named in its
``dlcourse.prefetch`` metadata. For each one it tries the usual sources (cache, offline
mirror, download; see fetching.py) and prints one line saying which one provided it.

Some data sets have a stand-in that ships with an installed package, so a notebook can
still run with no network and no mirror: the MNIST loaders use scikit-learn's bundled
8x8 digits instead (see mnist.py), and the text loader Python's own help topics instead of
The Time Machine (see timemachine.py). For those, ``ensure`` does not raise: it prints that
the stand-in will be used and remembers that it said so, so the loader need not warn a
second time. A data set without a stand-in that cannot be had is an error naming it.

    ensure(["mnist-test-images", "mnist-test-labels"])   # prints two lines, returns their sources
    FALLBACKS["mnist-test-images"]                       # "digits"
"""
from __future__ import annotations

from typing import Iterable

from dlcourse.datasets.fetching import (OFFLINE_ENV, ChecksumError, DataError, DataUnavailableError,
                                        locate, offline)

# Registered file -> the bundled stand-in its loaders use when the file cannot be had.
FALLBACKS: dict[str, str] = {
    "mnist-test-images": "digits",
    "mnist-test-labels": "digits",
    "mnist-train-images": "digits",
    "mnist-train-labels": "digits",
    "timemachine": "pydoc-topics",
}
# What each stand-in is, in the words a page prints.
FALLBACK_DESCRIPTIONS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits, upsampled to 28x28",
    "pydoc-topics": "the English text of Python's own help topics (the standard library's pydoc_data)",
}
_WHERE = {
    "cache": "verified copy in the local cache",
    "mirror": "verified copy in the offline mirror",
    "download": "downloaded and verified",
}

# Data sets for which ensure() has already announced the stand-in in this process.
_announced: set[str] = set()


def fallback_announced(name: str) -> bool:
    """True when ``ensure`` already told the reader that ``name`` is replaced by its stand-in."""
    return name in _announced


def _reason(exc: DataError) -> str:
    """Why a data set could not be had, in a few words (the exception holds the details)."""
    if isinstance(exc, ChecksumError):
        return "the only copies found were corrupt"
    if offline():
        return f"no copy in the cache or the mirror, and {OFFLINE_ENV} turns downloads off"
    return "no copy in the cache or the mirror, and no download worked"


def ensure(names: Iterable[str], *, progress: bool = True) -> dict[str, str]:
    """Fetch each named data set if possible; print and return where each one comes from.

    Returns ``{name: source}`` with source "cache", "mirror", "download" or, for a data set
    that could not be had but has a bundled stand-in, "fallback:<stand-in>" (e.g.
    "fallback:digits"). Raises DataUnavailableError (DataError when only corrupt copies
    were found) naming the data set when one without a stand-in cannot be had; the
    original error, with what to download and where to put it, is chained.
    """
    sources: dict[str, str] = {}
    for name in names:
        try:
            path, origin = locate(name, progress=progress)
        except DataError as exc:
            stand_in = FALLBACKS.get(name)
            if stand_in is None:
                # a corrupt copy stays a DataError (ChecksumError needs the file's hashes)
                error = DataError if isinstance(exc, ChecksumError) else DataUnavailableError
                raise error(f"this notebook needs data set {name!r}, which has no bundled "
                            f"stand-in: {exc}") from exc
            sources[name] = f"fallback:{stand_in}"
            _announced.add(name)
            print(f"{name}: not available ({_reason(exc)}); the loaders will use "
                  f"{FALLBACK_DESCRIPTIONS[stand_in]} instead")
            continue
        _announced.discard(name)
        sources[name] = origin
        print(f"{name}: {_WHERE[origin]} ({path})")
    return sources
