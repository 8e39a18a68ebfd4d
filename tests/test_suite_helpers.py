"""The shared test helpers (tests/suite_helpers.py) do what the tests relying on them assume:
a missing prerequisite fails in CI as root and skips elsewhere, a cached data set counts as
available without the mirror, and the loopback server serves and records."""
from __future__ import annotations

import shutil
import urllib.error
import urllib.request

import pytest
from _pytest.outcomes import Failed, Skipped

import suite_helpers
from suite_helpers import ROOT
from dlcourse.datasets import fetching
from dlcourse.datasets.registry import load_registry

MNIST_TEST = ["mnist-test-images", "mnist-test-labels"]


@pytest.mark.parametrize("ci, euid, outcome", [
    ("true", 0, Failed), ("1", 0, Failed),          # CI as root: make test's set-up should have provided it
    ("true", 1000, Skipped), ("", 0, Skipped),      # a user's machine, or a root shell outside CI
    ("false", 0, Skipped),
])
def test_require_or_skip_fails_only_in_ci_as_root(monkeypatch, ci, euid, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(suite_helpers.os, "geteuid", lambda: euid)
    with pytest.raises(outcome, match="Chromium is missing"):
        suite_helpers.require_or_skip("Chromium is missing")


def _offline_env(monkeypatch, tmp_path, mirror="none"):
    """No mirror (unless given), an empty cache, downloads off: only what we put there exists."""
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("DLCOURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    monkeypatch.setattr(fetching.tempfile, "tempdir", None)  # re-read TMPDIR (fallback cache)


def test_require_data_skips_when_the_data_cannot_be_had(monkeypatch, tmp_path):
    _offline_env(monkeypatch, tmp_path)
    with pytest.raises(Skipped, match="mnist-test-images"):
        suite_helpers.require_data(MNIST_TEST)


def test_require_data_accepts_a_cached_copy_without_the_mirror(monkeypatch, tmp_path):
    mirror = fetching.mirror_dir()
    registry = load_registry()
    if mirror is None or not all((mirror / registry[n].path).is_file() for n in MNIST_TEST):
        pytest.skip("needs MNIST's test files to copy into a cache (the offline mirror)")
    _offline_env(monkeypatch, tmp_path)
    for name in MNIST_TEST:  # a cache as a previous download leaves it
        target = tmp_path / "cache" / registry[name].path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror / registry[name].path, target)
    assert suite_helpers.require_data(MNIST_TEST) == {name: "cache" for name in MNIST_TEST}


def test_loopback_server_serves_a_folder_and_records_every_request(tmp_path):
    (tmp_path / "page.html").write_text("<p>hello</p>")
    with suite_helpers.LoopbackServer(directory=tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(server.url + "/page.html", timeout=10).read() == b"<p>hello</p>"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url + "/missing.html", timeout=10)
        assert server.requests == ["/page.html", "/missing.html"]
    with pytest.raises(urllib.error.URLError):  # stopped when the block ends
        urllib.request.urlopen(server.url + "/page.html", timeout=2)


@pytest.mark.browser
def test_chromium_launcher_opens_a_served_page(tmp_path):
    (tmp_path / "index.html").write_text("<title>t</title><p id=x>served</p>")

    def visit():
        with suite_helpers.LoopbackServer(directory=tmp_path) as server, suite_helpers.chromium() as browser:
            page = browser.new_page()
            page.goto(server.url + "/index.html")
            text = page.inner_text("#x")
            page.close()
            return text

    # in a thread of its own: the browser tests' session may already drive Playwright's sync API
    # (with its event loop) in this one, and a second sync session cannot start inside that loop
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(visit).result(timeout=120) == "served"


def test_an_xdist_group_runs_on_one_worker_and_builds_its_session_fixture_once(tmp_path):
    # tests/conftest.py makes `--dist loadgroup` group under pytest 9; without it each worker
    # took half of the group and built the group's session fixture (a graded batch) again
    import subprocess
    import sys
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "pytestmark = pytest.mark.xdist_group('g')\n"
        "@pytest.fixture(scope='session')\n"
        "def built():\n"
        "    with open('builds', 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        "@pytest.mark.parametrize('i', range(20))\n"
        "def test_member(built, i):\n"
        "    pass\n")
    (tmp_path / "test_loose.py").write_text("import pytest\n@pytest.mark.parametrize('i', range(20))\ndef test_x(i):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "builds").read_text().splitlines() in (["gw0"], ["gw1"])
