"""Launch links and the published wheel: from the one `publish.site` setting to the built pages.

The URL forms are checked on `launch_links.launch_urls` and `autograder.publish`; two tiny
books (one published, with a hub; one not published) are built with the real Jupyter Book
CLI and this repository's extension, and their HTML is read back.
"""
from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import yaml

from autograder import publish

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import launch_links  # noqa: E402

NOTEBOOK = "assignments/a01-convolution/a01-convolution.ipynb"


def _pub(site="https://dlcourse.github.io/dlcourse/", hub="https://hub.uni.edu", **extra):
    return publish.from_config({"publish": {"site": site, **extra}, "launch_buttons": {"jupyterhub_url": hub}})


# ---------------------------------------------------------------- the setting
def test_github_pages_site_gives_the_repository_and_branch():
    pub = _pub()
    assert pub.published and pub.site == "https://dlcourse.github.io/dlcourse/"
    assert (pub.repository, pub.branch, pub.github) == ("https://github.com/dlcourse/dlcourse", "main", ("dlcourse", "dlcourse"))
    # a user site (ORG.github.io) lives in the repository ORG/ORG.github.io
    assert _pub("https://someone.github.io").repository == "https://github.com/someone/someone.github.io"
    # elsewhere the repository is named explicitly
    other = _pub("https://dl.cs.uni.edu/course", repository="https://gitlab.com/uni/dl", branch="ws2026")
    assert (other.site, other.repository, other.branch, other.github) == (
        "https://dl.cs.uni.edu/course/", "https://gitlab.com/uni/dl", "ws2026", None)


@pytest.mark.parametrize("site", ["", "https://dlcourse.example.org/", "https://course.example", "https://x.test/"])
def test_empty_or_placeholder_site_means_not_published(site):
    pub = _pub(site)
    assert not pub.published and pub.repository is None and pub.reason
    with pytest.raises(publish.PublishError):
        pub.wheel_url("0.1.0")


def test_placeholder_hub_gives_no_hub():
    assert _pub(hub="https://hub.example.edu").hub is None
    assert _pub(hub="").hub is None
    assert _pub(hub="https://hub.uni.edu/").hub == "https://hub.uni.edu"


def test_plain_http_only_on_loopback():
    assert _pub("http://127.0.0.1:8000/").wheel_url("1.2.3") == \
        "http://127.0.0.1:8000/_static/dist/dlcourse-1.2.3-py3-none-any.whl"
    with pytest.raises(publish.PublishError, match="https"):
        _pub("http://dl.cs.uni.edu/")


def test_the_repository_config_is_read_and_is_unpublished_until_an_instructor_sets_it():
    """The checked-in configuration names no host that does not exist."""
    pub = publish.read(ROOT)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "repository" not in config, "the repository is derived from publish.site; do not name it twice"
    if not pub.published:
        assert pub.hub is None or not publish.placeholder(pub.hub)


# ---------------------------------------------------------------- URL forms
def test_colab_link_opens_the_notebook_from_github():
    urls = launch_links.launch_urls(_pub(), NOTEBOOK)
    assert urls["Colab"] == f"https://colab.research.google.com/github/dlcourse/dlcourse/blob/main/{NOTEBOOK}"


def test_hub_link_is_an_nbgitpuller_link_that_pulls_into_home_and_opens_the_notebook():
    url = launch_links.launch_urls(_pub(branch="ws2026"), NOTEBOOK)["JupyterHub"]
    parts = urlsplit(url)
    # the hub's user-redirect sends the logged-in reader to their own server's git-pull handler
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://hub.uni.edu/hub/user-redirect/git-pull"
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {"repo": ["https://github.com/dlcourse/dlcourse"], "branch": ["ws2026"],
                     # nbgitpuller clones into ~/<repo name>; JupyterLab then opens the notebook there
                     "urlpath": [f"lab/tree/dlcourse/{NOTEBOOK}"]}
    classic = launch_links.launch_urls(_pub(), NOTEBOOK, notebook_interface="classic")["JupyterHub"]
    assert parse_qs(urlsplit(classic).query)["urlpath"] == [f"tree/dlcourse/{NOTEBOOK}"]


def test_no_links_while_unpublished_and_no_hub_link_without_a_hub():
    assert launch_links.launch_urls(_pub(""), NOTEBOOK) == {}
    assert set(launch_links.launch_urls(_pub(hub=""), NOTEBOOK)) == {"Colab"}
    gitlab = _pub("https://dl.cs.uni.edu/", repository="https://gitlab.com/uni/dl")
    assert set(launch_links.launch_urls(gitlab, NOTEBOOK)) == {"JupyterHub"}  # Colab opens GitHub only


# ---------------------------------------------------------------- tiny books, really built
class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.classes = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if attrs.get("class"):
            self.classes += attrs["class"].split()


def _read(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text())
    return parser


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    publish.build_wheel(folder)
    return folder


