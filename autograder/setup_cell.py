"""`autograder setup-cells`: write (or check) the first cell of every student-facing notebook.

Every chapter notebook (book/) and assignment source (solutions/) opens with a code cell
tagged `setup` that makes the notebook work in Colab and on a JupyterHub: it installs
the course library from the repository when it is missing, and it fetches the data the
notebook needs. Where everything is already there (a local checkout, a prepared hub
image, a second run) it only does an import check and reads the data cache.

The cell is rendered from one place: the `repository.url` of `_config.yml`, the same URL
the book's launch buttons use. A notebook may ask for data to be fetched up front with
notebook metadata `{"dlcourse": {"prefetch": ["mnist-test-images", ...]}}` (names from
dlcourse's data registry). Released notebooks (assignments/) are generated from
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
import yaml

SETUP_TAG = "setup"
# Where notebooks that students open live; assignments/ is generated from solutions/.
NOTEBOOK_DIRS = ("book", "solutions")


class SetupCellError(Exception):
    """A notebook's setup cell cannot be written; the message names the notebook."""


def repository_url(root: pathlib.Path) -> str:
    """`repository.url` from `_config.yml`: the one place the repository is named."""
    config = root / "_config.yml"
    try:
        url = (yaml.safe_load(config.read_text()) or {}).get("repository", {}).get("url", "")
    except (OSError, yaml.YAMLError) as err:
        raise SetupCellError(f"{config}: cannot read repository.url ({err})") from err
    if not str(url).startswith("https://"):
        raise SetupCellError(f"{config}: repository.url must be an https URL, got {url!r}")
    return str(url).rstrip("/")


def render(repo_url: str, prefetch: list[str] | tuple[str, ...] = ()) -> str:
    """The setup cell's source for a repository URL and the data names to fetch."""
    lines = [
        "# Colab / JupyterHub setup: installs the course library if it is missing (does nothing locally).",
        "import importlib.util, subprocess, sys",
        'if importlib.util.find_spec("dlcourse") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{repo_url}"], check=True)',
    ]
    if prefetch:
        names = ", ".join(json.dumps(n) for n in prefetch)
        lines += [
            "# Data this notebook uses: downloaded and verified once, then read from the cache.",
            "from dlcourse import datasets",
            f"for _name in [{names}]:",
            "    datasets.fetch(_name)",
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


def sync(path: pathlib.Path, repo_url: str, write: bool) -> str | None:
    """Bring one notebook's setup cell in line; returns what was (or would be) changed, or None."""
    nb = nbformat.read(str(path), as_version=4)
    expected = render(repo_url, prefetch_names(nb, path))
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
    repo_url = repository_url(root)
    changed, errors = [], []
    for path in paths or student_notebooks(root):
        try:
            change = sync(path, repo_url, write)
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
        print(f"setup cells in sync ({repo_url})")
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
