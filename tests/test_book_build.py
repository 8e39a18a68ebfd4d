"""`make book` cannot report success with a failing page, and re-executes pages whose data changed.

A two-page book is built with the repository's own Makefile recipe (`make book`, with the
real .venv and book/_tools/build_guard.py) in a temporary folder, three times:

1. offline, with no mirror and a page that raises: make exits non-zero and names the page;
   the data page says it used the bundled stand-in; "Book built" is not printed;
2. the page fixed (the file it needs exists) and the data set in the mirror, no notebook
   edited: make exits 0, the failed page was re-executed and the data page now says the
   mirror provided its data (the execution cache alone would have kept both old pages);
3. nothing changed: nothing is re-executed.

The data set is a FAKE stand-in for "mnist-test-labels": a registry (DLCOURSE_DATA_REGISTRY)
that gives that name a small file of our own, so that the test needs no real MNIST.
Two quick tests check the guard's record of a page's inputs: the course-library modules a
page imports (followed transitively), and that a library change reaches only those pages.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from suite_helpers import require_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book-build")]

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
# the data lines of the notebooks' setup cell (autograder/setup_cell.py renders them the same way)
SETUP = 'from dlcourse import datasets\n_ = datasets.ensure(["mnist-test-labels"])'

CONFIG = """\
title: guard test
author: tests
only_build_toc_files: true
execute:
  execute_notebooks: cache
  cache: "_build/.jupyter_cache"
  timeout: 120
  allow_errors: false
  stderr_output: remove-warn
"""
TOC = """\
format: jb-book
root: intro
chapters:
  - file: data-page
  - file: flaky-page
"""


def _notebook(path: pathlib.Path, cells: list, prefetch: list[str] | None = None) -> None:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if prefetch:
        nb.metadata["dlcourse"] = {"prefetch": prefetch}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    if not (VENV / "bin" / "jupyter-book").exists() or not shutil.which("make"):
        require_or_skip("needs make and the repository's .venv with jupyter-book (`make venv`)")
    root = tmp_path_factory.mktemp("guarded-book")
    shutil.copy(ROOT / "Makefile", root / "Makefile")
    (root / "book" / "_tools").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "_tools" / "build_guard.py", root / "book" / "_tools" / "build_guard.py")
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "intro.md").write_text("# Guard test\n\nTwo pages.\n")
    setup = nbformat.v4.new_code_cell(SETUP, metadata={"tags": ["setup"]})
    _notebook(root / "data-page.ipynb", [nbformat.v4.new_markdown_cell("# Data page"), setup,
                                         nbformat.v4.new_code_cell("print('page done')")], ["mnist-test-labels"])
    _notebook(root / "flaky-page.ipynb", [
        nbformat.v4.new_markdown_cell("# Flaky page"),
        nbformat.v4.new_code_cell("import pathlib\n"
                                  "assert pathlib.Path('flag.txt').exists(), 'flag.txt is missing'\n"
                                  "print('flag found')")])
    # FAKE data: "mnist-test-labels" is a small file of ours, verified by its sha256
    blob = b"fake labels for the build-guard test\n"
    registry = root / "fake-registry.txt"
    registry.write_text(f"mnist-test-labels fake/labels.bin sha256:{hashlib.sha256(blob).hexdigest()} "
                        "FAKE http://127.0.0.1:9/labels.bin\n")
    mirror = root / "mirror"
    (root / "cache").mkdir()
    (root / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLCOURSE_", "MAKE"))}
    env.update(DLCOURSE_DATA_REGISTRY=str(registry), DLCOURSE_DATA_MIRROR=str(mirror),
               DLCOURSE_DATA_DIR=str(root / "cache"), TMPDIR=str(root / "tmp"), DLCOURSE_OFFLINE="1",
               DLCOURSE_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")

    # the recipe of `make book` alone: its prerequisites (venv, vendor, wheel, ...) are the
    # repository's business, so each is marked as done with -o
    prerequisites = re.search(r"^book:(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()

    def make() -> subprocess.CompletedProcess:
        cmd = ["make", *(f"-o{p}" for p in prerequisites), f"VENV={VENV}", "book"]
        return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)

    def page(name: str) -> str:
        """What the built page shows under its code cells (the outputs, not the code)."""
        text = (root / "_build" / "html" / f"{name}.html").read_text()
        return "\n".join(part[:2000] for part in text.split('class="cell_output')[1:])

    runs = {"offline, flaky page failing": make()}
    (root / "flag.txt").write_text("here\n")
    (mirror / "fake").mkdir(parents=True)
    (mirror / "fake" / "labels.bin").write_bytes(blob)
    runs["fixed, data in the mirror"] = make()
    runs["nothing changed"] = make()
    return root, runs, page


def _log(run: subprocess.CompletedProcess) -> str:
    return f"exit {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}"


def test_a_failing_page_fails_make_book_and_is_named(book):
    _, runs, _ = book
    first = runs["offline, flaky page failing"]
    assert first.returncode != 0, _log(first)
    assert "Book built" not in first.stdout
    assert "1 page(s) failed to execute" in first.stderr, _log(first)
    assert "flaky-page.ipynb: AssertionError: flag.txt is missing" in first.stderr, _log(first)
    assert "data-page.ipynb" not in first.stderr.split("failed to execute")[-1]


def test_the_next_build_reexecutes_the_failed_page_and_the_page_whose_data_changed(book):
    _, runs, page = book
    second = runs["fixed, data in the mirror"]
    assert second.returncode == 0, _log(second)
    assert "Book built" in second.stdout
    assert "re-executing data-page.ipynb" in second.stdout and "mnist-test-labels" in second.stdout, _log(second)
    assert "flag found" in page("flaky-page") and "flag.txt is missing" not in page("flaky-page")
    data_page = page("data-page")
    assert "mnist-test-labels: verified copy in the offline mirror" in data_page
    assert "not available" not in data_page


def test_an_unchanged_book_reexecutes_nothing(book):
    _, runs, _ = book
    third = runs["nothing changed"]
    assert third.returncode == 0, _log(third)
    assert "build_guard: 2 notebooks, 0 with changed inputs" in third.stdout, _log(third)
    assert "re-executing" not in third.stdout


def test_the_first_build_showed_the_stand_in(book):
    """Seen through the guard's record: the offline build ran the data page on the stand-in."""
    _, runs, _ = book
    assert "data mnist-test-labels: fallback:digits -> available" in runs["fixed, data in the mirror"].stdout