def _build(tmp: Path, wheel_dir: Path, site: str, hub: str) -> Path:
    """A three-page book using this repository's extension; returns the HTML folder."""
    book = tmp / "book"
    (book / "_ext").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "_ext" / "launch_links.py", book / "_ext")
    shutil.copytree(ROOT / "book" / "_ext" / "static", book / "_ext" / "static")
    shutil.copy(ROOT / "pyproject.toml", book)  # the version the wheel must carry
    shutil.copytree(ROOT / "book" / "_static", book / "book" / "_static")  # the favicon the config names
    for package in ("dlcourse", "autograder"):  # what the wheel carries, compared with this "checkout"
        shutil.copytree(ROOT / package, book / package, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.update({"title": "launch test", "only_build_toc_files": True, "exclude_patterns": ["dlcourse/*", "autograder/*"],
                   "execute": {"execute_notebooks": "off"}, "publish": {"site": site}})
    config["launch_buttons"]["jupyterhub_url"] = hub
    config["sphinx"] = {"local_extensions": {"launch_links": "_ext"}}
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: page\n- file: assignment\n")
    (book / "intro.md").write_text("# Intro\n\nHello.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A notebook page\n\nText."),
                                         nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "page.ipynb")
    (book / "assignments" / "a01-convolution").mkdir(parents=True)
    nbformat.write(nb, book / NOTEBOOK)
    (book / "assignment.md").write_text(f"# The assignment\n\n```{{assignment-launch}} {NOTEBOOK}\n```\n")
    env = dict(os.environ, DLCOURSE_WHEEL_DIR=str(wheel_dir))
    done = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(book), "--path-output",
                           str(tmp / "out"), "-W", "-n", "--keep-going", "-q"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp / "out" / "_build" / "html"


@pytest.mark.slow
def test_published_book_carries_links_from_the_setting_and_serves_the_wheel(tmp_path, wheel_dir):
    site = _build(tmp_path, wheel_dir, "https://dlcourse.github.io/dlcourse/", "https://hub.uni.edu")
    pub = _pub()
    page, assignment = _read(site / "page.html"), _read(site / "assignment.html")
    for doc, notebook in ((page, "page.ipynb"), (assignment, NOTEBOOK)):
        for url in launch_links.launch_urls(pub, notebook).values():
            assert url in doc.hrefs, (url, doc.hrefs)
        assert launch_links.UNPUBLISHED_CLASS not in doc.classes
    assert "https://github.com/dlcourse/dlcourse" in page.hrefs  # the repository button
    served = site / publish.WHEEL_SITE_DIR / publish.wheel_name(publish.project_version(ROOT))
    assert served.is_file() and served.read_bytes() == (wheel_dir / served.name).read_bytes()
    with zipfile.ZipFile(served) as zf:
        assert "dlcourse/__init__.py" in zf.namelist()


@pytest.mark.slow
def test_unpublished_book_says_so_and_links_nowhere(tmp_path, wheel_dir):
    site = _build(tmp_path, wheel_dir, "", "https://hub.example.edu")
    for name in ("page.html", "assignment.html"):
        doc = _read(site / name)
        assert launch_links.UNPUBLISHED_CLASS in doc.classes, f"{name}: no 'not published' note"
        outside = [h for h in doc.hrefs if any(k in h for k in ("colab.research", "git-pull", "example.", "github.com"))]
        assert not outside, f"{name} links to hosts that are not set up: {outside}"
        assert "not published online yet" in (site / name).read_text()
    # the assignment page offers the released notebook itself for download
    downloads = [h for h in _read(site / "assignment.html").hrefs if "_downloads/" in h]
    assert len(downloads) == 1 and downloads[0].endswith("/a01-convolution.ipynb"), downloads
    assert (site / downloads[0]).read_bytes() == (tmp_path / "book" / NOTEBOOK).read_bytes()
    # the wheel is published anyway: the site is where the library lives, whatever its address
    assert (site / publish.WHEEL_SITE_DIR / publish.wheel_name(publish.project_version(ROOT))).is_file()


def test_stale_wheel_is_named_with_what_differs(tmp_path, wheel_dir):
    wheel = next(wheel_dir.glob("*.whl"))
    assert publish.wheel_mismatches(wheel, ROOT) == []
    fake_root = tmp_path / "root"
    for package in ("dlcourse", "autograder"):
        shutil.copytree(ROOT / package, fake_root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", fake_root)
    assert publish.wheel_mismatches(wheel, fake_root) == []
    (fake_root / "dlcourse" / "runtime.py").write_text("# changed after the wheel was built\n")
    (fake_root / "autograder" / "sandbox.py").write_text("# the grader changed too\n")
    problems = publish.wheel_mismatches(wheel, fake_root)
    assert problems == ["autograder/sandbox.py: differs", "dlcourse/runtime.py: differs"], problems
