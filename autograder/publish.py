"""Where the course is published, and the course library's wheel that is published with it.

One setting in `_config.yml` names where the course lives online:

    publish:
      site: https://ORG.github.io/REPO/

Everything that points at the course derives from it, in one place (this module):

- the site serves the built book and, beside it, the course library as a wheel at
  `<site>/_static/dist/dlcourse-<version>-py3-none-any.whl`; every notebook's setup cell
  installs that file (autograder/setup_cell.py), so whoever hosts the book hosts the
  library its notebooks install, at the version the notebooks were rendered for;
- the git repository the book is built from (Colab opens notebooks from GitHub, and
  nbgitpuller pulls the course into a hub user's home from it): derived from a GitHub
  Pages address (`https://ORG.github.io/REPO/` -> `https://github.com/ORG/REPO`), or
  given as `publish.repository` (with `publish.branch`) for other hosts;
- the book's launch buttons (book/_ext/launch_links.py), together with
  `launch_buttons.jupyterhub_url`, the university's hub, which is not where the course is
  published but where students run it.

An empty `site`, or a placeholder host (example.com/.org/.net/.edu and the reserved
`.example`, `.test`, `.invalid` names), means "not published yet": the book then says so
instead of linking to a host that does not exist, and the setup cells say how to get the
library instead of installing from nowhere. Plain `http://` is accepted only for a site
on loopback (the tests serve the built book from 127.0.0.1).

    python -m autograder.publish wheel DIR     build the wheel into DIR (the Makefile's `wheel` target)
    python -m autograder.publish check WHEEL   exit 1 unless WHEEL holds this checkout's library
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Where the site keeps the wheel, relative to the site's root (Sphinx's static folder).
WHEEL_SITE_DIR = "_static/dist"
# Hosts that mean "not configured": RFC 2606 / RFC 6761 reserved names.
PLACEHOLDER_SUFFIXES = (".example", ".test", ".invalid", ".localhost")
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# What goes into the wheel: the packages pyproject.toml names, and the files it refers to.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "dlcourse", "autograder")


class PublishError(Exception):
    """The publish setting is malformed; the message says which key and why."""


@dataclass(frozen=True)
class Publication:
    """Where the course is published; `site` is None while it is not.

    site        the book's address, ending in "/" (None: not published)
    repository  the git repository the book is built from (None: not published, or no
                repository known for this host)
    branch      the repository's branch the buttons open
    hub         the JupyterHub students use (None: none configured)
    reason      why the course counts as unpublished ("" when it is published)
    """

    site: str | None
    repository: str | None
    branch: str
    hub: str | None
    reason: str = ""

    @property
    def published(self) -> bool:
        return self.site is not None

    def wheel_url(self, version: str) -> str:
        """Address of the course library's wheel on the site."""
        if self.site is None:
            raise PublishError(f"the course is not published ({self.reason}): there is no wheel URL")
        return f"{self.site}{WHEEL_SITE_DIR}/{wheel_name(version)}"

    @property
    def github(self) -> tuple[str, str] | None:
        """(org, repo) when the repository is on GitHub (Colab needs that), else None."""
        if not self.repository:
            return None
        parts = urlsplit(self.repository)
        segments = [s for s in parts.path.split("/") if s]
        if parts.hostname != "github.com" or len(segments) != 2:
            return None
        return segments[0], segments[1].removesuffix(".git")


def placeholder(url: str) -> bool:
    """True for an empty address or one on a reserved example/test host."""
    host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    if not host:
        return True
    return host.endswith(PLACEHOLDER_SUFFIXES) or any(host == d or host.endswith("." + d) for d in PLACEHOLDER_DOMAINS)


def _checked_url(url: str, key: str) -> str:
    parts = urlsplit(url)
    loopback = parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise PublishError(f"{key} must be an https:// address (http:// only on loopback), got {url!r}")
    if parts.query or parts.fragment:
        raise PublishError(f"{key} must not carry a query or fragment, got {url!r}")
    return url


def _github_pages_repository(site: str) -> str | None:
    """https://ORG.github.io/REPO/ -> https://github.com/ORG/REPO (ORG.github.io/ -> ORG/ORG.github.io)."""
    parts = urlsplit(site)
    host = (parts.hostname or "").lower()
    if not host.endswith(".github.io"):
        return None
    org = host[: -len(".github.io")]
    segments = [s for s in parts.path.split("/") if s]
    repo = segments[0] if segments else f"{org}.github.io"
    return f"https://github.com/{org}/{repo}"


