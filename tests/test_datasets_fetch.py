"""The real download path of dlcourse.datasets.fetch, against a loopback HTTP server.

A real ``http.server`` on 127.0.0.1 (random port) serves a temporary copy of the offline
mirror (../shared/data); DLCOURSE_DATA_URL points fetch at it. Nothing here reaches the
internet: the "offline" cases point at a loopback port on which nothing listens.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcourse import datasets
from dlcourse.datasets import fetching as fetch_mod
from dlcourse.datasets.registry import load_registry, parse_registry
from suite_helpers import LoopbackServer, require_or_skip

pytestmark = pytest.mark.network


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        cut = self.server.owner.cut_offs.get(self.path.lstrip("/"))
        if cut is None:
            return super().do_GET()
        # Announce the whole file but send only `cut` bytes, then close the connection.
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:cut])
        self.wfile.flush()
        self.close_connection = True


class MirrorServer(LoopbackServer):
    """The shared loopback server over a copy of the mirror, able to cut a transfer short."""

    def __init__(self, root: Path):
        super().__init__(directory=root, handler=_Handler)
        self.root = Path(root)
        self.cut_offs: dict[str, int] = {}

    def cut_off(self, relpath: str, nbytes: int) -> None:
        self.cut_offs[relpath] = nbytes


def closed_port_url() -> str:
    """A loopback URL on which nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------- fixtures
def _shared_mirror() -> Path | None:
    env = os.environ.get("DLCOURSE_DATA_MIRROR")
    path = Path(env) if env else fetch_mod._checkout_mirror()
    return path if path is not None and path.is_dir() else None


SHARED = _shared_mirror()
needs_mirror = pytest.mark.skipif(SHARED is None, reason="needs the offline mirror ../shared/data")


