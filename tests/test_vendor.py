"""The book's vendored JavaScript: pinned by hash, verified on fetch, and what _config.yml loads."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import yaml

from suite_helpers import require_or_skip

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "_vendor"


def test_every_package_is_locked_with_a_sha512_hash():
    wanted = json.loads((VENDOR / "package.json").read_text())["dependencies"]
    lock = json.loads((VENDOR / "package-lock.json").read_text())["packages"]
    for name, version in wanted.items():
        entry = lock[f"node_modules/{name}"]
        assert entry["version"] == version, name
        assert entry["integrity"].startswith("sha512-"), name


def test_fetch_refuses_a_tarball_whose_hash_differs_from_the_lock(tmp_path):
    if shutil.which("npm") is None:
        require_or_skip("npm is not installed (apt-get install npm, or `make system-deps`)")
    copy = tmp_path / "_vendor"
    shutil.copytree(VENDOR, copy, ignore=shutil.ignore_patterns("static", "node_modules"))
    lock_path = copy / "package-lock.json"
    lock = json.loads(lock_path.read_text())
    entry = lock["packages"]["node_modules/requirejs"]
    entry["integrity"] = "sha512-" + "A" * 86 + "=="
    lock_path.write_text(json.dumps(lock))
    done = subprocess.run([sys.executable, str(copy / "fetch.py")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "requirejs@" in done.stderr and "differs from package-lock.json" in done.stderr, done.stderr
    assert not (copy / "static" / "offline" / ".stamp.json").exists()


def test_config_loads_only_files_that_the_build_serves():
    """mathjax_path and nb_ipywidgets_js name files under _static/ (no CDN URL)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    scripts = [config["mathjax_path"], *config["nb_ipywidgets_js"]]
    assert not [s for s in scripts if "://" in s], scripts
    static_dirs = [ROOT / p for p in config["html_static_path"]] + [ROOT / "book" / "_ext" / "static"]
    if not (VENDOR / "static" / "offline" / ".stamp.json").exists():
        require_or_skip("book/_vendor/fetch.py has not run (`make vendor`; make book and make test run it)")
    for script in scripts:
        assert any((d / script).is_file() for d in static_dirs), f"{script} is not in {static_dirs}"