def from_config(config: dict) -> Publication:
    """The publication described by a parsed `_config.yml`."""
    publish = config.get("publish") or {}
    if not isinstance(publish, dict):
        raise PublishError("publish must be a mapping with a `site:` key")
    site = str(publish.get("site") or "").strip()
    hub = str((config.get("launch_buttons") or {}).get("jupyterhub_url") or "").strip()
    hub = None if placeholder(hub) else _checked_url(hub, "launch_buttons.jupyterhub_url").rstrip("/")
    branch = str(publish.get("branch") or "main")
    if placeholder(site):
        reason = "publish.site is empty" if not site else f"publish.site names a placeholder host ({site})"
        return Publication(site=None, repository=None, branch=branch, hub=hub, reason=reason)
    site = _checked_url(site, "publish.site").rstrip("/") + "/"
    repository = str(publish.get("repository") or "").strip().rstrip("/") or _github_pages_repository(site)
    if repository:
        repository = _checked_url(repository, "publish.repository")
    return Publication(site=site, repository=repository, branch=branch, hub=hub)


def read(root: Path = ROOT) -> Publication:
    """The publication configured in `root/_config.yml`."""
    config = Path(root) / "_config.yml"
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise PublishError(f"{config}: cannot read it ({err})") from err
    try:
        return from_config(data)
    except PublishError as err:
        raise PublishError(f"{config}: {err}") from err


# ---------------------------------------------------------------- the wheel
def project_version(root: Path = ROOT) -> str:
    """`project.version` of pyproject.toml: the version the wheel and the setup cells carry."""
    return tomllib.loads((Path(root) / "pyproject.toml").read_text())["project"]["version"]


def wheel_name(version: str) -> str:
    return f"dlcourse-{version}-py3-none-any.whl"


def build_wheel(out_dir: Path, root: Path = ROOT) -> Path:
    """Build the course library's wheel into `out_dir`; returns its path.

    Built from a copy of the sources in a temporary folder, so that setuptools' `build/`
    and `*.egg-info` never land in the checkout; with this environment's setuptools when
    it is recent enough (no network needed), else in pip's isolated build environment.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel_name(project_version(root))
    with tempfile.TemporaryDirectory(prefix="dlcourse-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in WHEEL_SOURCES:
            path = Path(root) / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                shutil.copy2(path, src / name)
        built = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(built), str(src)]
        try:  # offline, with this environment's setuptools
            subprocess.run(cmd + ["--no-build-isolation", "--no-index"], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            # an older setuptools (pyproject.toml's licence fields need >= 77): pip's isolated
            # build fetches the one pyproject.toml asks for
            print(f"building in this environment failed ({err.stderr.strip().splitlines()[-1:]}); "
                  "retrying with pip's build isolation", file=sys.stderr)
            subprocess.run(cmd, check=True)
        wheel = next(built.glob("dlcourse-*.whl"))
        if wheel.name != target.name:
            raise PublishError(f"pip built {wheel.name}, expected {target.name}")
        for old in out_dir.glob("dlcourse-*.whl"):
            old.unlink()  # one version on the site: the one the notebooks name
        shutil.move(str(wheel), target)
    return target


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WHEEL_PACKAGES = ("dlcourse/", "autograder/")


def wheel_mismatches(wheel: Path, root: Path = ROOT) -> list[str]:
    """What differs between a wheel and this checkout's course library; [] when it matches.

    Compares the version and every file of the packages the wheel holds, `dlcourse/` and
    `autograder/` (sources and package data), so a book built after either changed cannot
    publish a stale wheel under the same name, and a hub or a Colab install never runs an
    older grader than the checkout's.
    """
    wheel = Path(wheel)
    problems = []
    version = project_version(root)
    if wheel.name != wheel_name(version):
        problems.append(f"{wheel.name} is not the wheel of version {version} ({wheel_name(version)})")
    with zipfile.ZipFile(wheel) as zf:
        packed = {n: _sha(zf.read(n)) for n in zf.namelist() if n.startswith(WHEEL_PACKAGES)}
    here = {}
    for path in sorted(p for package in WHEEL_PACKAGES for p in (Path(root) / package).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and not rel.endswith(".pyc"):
            here[rel] = _sha(path.read_bytes())
    for name in sorted(set(here) | set(packed)):
        if name.endswith((".py", ".txt")) and here.get(name) != packed.get(name):
            state = "missing from the wheel" if name not in packed else (
                "not in the checkout" if name not in here else "differs")
            problems.append(f"{name}: {state}")
    return problems


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.publish", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wheel", help="build the course library's wheel into DIR")
    w.add_argument("dir")
    c = sub.add_parser("check", help="exit 1 unless WHEEL holds this checkout's course library")
    c.add_argument("wheel")
    args = parser.parse_args(argv)
    if args.command == "wheel":
        wheel = Path(args.dir) / wheel_name(project_version())
        if wheel.is_file() and not wheel_mismatches(wheel):
            print(f"{wheel} is up to date")
            return 0
        print(f"built {build_wheel(Path(args.dir))}")
        return 0
    problems = wheel_mismatches(Path(args.wheel))
    for p in problems:
        print(f"{args.wheel}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(_main())
