"""datasets.ensure (a setup cell's data step), locate's origins, offline mode, split descriptions.

The data sets here are FAKE: a registry of our own (DLCOURSE_DATA_REGISTRY) gives the names
"mnist-test-labels" (which has the digits stand-in), "timemachine" (which has Python's help
topics) and "fake-book" (which has none) to small files of ours, so that no test needs the real MNIST, a mirror or a network.
"""
from __future__ import annotations

import hashlib
import warnings

import pytest
import torch

from dlcourse import datasets
from dlcourse.datasets import availability

BLOB = b"fake payload for the availability tests\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A registry of two FAKE data sets, an empty cache, an empty mirror, a closed port, no TMPDIR spill."""
    digest = hashlib.sha256(BLOB).hexdigest()
    registry = tmp_path / "registry.txt"
    registry.write_text(f"mnist-test-labels fake/labels.bin sha256:{digest} FAKE http://127.0.0.1:9/labels.bin\n"
                        f"fake-book fake/book.txt sha256:{digest} FAKE http://127.0.0.1:9/book.txt\n"
                        f"timemachine fake/tm.txt sha256:{digest} FAKE http://127.0.0.1:9/tm.txt\n")
    for folder in ("cache", "mirror", "tmp"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("DLCOURSE_DATA_REGISTRY", str(registry))
    monkeypatch.setenv("DLCOURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    monkeypatch.setenv("DLCOURSE_DATA_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.delenv("DLCOURSE_OFFLINE", raising=False)
    monkeypatch.setattr(availability, "_announced", set())
    return tmp_path


def _put(folder, relpath="fake/labels.bin", blob=BLOB):
    path = folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


def test_ensure_reports_the_mirror_and_the_cache(fake, capsys):
    mirrored = _put(fake / "mirror")
    assert datasets.locate("mnist-test-labels") == (mirrored, "mirror")
    assert datasets.ensure(["mnist-test-labels"]) == {"mnist-test-labels": "mirror"}
    assert capsys.readouterr().out == f"mnist-test-labels: verified copy in the offline mirror ({mirrored})\n"
    cached = _put(fake / "cache")
    assert datasets.ensure(["mnist-test-labels"]) == {"mnist-test-labels": "cache"}
    assert capsys.readouterr().out == f"mnist-test-labels: verified copy in the local cache ({cached})\n"


def test_ensure_names_the_stand_in_instead_of_raising(fake, capsys):
    assert datasets.ensure(["mnist-test-labels"]) == {"mnist-test-labels": "fallback:digits"}
    line = capsys.readouterr().out.strip()
    assert line == ("mnist-test-labels: not available (no copy in the cache or the mirror, and no download "
                    "worked); the loaders will use scikit-learn's bundled 8x8 handwritten digits, "
                    "upsampled to 28x28 instead")
    assert availability.fallback_announced("mnist-test-labels")


def test_ensure_raises_naming_a_data_set_without_a_stand_in(fake):
    with pytest.raises(datasets.DataUnavailableError, match="needs data set 'fake-book', which has no bundled") as info:
        datasets.ensure(["fake-book"])
    assert isinstance(info.value.__cause__, datasets.DataUnavailableError)  # what to download, and where
    assert "fake/book.txt" in str(info.value)


def test_ensure_treats_a_corrupt_copy_like_a_missing_one(fake, capsys):
    _put(fake / "mirror", blob=b"not the right bytes")
    assert datasets.ensure(["mnist-test-labels"]) == {"mnist-test-labels": "fallback:digits"}
    assert "the only copies found were corrupt" in capsys.readouterr().out
    _put(fake / "mirror", "fake/book.txt", b"wrong")
    with pytest.raises(datasets.DataError, match="fake-book"):
        datasets.ensure(["fake-book"])


def test_offline_mode_tries_no_download(fake, monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    assert datasets.offline()
    with pytest.raises(datasets.DataUnavailableError, match="downloads are switched off") as info:
        datasets.fetch("fake-book")
    assert "127.0.0.1:9/fake/book.txt" not in str(info.value)  # no URL was tried
    datasets.ensure(["mnist-test-labels"])
    assert "DLCOURSE_OFFLINE turns downloads off" in capsys.readouterr().out
    monkeypatch.setenv("DLCOURSE_OFFLINE", "0")
    assert not datasets.offline()


def test_announced_stand_in_is_not_warned_again(fake, monkeypatch):
    # the real MNIST names: ensure() announces the stand-in for both, the loader then stays quiet
    monkeypatch.delenv("DLCOURSE_DATA_REGISTRY")
    datasets.ensure(["mnist-test-images", "mnist-test-labels"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = datasets.mnist_splits(seed=0, limit=100)
    assert splits.source == "digits"
    # without the announcement the loader warns, as before
    monkeypatch.setattr(availability, "_announced", set())
    with pytest.warns(UserWarning, match="falling back"):
        datasets.mnist_splits(seed=0, limit=100)


def test_split_descriptions_say_what_a_page_trained_on():
    digits = datasets.mnist_splits(seed=0, source="digits", limit=500)
    assert digits.description == ("500 training and 359 validation images from scikit-learn's 1,797 8x8 "
                                  "handwritten digits, upsampled to 28x28")
    fake = datasets.Splits(torch.utils.data.TensorDataset(torch.zeros(6000, 1)),
                           torch.utils.data.TensorDataset(torch.zeros(2000, 1)), "test10k")
    assert fake.description == "6,000 training and 2,000 validation images from MNIST's official 10,000-image test set"


def test_every_stand_in_is_described_and_every_fallback_name_is_registered():
    from dlcourse.datasets.registry import REGISTRY_FILE, load_registry

    known = load_registry(REGISTRY_FILE)
    assert set(availability.FALLBACKS) <= set(known)
    assert set(availability.FALLBACKS.values()) <= set(availability.FALLBACK_DESCRIPTIONS)


def test_the_time_machine_falls_back_to_pythons_help_topics_and_says_so(fake, capsys):
    from dlcourse.datasets.timemachine import time_machine
    assert datasets.ensure(["timemachine"]) == {"timemachine": "fallback:pydoc-topics"}
    assert "Python's own help topics" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # announced by ensure: no second warning
        tm = time_machine()
    # the same 28 tokens as the book, more than enough text for the pages' models
    assert len(tm.vocab) == 28 and len(tm.corpus) > 200_000 and set(tm.text) <= set("abcdefghijklmnopqrstuvwxyz ")
    availability._announced.clear()
    with pytest.warns(UserWarning, match="stand-in, Python's own help topics"):
        time_machine(max_chars=1000)
    with pytest.raises(datasets.DataUnavailableError):   # a grader or test that needs the book gets it or an error
        time_machine(source="book")