def test_library_imports_are_followed_to_the_modules_a_page_depends_on():
    sys.path.insert(0, str(ROOT / "book" / "_tools"))
    try:
        import build_guard
    finally:
        sys.path.pop(0)
    found = build_guard.library_modules("from dlcourse import conv\nimport torch\n", ROOT)
    assert {"dlcourse", "dlcourse.conv", "dlcourse.runtime"} <= found
    found = build_guard.library_modules("from dlcourse.plots import feature_map_diagram\n", ROOT)
    assert {"dlcourse.plots", "dlcourse.train", "dlcourse.summary"} <= found
    assert "dlcourse.datasets" not in found  # a page that does not touch data does not depend on it


def test_a_library_change_reaches_only_the_pages_that_import_it(tmp_path, monkeypatch):
    """fingerprints(): a page's record holds the hash of the library modules it imports (FAKE library)."""
    sys.path.insert(0, str(ROOT / "book" / "_tools"))
    try:
        import build_guard
    finally:
        sys.path.pop(0)
    (tmp_path / "dlcourse").mkdir()
    (tmp_path / "dlcourse" / "__init__.py").write_text("")
    (tmp_path / "dlcourse" / "conv.py").write_text("def size(n):\n    return n\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: uses-conv\n  - file: plain\n")
    (tmp_path / "intro.md").write_text("# intro\n")
    _notebook(tmp_path / "uses-conv.ipynb", [nbformat.v4.new_code_cell("from dlcourse import conv")])
    _notebook(tmp_path / "plain.ipynb", [nbformat.v4.new_code_cell("print(1)")])
    monkeypatch.setattr(build_guard, "machine", lambda: {"device": "cpu", "threads": "1"})
    first = build_guard.fingerprints(tmp_path)
    assert first["plain.ipynb"]["dlcourse"] == "not imported"
    (tmp_path / "dlcourse" / "conv.py").write_text("def size(n):\n    return n + 0\n")
    second = build_guard.fingerprints(tmp_path)
    assert second["uses-conv.ipynb"]["dlcourse"] != first["uses-conv.ipynb"]["dlcourse"]
    assert second["plain.ipynb"] == first["plain.ipynb"]
    monkeypatch.setattr(build_guard, "PACKAGES", build_guard.PACKAGES + ("no-such-package",))
    third = build_guard.fingerprints(tmp_path)
    assert third["plain.ipynb"]["no-such-package"] == "missing" and third["plain.ipynb"] != second["plain.ipynb"]