def readme_checksums() -> dict[str, str]:
    """SHA-256 values published in the mirror's README (the trusted reference)."""
    sums = {}
    for line in (SHARED / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 3 and len(cells[2].strip("`")) == 64 and cells[1]:
            sums[cells[1].split()[0].strip("`")] = cells[2].strip("`")
    return sums


@pytest.fixture
def served(tmp_path):
    """A writable copy of the mirror served on loopback."""
    root = tmp_path / "served"
    shutil.copytree(SHARED, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    with MirrorServer(root) as server:
        yield server


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty cache in tmp, no mirror, no registry override; returns the cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DLCOURSE_DATA_DIR", str(cache))
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", "")
    monkeypatch.delenv("DLCOURSE_DATA_REGISTRY", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the read-only fallback lands in tmp too
    monkeypatch.setattr("tempfile.tempdir", None)
    return cache


LABELS = "mnist/t10k-labels-idx1-ubyte.gz"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- registry
@needs_mirror
def test_registry_hashes_match_published_mirror_checksums():
    sums = readme_checksums()
    reg = load_registry()
    assert reg["mnist-test-images"].hash == "gunzip-sha256:" + sums["t10k-images-idx3-ubyte"]
    assert reg["mnist-test-labels"].hash == "gunzip-sha256:" + sums["t10k-labels-idx1-ubyte"]
    assert reg["timemachine"].hash == "sha256:" + sums["timemachine.txt"]


def test_registry_entries_have_licence_and_https_mirrors_first():
    for entry in load_registry().values():
        assert entry.licence and entry.urls
        assert entry.urls[0].startswith("http")


def test_malformed_registry_line_is_named():
    with pytest.raises(ValueError, match="line 2"):
        parse_registry("# comment\nbroken-line mnist/x.gz\n", "reg.txt")
    with pytest.raises(ValueError, match="hash must be"):
        parse_registry("x a/b.gz sha1:abc CC0 http://h/x\n")


def test_readme_lists_every_registry_entry():
    readme = (Path(__file__).resolve().parents[1] / "data" / "README.md").read_text()
    for entry in load_registry().values():
        assert entry.name in readme and entry.digest in readme and entry.licence in readme


# ---------------------------------------------------------------------------- download path
@needs_mirror
def test_fresh_download_is_verified_cached_and_reused(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    path = datasets.fetch("mnist-test-labels")
    assert path == env / LABELS
    assert served.requests == ["/" + LABELS]
    assert sha256(gzip.decompress(path.read_bytes())) == readme_checksums()["t10k-labels-idx1-ubyte"]
    assert not list(path.parent.glob("*.part"))  # the temporary file was moved, not left
    # Second call: served from the cache, the server sees no new request.
    assert datasets.fetch("mnist-test-labels") == path
    assert served.requests == ["/" + LABELS]


@needs_mirror
def test_corrupted_download_names_file_and_hashes_and_keeps_it_aside(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    payload = bytearray(gzip.decompress((served.root / LABELS).read_bytes()))
    payload[100] ^= 1  # one flipped bit in one label
    (served.root / LABELS).write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.fetch("mnist-test-labels")
    msg = str(info.value)
    target = env / LABELS
    assert str(target) in msg
    assert readme_checksums()["t10k-labels-idx1-ubyte"] in msg  # expected
    assert sha256(bytes(payload)) in msg  # actual, computed independently here
    assert not target.exists()
    kept = target.with_name(target.name + ".corrupt")
    assert gzip.decompress(kept.read_bytes()) == bytes(payload)


@needs_mirror
def test_truncated_file_is_rejected(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    data = (served.root / LABELS).read_bytes()
    (served.root / LABELS).write_bytes(data[: len(data) // 2])
    with pytest.raises(datasets.ChecksumError, match="unreadable.*EOFError"):
        datasets.fetch("mnist-test-labels")
    assert (env / (LABELS + ".corrupt")).stat().st_size == len(data) // 2


@needs_mirror
def test_transfer_cut_off_leaves_nothing_behind(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    served.cut_off(LABELS, 1000)  # Content-Length says 4542, the connection ends after 1000
    with pytest.raises(datasets.DataUnavailableError, match=LABELS.replace(".", r"\.")):
        datasets.fetch("mnist-test-labels")
    assert not (env / LABELS).exists()
    assert not list((env / "mnist").glob("*.part"))


@needs_mirror
def test_missing_file_404_says_what_to_download_and_where(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    (served.root / LABELS).unlink()
    with pytest.raises(datasets.DataUnavailableError) as info:
        datasets.fetch("mnist-test-labels")
    msg = str(info.value)
    assert "404" in msg and served.url + "/" + LABELS in msg
    assert str(env / LABELS) in msg  # exactly where to put the file


def test_offline_without_mirror_gives_actionable_message(env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", closed_port_url())
    with pytest.raises(datasets.DataUnavailableError) as info:
        datasets.fetch("timemachine")
    msg = str(info.value)
    entry = load_registry()["timemachine"]
    assert "ConnectionError" in msg
    assert all(url in msg for url in entry.urls)  # the canonical URLs to download from
    assert str(env / entry.path) in msg  # and the exact place to save the file
    assert "DLCOURSE_DATA_MIRROR" in msg


@needs_mirror
def test_mirror_is_used_with_no_network(env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", closed_port_url())
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(SHARED))
    path = datasets.fetch("mnist-test-images")
    assert path == SHARED / "mnist/t10k-images-idx3-ubyte.gz"
    assert not (env / "mnist").exists()  # nothing copied into the cache


@needs_mirror
def test_corrupt_mirror_falls_through_to_download_and_is_left_untouched(served, env, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "mnist").mkdir(parents=True)
    (mirror / LABELS).write_bytes(gzip.compress(b"not mnist"))
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    with pytest.warns(UserWarning, match="corrupt copy"):
        path = datasets.fetch("mnist-test-labels")
    assert path == env / LABELS
    assert (mirror / LABELS).exists()


@needs_mirror
def test_corrupt_cached_file_is_kept_aside_and_replaced(served, env, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA_URL", served.url)
    (env / "mnist").mkdir(parents=True)
    (env / LABELS).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="checksum mismatch"):
        path = datasets.fetch("mnist-test-labels")
    assert (env / (LABELS + ".corrupt")).read_bytes() == b"garbage"
    assert path.read_bytes() == (served.root / LABELS).read_bytes()


@needs_mirror
def test_read_only_cache_falls_back_to_a_writable_folder(served, tmp_path):
    """The cache is made truly read-only (chmod, or a read-only bind mount when root)."""
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    code = ("import warnings, sys; warnings.simplefilter('always');"
            "from dlcourse import datasets; print(datasets.fetch('mnist-test-labels', progress=False))")
    env = dict(os.environ, DLCOURSE_DATA_DIR=str(cache), DLCOURSE_DATA_MIRROR="",
               DLCOURSE_DATA_URL=served.url, TMPDIR=str(tmp_path), DLCOURSE_THREADS="1")
    env.pop("DLCOURSE_DATA_REGISTRY", None)
    if os.geteuid() != 0:
        cache.chmod(0o555)
        cmd = [sys.executable, "-c", code]
    elif shutil.which("bwrap"):
        cmd = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(cache), str(cache), sys.executable, "-c", code]
    else:
        require_or_skip("running as root without bwrap: cannot make a read-only folder")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.parent.parent.parent == tmp_path  # <TMPDIR>/dlcourse-data-<uid>/mnist/...
    assert path.is_file() and not any(cache.iterdir())
    assert "not writable" in out.stderr and str(cache) in out.stderr


# ---------------------------------------------------------------------------- 60k path (FAKE data)
def _idx(array: torch.Tensor) -> bytes:
    """IDX bytes for an unsigned-byte tensor: magic 0x0000 08 ndim, big-endian dims, data."""
    header = bytes([0, 0, 8, array.dim()]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def test_full_training_set_path_with_fake_data(tmp_path, env, monkeypatch):
    """FAKE 60k MNIST: random IDX files (300 images) served on loopback with their own MD5s.

    The real files' MD5s are in the packaged registry; this checks the download, md5
    verification, IDX parsing and the "full" split without the 47 MB download.
    """
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (300, 28, 28), generator=g)
    labels = torch.randint(0, 10, (300,), generator=g)
    root = tmp_path / "fake-served"
    (root / "mnist").mkdir(parents=True)
    files = {"images": _idx(images), "labels": _idx(labels)}
    lines = []
    for part, ndim in (("images", 3), ("labels", 1)):
        name = f"train-{part}-idx{ndim}-ubyte.gz"
        blob = gzip.compress(files[part])
        (root / "mnist" / name).write_bytes(blob)
        md5 = hashlib.md5(blob).hexdigest()
        lines.append(f"mnist-train-{part} mnist/{name} md5:{md5} FAKE http://127.0.0.1:9/{name}")
    registry = tmp_path / "fake-registry.txt"
    registry.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DLCOURSE_DATA_REGISTRY", str(registry))
    with MirrorServer(root) as server:
        monkeypatch.setenv("DLCOURSE_DATA_URL", server.url)
        splits = datasets.mnist_splits(seed=3, val_size=50, source="full")
    assert splits.source == "full" and len(splits.train) == 250 and len(splits.val) == 50
    x, y = splits.train.tensors
    assert torch.equal(x, images[splits.train_indices].unsqueeze(1).float() / 255)
    assert torch.equal(y, labels[splits.train_indices])
