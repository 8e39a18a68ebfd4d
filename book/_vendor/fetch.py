"""Put the book's JavaScript (MathJax 3, RequireJS, the ipywidgets HTML manager) into the build.

Why: by default Jupyter Book loads MathJax and the widget manager from public CDNs, so
on a campus network that blocks them the equations stay as raw TeX and the explorers
are dead. The book serves its own copies instead, taken from the npm registry:

1. The exact versions are in `package.json`; their sha512 integrity hashes are in the
   committed `package-lock.json`.
2. `npm pack NAME@VERSION` downloads each package tarball (or takes it from npm's cache,
   so a machine that fetched once can rebuild with no network); we hash the tarball
   ourselves and refuse it unless the hash equals the lock file's.
3. The files the browser needs (and the licences) are unpacked into
   `book/_vendor/static/offline/`, which `_config.yml` lists in `html_static_path`, so
   they end up in `_build/html/_static/offline/`.

A stamp file records what was unpacked; when it matches the lock file nothing is done.
Run: `python book/_vendor/fetch.py` (the Makefile's `book` targets do it).
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE / "static" / "offline"
STAMP = DEST / ".stamp.json"


def _keep_mathjax(name: str) -> str | None:
    """The combined TeX+MathML/CHTML component and every lazily loaded part; not the SVG bundles."""
    if name in ("LICENSE", "README.md"):
        return name
    if not name.startswith("es5/"):
        return None
    rest = name[len("es5/"):]
    if "/" not in rest:  # top-level combined components: keep only the one the book loads
        return rest if rest in ("tex-mml-chtml.js", "latest.js") else None
    if rest.startswith("output/svg"):
        return None
    return rest


def _keep_html_manager(name: str) -> str | None:
    """The AMD embed bundle, its font files and its licence notes (no source maps, no sources)."""
    if name == "package.json":
        return name
    if not name.startswith("dist/") or name.endswith(".map") or name.count("/") != 1:
        return None
    rest = name[len("dist/"):]
    if rest in ("embed.js", "libembed-amd.js"):
        return None  # embed-amd.js is the self-contained bundle we load
    return rest


def _keep_requirejs(name: str) -> str | None:
    return name if name in ("require.js", "package.json", "README.md") else None


# npm package -> (folder under static/offline, file filter)
PACKAGES = {
    "mathjax": ("mathjax", _keep_mathjax),
    "@jupyter-widgets/html-manager": ("html-manager", _keep_html_manager),
    "requirejs": ("requirejs", _keep_requirejs),
}


def locked() -> dict[str, tuple[str, str]]:
    """{package: (version, sha512 integrity)} from package.json and package-lock.json."""
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    lock = json.loads((HERE / "package-lock.json").read_text())["packages"]
    out = {}
    for name, version in wanted.items():
        entry = lock.get(f"node_modules/{name}")
        if entry is None or entry.get("version") != version:
            raise SystemExit(f"book/_vendor/package-lock.json does not lock {name}@{version}: run `npm install --package-lock-only` in book/_vendor")
        out[name] = (version, entry["integrity"])
    return out


def sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def npm_pack(spec: str, workdir: Path) -> Path:
    """Download one package tarball with npm (cache first) and return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to fetch the book's JavaScript (apt-get install npm); "
                         "or copy a filled book/_vendor/static/ from a machine that has it")
    proc = subprocess.run([npm, "pack", spec, "--json", "--prefer-offline", "--pack-destination", str(workdir)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed:\n{proc.stderr.strip()}")
    filename = json.loads(proc.stdout)[0]["filename"]
    return workdir / filename


def unpack(tarball: Path, dest: Path, keep) -> int:
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            target = keep(member.name[len("package/"):])
            if target is None:
                continue
            out = (dest / target).resolve()
            if dest.resolve() not in out.parents:
                raise SystemExit(f"{tarball.name}: refusing path {member.name}")
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src:
                out.write_bytes(src.read())
            count += 1
    return count


def main() -> int:
    want = locked()
    if STAMP.exists() and json.loads(STAMP.read_text()) == {k: list(v) for k, v in want.items()}:
        print("book/_vendor: up to date")
        return 0
    if DEST.exists():
        shutil.rmtree(DEST)
    DEST.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, integrity) in want.items():
            tarball = npm_pack(f"{name}@{version}", Path(tmp))
            got = sri_sha512(tarball)
            if got != integrity:
                raise SystemExit(f"{name}@{version}: tarball hash {got} differs from package-lock.json's {integrity}")
            folder, keep = PACKAGES[name]
            n = unpack(tarball, DEST / folder, keep)
            print(f"book/_vendor: {name}@{version} verified, {n} files -> _static/offline/{folder}/")
    shutil.copy(HERE / "README.md", DEST / "LICENSES.md")
    STAMP.write_text(json.dumps({k: list(v) for k, v in want.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
