"""Guard the book build's execution cache: re-run pages whose inputs changed, fail on failed pages.

The book executes its notebooks through jupyter-cache (`execute_notebooks: cache` in
_config.yml). The cache knows a notebook only by its code: a page that ran on the digits
stand-in because MNIST could not be had, or on an older PyTorch, is served from the cache
after MNIST arrived or PyTorch changed. And `jupyter-book build` exits 0 when a notebook
raised: the page just shows the traceback. The Makefile therefore runs

    python book/_tools/build_guard.py before [BUILD_DIR]   # before jupyter-book build
    python book/_tools/build_guard.py after [BUILD_DIR]    # after it: exit 1 on failed pages

`before` computes, for every notebook in _toc.yml, a fingerprint of what its output depends
on besides its code: the versions of Python and of the numerical packages, the source of
the course-library modules it imports (and the ones those import), the device and thread
budget of this machine, and, for each data set in its `dlcourse.prefetch` metadata, whether
that data set can be had or its bundled stand-in will be used (it calls
`dlcourse.datasets.ensure`, so available data is fetched once, here). A notebook whose
fingerprint differs from the one stored with the cache (`<cache>/dlcourse-inputs.json`)
loses its cached execution, and Sphinx is made to re-read the pages (its saved environment
is removed), so exactly those notebooks run again.

`after` lists every notebook whose last execution raised (jupyter-cache keeps its
traceback) with the error's last line, removes Sphinx's saved environment so that the
next build re-reads those pages (and, having no cached result, re-executes them), and
exits 1. BUILD_DIR is the folder with Sphinx's `.doctrees` (`_build` for `make book`).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pathlib
import platform
import re
import sys
from importlib import metadata

import yaml

PACKAGES = ("torch", "numpy", "matplotlib", "scikit-learn", "ipywidgets")
STORE = "dlcourse-inputs.json"
# `from dlcourse.x import a, b` (names on one line, or in parentheses) and `import dlcourse.x`
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(dlcourse(?:\.\w+)*)[ \t]+import[ \t]+(\([\w\s,]+\)|[\w \t,]+)"
                    r"|import[ \t]+(dlcourse(?:\.\w+)*))", re.M)


# ----------------------------------------------------------------------------- the book
def toc_notebooks(root: pathlib.Path) -> list[pathlib.Path]:
    """The notebooks that _toc.yml lists, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                docs.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [root / f"{d}.ipynb" for d in docs if (root / f"{d}.ipynb").is_file()]


def cache_path(root: pathlib.Path) -> pathlib.Path:
    """`execute.cache` of _config.yml, relative to the book root (where the build runs)."""
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    return root / ((config.get("execute") or {}).get("cache") or "_build/.jupyter_cache")


# ----------------------------------------------------------------------------- fingerprints
def _module_file(name: str, library: pathlib.Path) -> pathlib.Path | None:
    """dlcourse.x.y -> its source file under `library` (the folder that holds dlcourse/)."""
    base = library.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def library_modules(code: str, library: pathlib.Path) -> set[str]:
    """Every dlcourse module that `code` imports, with the packages around them, transitively."""
    seen: set[str] = set()
    todo = [code]
    while todo:
        for frm, names, plain in IMPORT.findall(todo.pop()):
            found = [plain] if plain else [frm] + [f"{frm}.{n.strip()}" for n in names.strip("() ").split(",")]
            for name in found:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                    module = ".".join(parts[:i])
                    path = _module_file(module, library)
                    if path is not None and module not in seen:
                        seen.add(module)
                        todo.append(path.read_text(encoding="utf-8"))
    return seen


def _source_hash(modules: set[str], library: pathlib.Path) -> str:
    h = hashlib.sha256()
    for module in sorted(modules):
        h.update(module.encode() + b"\0" + _module_file(module, library).read_bytes())
    if (library / "dlcourse" / "datasets" / "registry.txt").is_file() and any(m.startswith("dlcourse.datasets") for m in modules):
        h.update((library / "dlcourse" / "datasets" / "registry.txt").read_bytes())
    return h.hexdigest()[:16]


def machine() -> dict[str, str]:
    """What a page prints about where it ran: the device and the thread budget."""
    import torch

    device = f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return {"device": os.environ.get("DLCOURSE_DEVICE", "auto") + " -> " + device,
            "threads": os.environ.get("DLCOURSE_THREADS", "all cores")}


