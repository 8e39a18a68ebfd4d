"""The install source as a Colab student meets it: a released notebook, a fresh Python with torch, the site.

Colab's Python already has torch, numpy, matplotlib, ipywidgets, tqdm, pooch, scikit-learn
and ipykernel, and not the course library. This test builds such an environment (a
fresh virtual environment whose preinstalled packages are this project's, linked in, with
dlcourse left out), serves the built book on 127.0.0.1 as the course's site, and runs the
released a03 notebook in a kernel of that environment with its setup cell rendered for
that site (what `autograder setup-cells` writes once `publish.site` names it). pip may use
nothing but the URL in the cell: no index, no configuration. Checked: the library comes
from the site's wheel at the version the cell names; torch is the one that was there; the
data comes from the mirror or a download (or, with neither, the bundled stand-in, said so);
the answered part's visible tests pass and the unanswered ones fail with the stubs' error.

Needs the built book with the wheel in it (`make book`; BOOK_HTML points elsewhere).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from autograder import publish, setup_cell
from suite_helpers import LoopbackServer, require_or_skip

pytestmark = [pytest.mark.site, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "a03-lenet"
# What Colab's image has preinstalled, as far as this course is concerned.
PREINSTALLED = ["torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "pooch", "scikit-learn", "ipykernel"]
SOLUTION = re.compile(r"[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)[ \t]*### END SOLUTION[^\n]*\n?", re.S)


@pytest.fixture(scope="module")
def site() -> Path:
    folder = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
    wheel = folder / publish.WHEEL_SITE_DIR / publish.wheel_name(publish.project_version())
    if not wheel.is_file():
        require_or_skip(f"no course library wheel in the built site ({wheel}): build the book (`make book`)")
    return folder


@pytest.fixture(scope="module")
def served(site):
    """The built site on loopback, with a log of the paths requested."""
    with LoopbackServer(directory=site) as server:
        yield server.url + "/", server.requests


def _closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need, with their dependencies (extras left out)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency this machine does not have
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with Colab's preinstalled packages (this project's, linked) and no dlcourse."""
    env = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    site_packages = next(env.glob("lib/python*/site-packages"))
    dists = _closure(PREINSTALLED)
    assert "dlcourse" not in {d.metadata["Name"] for d in dists}
    for dist in dists:
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(dist.locate_file(top))
            if top in ("..", "__pycache__") or not source.exists() or (site_packages / top).exists():
                continue
            (site_packages / top).symlink_to(source)
    return env / "bin" / "python"


def _release_with_setup_cell(source_url: str) -> nbformat.NotebookNode:
    """The released notebook with its setup cell as setup-cells renders it for this site,
    and the first solution answered (as a student who has done part 1)."""
    nb = nbformat.read(ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    path = ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    index = setup_cell.setup_cell_index(nb, path)
    nb.cells[index].source = setup_cell.render(source_url, setup_cell.prefetch_names(nb, path))
    source = nbformat.read(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: SOLUTION.sub(r"\1", c.source) for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    first = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    first.source = answers[first.metadata["nbgrader"]["grade_id"]]
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, dlcourse, torch\n"
        "print('PROBE', json.dumps({'torch': torch.__version__, 'torch_file': torch.__file__,"
        " 'dlcourse_file': dlcourse.__file__}))"))
    return nb


@pytest.fixture(scope="module")
def run(served, colab_python, tmp_path_factory):
    """The notebook executed in a kernel of the Colab-like environment; (notebook, requests, wheel URL)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from dlcourse.datasets import fetching

    base_url, requested = served
    wheel_url = publish.from_config({"publish": {"site": base_url}}).wheel_url(publish.project_version())
    nb = _release_with_setup_cell(wheel_url)
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "colab").mkdir()
    (kernels / "colab" / "kernel.json").write_text(json.dumps({
        "argv": [str(colab_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    km = KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    work = tmp_path_factory.mktemp("work")
    mirror = fetching.mirror_dir()
    env = {"PATH": f"{colab_python.parent}:/usr/bin:/bin", "HOME": str(work),
           "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",  # only the URL in the cell, nothing else
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "DLCOURSE_DATA_DIR": str(work / "data-cache"),
           "DLCOURSE_DATA_MIRROR": str(mirror) if mirror else "none", "DLCOURSE_THREADS": "1",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    client = NotebookClient(nb, km=km, timeout=600, allow_errors=True, resources={"metadata": {"path": str(work)}})
    client.execute(env=env, cwd=str(work))
    return nb, requested, wheel_url


def _errors(cell) -> list[str]:
    return [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def test_setup_cell_installs_the_library_from_the_site_without_touching_torch(run, colab_python):
    nb, requested, wheel_url = run
    setup = nb.cells[setup_cell.setup_cell_index(nb, Path(ASSIGNMENT))]
    assert not _errors(setup), setup.outputs
    assert f"/{publish.WHEEL_SITE_DIR}/{publish.wheel_name(publish.project_version())}" in requested, requested
    probe = json.loads(_text(nb.cells[-1]).split("PROBE ", 1)[1])
    import torch

    assert probe["torch"] == torch.__version__
    assert Path(probe["torch_file"]).resolve() == Path(torch.__file__).resolve(), "pip replaced torch"
    assert Path(probe["dlcourse_file"]).is_relative_to(colab_python.parent.parent), probe  # the wheel, not a checkout


def test_data_comes_from_the_mirror_or_a_download_and_says_so(run):
    nb, _, _ = run
    from autograder.setup_cell import prefetch_names

    names = prefetch_names(nb, Path(ASSIGNMENT))
    printed = _text(nb.cells[setup_cell.setup_cell_index(nb, Path(ASSIGNMENT))])
    for name in names:
        line = next((l for l in printed.splitlines() if l.startswith(f"{name}:")), "")
        assert line, f"the setup cell said nothing about {name}: {printed!r}"
        assert any(word in line for word in ("mirror", "download", "cache", "not available")), line


def test_answered_part_passes_and_the_unanswered_parts_fail_as_they_should(run):
    nb, _, _ = run
    cells = nb.cells
    solutions = [i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution")]
    tests = [i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade")]
    answered_tests = [i for i in tests if i < solutions[1]]
    others = [i for i in tests if i > solutions[1]]
    assert answered_tests and others
    for i in answered_tests:
        assert not _errors(cells[i]), (cells[i].metadata["nbgrader"]["grade_id"], cells[i].outputs)
    for i in solutions[1:]:
        assert _errors(cells[i]) in ([], ["NotImplementedError"])  # defining a stub is fine; calling it is not
    for i in others:
        assert _errors(cells[i]), f"{cells[i].metadata['nbgrader']['grade_id']} passed without an answer"
    # each unanswered test fails on the stub's own error, or on a name the stub never defined
    assert all(set(_errors(cells[i])) <= {"NotImplementedError", "NameError"} for i in others), \
        {cells[i].metadata["nbgrader"]["grade_id"]: _errors(cells[i]) for i in others}
