"""`autograder setup-cells`: write (or check) the first cell of every student-facing notebook.

Every chapter notebook (book/) and assignment source (solutions/) opens with a code cell
tagged `setup` that makes the notebook work in Colab and on a JupyterHub: it installs
the course library when it is missing, and it fetches the data the notebook needs. Where
everything is already there (a local checkout, a prepared hub image, a second run) it
only does an import check and reads the data cache.

The cell is rendered from one place, the `publish.site` setting of `_config.yml` (read by
autograder/publish.py, which the book's launch buttons use too): the library is installed
from the wheel the book build publishes on that site, `<site>/_static/dist/
dlcourse-<version>-py3-none-any.whl`, so a notebook installs the library of the version it
was rendered for, from whoever hosts the book, and `pip` leaves an installed torch alone
(the wheel asks for torch>=2.0). While the course is not published the cell installs
nothing and says how to get the library instead. A notebook may ask for data to be
fetched up front with notebook metadata `{"dlcourse": {"prefetch": ["mnist-test-images",
...]}}` (names from dlcourse's data registry). Released notebooks (assignments/) are generated from
solutions/ and get the cell from there: after `setup-cells` changed a source, run
`autograder release`.

    autograder setup-cells            rewrite the setup cells that differ
    autograder setup-cells --check    only report; exit 1 when any notebook is out of sync
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import nbformat

SETUP_TAG = "setup"
# Where notebooks that students open live; assignments/ is generated from solutions/.
NOTEBOOK_DIRS = ("book", "solutions")


class SetupCellError(Exception):
    """A notebook's setup cell cannot be written; the message names the notebook."""


def install_source(root: pathlib.Path) -> str | None:
    """The wheel URL setup cells install from (`publish.site` of _config.yml); None while unpublished."""
    from autograder import publish

    try:
        publication = publish.read(root)
        return publication.wheel_url(publish.project_version(root)) if publication.published else None
    except (publish.PublishError, OSError, KeyError) as err:
        raise SetupCellError(str(err)) from err


def render(source: str | None, prefetch: list[str] | tuple[str, ...] = ()) -> str:
    """The setup cell's source: install the library from `source` (a wheel URL; None while the
    course is not published) and make sure of the data sets in `prefetch`."""
    if source:
        lines = [
            "# Colab / JupyterHub setup: installs the course library if it is missing (does nothing locally).",
            "import importlib.util, subprocess, sys",
            'if importlib.util.find_spec("dlcourse") is None:',
            "    # from the site that serves the course's book, at the version this notebook was written for",
            f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", {json.dumps(source)}], check=True)',
        ]
    else:
        lines = [
            "# Setup: checks that the course library is installed (this course is not published online yet).",
            "import importlib.util",
            'if importlib.util.find_spec("dlcourse") is None:',
            '    raise ModuleNotFoundError("The course library dlcourse is not installed here, and this course is not "',
            '                              "published online yet, so there is nowhere to install it from: run this "',
            '                              "notebook in a checkout of the course repository (`make venv`).")',
        ]
    if prefetch:
        names = ", ".join(json.dumps(n) for n in prefetch)
        lines += [
            "# Data this notebook uses: fetched and verified once, then read from the cache. Prints where",
            "# each comes from; where one cannot be had, says which bundled stand-in is used instead.",
            "from dlcourse import datasets",
            f"_ = datasets.ensure([{names}])",
        ]
    return "\n".join(lines)


def prefetch_names(nb, path: pathlib.Path) -> list[str]:
    """The notebook's `dlcourse.prefetch` list, each name checked against the data registry."""
    names = nb.metadata.get("dlcourse", {}).get("prefetch", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SetupCellError(f"{path}: metadata dlcourse.prefetch must be a list of data-set names")
    if names:
        from dlcourse.datasets import load_registry

        known = load_registry()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SetupCellError(f"{path}: metadata dlcourse.prefetch names unknown data sets {unknown}; "
                                 f"known: {sorted(known)}")
    return names


def student_notebooks(root: pathlib.Path) -> list[pathlib.Path]:
    """Every notebook under book/ and solutions/ (checkpoints and build outputs left out)."""
    found = []
    for folder in NOTEBOOK_DIRS:
        for path in sorted((root / folder).rglob("*.ipynb")):
            rel = path.relative_to(root).parts
            if any(p.startswith((".", "_")) for p in rel[:-1]):
                continue  # .ipynb_checkpoints, _build, _vendor
            found.append(path)
    return found


def setup_cell_index(nb, path: pathlib.Path) -> int | None:
    """Index of the `setup` cell; it must be the first code cell. None when there is none."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    tagged = [i for i in code if SETUP_TAG in nb.cells[i].metadata.get("tags", [])]
    if len(tagged) > 1:
        raise SetupCellError(f"{path}: {len(tagged)} cells are tagged {SETUP_TAG!r} (cells {tagged}); keep one")
    if tagged and tagged[0] != code[0]:
        raise SetupCellError(f"{path}: the {SETUP_TAG!r} cell (cell {tagged[0]}) must be the first code cell "
                             f"(cell {code[0]} comes before it)")
    return tagged[0] if tagged else None


def sync(path: pathlib.Path, source: str | None, write: bool) -> str | None:
    """Bring one notebook's setup cell in line; returns what was (or would be) changed, or None."""
    nb = nbformat.read(str(path), as_version=4)
    expected = render(source, prefetch_names(nb, path))
    index = setup_cell_index(nb, path)
    if index is None:
        change = "no setup cell: one is inserted before the first code cell"
        if write:
            first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
            cell = nbformat.v4.new_code_cell(expected, metadata={"tags": [SETUP_TAG]})
            nb.cells.insert(first_code, cell)
    elif nb.cells[index].source != expected:
        change = f"cell {index} differs from the rendered setup cell"
        if write:
            nb.cells[index].source = expected
    else:
        return None
    if write:
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
    return change


def run(root: pathlib.Path, paths: list[pathlib.Path] | None, write: bool) -> int:
    try:
        source = install_source(root)
    except SetupCellError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    changed, errors = [], []
    for path in paths or student_notebooks(root):
        try:
            change = sync(path, source, write)
        except (SetupCellError, nbformat.ValidationError, json.JSONDecodeError, OSError) as err:
            errors.append(str(err))
            continue
        if change:
            changed.append(f"{path}: {change}")
    for line in changed:
        print(("updated " if write else "out of sync: ") + line)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if changed and write:
        print("Setup cells rewritten. If a solutions/ notebook changed, re-release: `python -m autograder release --all`.")
    if errors or (changed and not write):
        if changed and not write:
            print("Run `python -m autograder setup-cells` to rewrite them.", file=sys.stderr)
        return 1
    if not changed:
        print(f"setup cells in sync ({source or 'course not published: no install source'})")
    return 0


def _main(args) -> int:
    from autograder.release import course_root

    root = course_root()
    paths = [pathlib.Path(p).resolve() for p in args.notebooks] or None
    return run(root, paths, write=not args.check)


def register(subparsers) -> None:
    parser = subparsers.add_parser("setup-cells", help="write or check the setup cell of every notebook",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to process (default: all under book/ and solutions/)")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of sync (exit 1)")
    parser.set_defaults(func=_main)