def data_states(names: set[str]) -> dict[str, str]:
    """For each data set: "available" (fetched and verified now) or what stands in for it."""
    from dlcourse import datasets

    states = {}
    for name in sorted(names):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                source = datasets.ensure([name], progress=False)[name]
        except (datasets.DataError, KeyError) as err:
            states[name] = f"unavailable ({type(err).__name__})"
            continue
        states[name] = source if source.startswith("fallback:") else "available"
    return states


def fingerprints(root: pathlib.Path) -> dict[str, dict]:
    """Notebook (relative path) -> what its output depends on besides its code."""
    import nbformat

    library = root if (root / "dlcourse").is_dir() else pathlib.Path(__import__("dlcourse").__file__).parents[1]
    common = {"python": platform.python_version(), **machine()}
    for package in PACKAGES:
        try:
            common[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            common[package] = "missing"
    notebooks = {}
    for path in toc_notebooks(root):
        nb = nbformat.read(str(path), as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        notebooks[path] = (code, nb.metadata.get("dlcourse", {}).get("prefetch", []))
    states = data_states({n for _, names in notebooks.values() for n in names})
    result = {}
    for path, (code, names) in notebooks.items():
        modules = library_modules(code, library)
        result[path.relative_to(root).as_posix()] = {
            **common, "dlcourse": _source_hash(modules, library) if modules else "not imported",
            **{f"data {n}": states[n] for n in names}}
    return result


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k))


# ----------------------------------------------------------------------------- steps
def _forget_read_pages(build_dir: pathlib.Path) -> None:
    """Make Sphinx re-read every page on the next build (cached executions are still used)."""
    env = build_dir / ".doctrees" / "environment.pickle"
    if env.is_file():
        env.unlink()


def before(root: pathlib.Path, build_dir: pathlib.Path) -> int:
    from jupyter_cache import get_cache
    import nbformat

    store = cache_path(root) / STORE
    stored = json.loads(store.read_text()) if store.is_file() else {}
    current = fingerprints(root)
    changed = {rel: fp for rel, fp in current.items() if stored.get(rel) != fp}
    if changed and cache_path(root).is_dir():
        cache = get_cache(str(cache_path(root)))
        for rel, fp in changed.items():
            try:
                record = cache.match_cache_notebook(nbformat.read(str(root / rel), as_version=4))
            except KeyError:
                continue  # never executed with this code: it runs anyway
            cache.remove_cache(record.pk)
            why = _differences(stored[rel], fp) if rel in stored else "no record of what it last ran with"
            print(f"build_guard: re-executing {rel} ({why})")
        _forget_read_pages(build_dir)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(current, indent=1, sort_keys=True))
    print(f"build_guard: {len(current)} notebooks, {len(changed)} with changed inputs")
    return 0


def _last_line(traceback: str) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in traceback.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "(no traceback)"


def after(root: pathlib.Path, build_dir: pathlib.Path) -> int:
    if not cache_path(root).is_dir():
        print("build_guard: no execution cache: nothing was executed", file=sys.stderr)
        return 0
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_path(root)))
    failed = []
    for path in toc_notebooks(root):
        try:
            record = cache.get_project_record(str(path))
        except KeyError:
            continue
        if record.traceback:
            failed.append((path.relative_to(root).as_posix(), _last_line(record.traceback)))
    if not failed:
        return 0
    _forget_read_pages(build_dir)  # so that the next build re-reads, and re-executes, these pages
    print(f"\nbuild_guard: {len(failed)} page(s) failed to execute; their pages show the error:", file=sys.stderr)
    for rel, line in failed:
        print(f"  {rel}: {line}", file=sys.stderr)
    print("Fix them and build again (the failed pages are re-executed; the others come from the cache).",
          file=sys.stderr)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("before", "after"))
    ap.add_argument("build_dir", nargs="?", default="_build", help="the folder holding .doctrees (default _build)")
    args = ap.parse_args(argv)
    root = pathlib.Path.cwd()
    build_dir = (root / args.build_dir).resolve()
    return (before if args.step == "before" else after)(root, build_dir)


if __name__ == "__main__":
    sys.exit(main())
