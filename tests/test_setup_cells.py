"""The first cell of every student-facing notebook: rendered from _config.yml, kept in sync."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import setup_cell

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What the checked-in _config.yml renders (None while the course is not published).
SOURCE = setup_cell.install_source(ROOT)
# A published course's install source, for the tests that need one.
WHEEL_URL = "https://someone.github.io/course/_static/dist/dlcourse-0.1.0-py3-none-any.whl"


def test_every_notebook_in_book_and_solutions_has_the_rendered_setup_cell():
    notebooks = setup_cell.student_notebooks(ROOT)
    assert notebooks, "no notebooks found under book/ or solutions/"
    stale = [f"{p.relative_to(ROOT)}: {c}" for p in notebooks
             if (c := setup_cell.sync(p, SOURCE, write=False))]
    assert not stale, "run `python -m autograder setup-cells`:\n" + "\n".join(stale)


def test_released_assignments_carry_the_same_setup_cell_as_their_source():
    """The release copies the cell through nbgrader; a stale release shows up here too."""
    released = sorted((ROOT / "assignments").glob("a*/*.ipynb"))
    if not released:
        pytest.skip("no released assignments yet")
    for path in released:
        nb = nbformat.read(str(path), as_version=4)
        index = setup_cell.setup_cell_index(nb, path)
        assert index is not None, f"{path}: no setup cell"
        assert nb.cells[index].source == setup_cell.render(SOURCE, setup_cell.prefetch_names(nb, path)), (
            f"{path}: setup cell differs from the rendered one: run `python -m autograder release --all`")


def test_rendered_cell_installs_the_wheel_published_with_the_book():
    source = setup_cell.render(WHEEL_URL, ["mnist-test-labels"])
    compile(source, "<setup>", "exec")  # valid Python
    assert f'"{WHEEL_URL}"' in source and "git+" not in source
    assert 'datasets.ensure(["mnist-test-labels"])' in source


def test_install_source_follows_the_publish_setting(tmp_path):
    """One setting: `publish.site` gives the wheel URL, at the version in pyproject.toml."""
    from autograder import publish

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "dlcourse"\nversion = "2.3.4"\n')
    (tmp_path / "_config.yml").write_text("publish:\n  site: https://someone.github.io/course\n")
    assert setup_cell.install_source(tmp_path) == \
        "https://someone.github.io/course/_static/dist/dlcourse-2.3.4-py3-none-any.whl"
    (tmp_path / "_config.yml").write_text("publish:\n  site: ''\n")
    assert setup_cell.install_source(tmp_path) is None
    (tmp_path / "_config.yml").write_text("publish:\n  site: http://course.uni.edu/\n")
    with pytest.raises(setup_cell.SetupCellError, match="https"):
        setup_cell.install_source(tmp_path)
    assert publish.read(ROOT).published == (SOURCE is not None)


def test_unpublished_cell_installs_nothing_and_says_how_to_get_the_library():
    """With dlcourse missing and no published site, the cell stops with a message, starting nothing."""
    probe = (
        "import importlib.util, subprocess\n"
        "_real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'dlcourse' else _real(name, *a)\n"
        "def _refuse(*a, **k):\n"
        "    raise SystemExit('setup cell started a process: ' + repr(a))\n"
        "subprocess.run = _refuse\n"
        + setup_cell.render(None)
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, done.stderr
    assert "not published online yet" in done.stderr and "make venv" in done.stderr


def test_setup_cell_does_nothing_heavy_when_the_library_is_installed(tmp_path):
    """In a ready environment the cell must not start pip (or any process)."""
    probe = (
        "import subprocess\n"
        "def _refuse(*a, **k):\n"
        "    raise SystemExit('setup cell started a process: ' + repr(a))\n"
        "subprocess.run = _refuse\n"
        + setup_cell.render(WHEEL_URL)
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_setup_cell_calls_pip_with_the_published_wheel_when_the_library_is_missing(tmp_path):
    """With dlcourse hidden from the interpreter, the cell runs `pip install <site>/_static/dist/<wheel>`."""
    probe = (
        "import importlib.util, subprocess, sys\n"
        "_real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'dlcourse' else _real(name, *a)\n"
        "def _record(cmd, **kw):\n"
        "    print('RAN', cmd[1:])\n"
        "subprocess.run = _record\n"
        + setup_cell.render(WHEEL_URL)
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"RAN ['-m', 'pip', 'install', '-q', '{WHEEL_URL}']" in done.stdout


def _notebook(cells, metadata=None):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.update(metadata or {})
    return nb


def test_sync_rewrites_a_drifted_cell_and_leaves_the_others_alone(tmp_path):
    nb = _notebook([
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("import old_stuff", metadata={"tags": ["setup"]}),
        nbformat.v4.new_code_cell('PROFILE = "fast"', metadata={"tags": ["parameters"]}),
    ], {"dlcourse": {"prefetch": ["mnist-test-images"]}})
    path = tmp_path / "drift.ipynb"
    nbformat.write(nb, str(path))
    assert "differs" in setup_cell.sync(path, WHEEL_URL, write=False)
    setup_cell.sync(path, WHEEL_URL, write=True)
    again = nbformat.read(str(path), as_version=4)
    assert again.cells[1].source == setup_cell.render(WHEEL_URL, ["mnist-test-images"])
    assert again.cells[1].metadata["tags"] == ["setup"]
    assert [c.source for c in again.cells[::2]] == ["# Title", 'PROFILE = "fast"']
    assert setup_cell.sync(path, WHEEL_URL, write=False) is None


def test_sync_inserts_a_missing_cell_before_the_first_code_cell(tmp_path):
    path = tmp_path / "bare.ipynb"
    nbformat.write(_notebook([nbformat.v4.new_markdown_cell("prose"), nbformat.v4.new_code_cell("x = 1")]), str(path))
    setup_cell.sync(path, SOURCE, write=True)
    nb = nbformat.read(str(path), as_version=4)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert nb.cells[1].metadata["tags"] == ["setup"] and nb.cells[2].source == "x = 1"


def test_bad_notebooks_get_errors_naming_the_file(tmp_path):
    late = tmp_path / "late.ipynb"
    nbformat.write(_notebook([nbformat.v4.new_code_cell("x = 1"),
                              nbformat.v4.new_code_cell("pass", metadata={"tags": ["setup"]})]), str(late))
    with pytest.raises(setup_cell.SetupCellError, match="late.ipynb.*must be the first code cell"):
        setup_cell.sync(late, SOURCE, write=False)
    unknown = tmp_path / "unknown.ipynb"
    nbformat.write(_notebook([nbformat.v4.new_code_cell("pass")], {"dlcourse": {"prefetch": ["imagenet"]}}), str(unknown))
    with pytest.raises(setup_cell.SetupCellError, match="unknown.ipynb.*imagenet"):
        setup_cell.sync(unknown, SOURCE, write=False)


def test_command_line_check_fails_on_drift_and_the_rewrite_fixes_it(tmp_path):
    root = tmp_path / "course"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    nbformat.write(_notebook([nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["setup"]})]),
                   str(root / "book" / "page.ipynb"))
    cmd = [sys.executable, "-m", "autograder", "setup-cells"]
    check = subprocess.run(cmd + ["--check"], cwd=root, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1 and "page.ipynb" in check.stdout
    fix = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert fix.returncode == 0, fix.stderr
    again = subprocess.run(cmd + ["--check"], cwd=root, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "in sync" in again.stdout
