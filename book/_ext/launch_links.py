"""Launch links and the published install source, derived from where the course is published.

Every address that points at the course comes from one setting, `publish.site` in
`_config.yml`, read by autograder/publish.py (which also derives the repository the book is
built from). This extension turns it into:

- the theme's launch buttons on notebook pages and its repository button: Colab opens the
  notebook from GitHub; the JupyterHub button is an nbgitpuller link, the hub convention
  (`<hub>/hub/user-redirect/git-pull?repo=<repository>&urlpath=lab/tree/<repo>/<path>
  &branch=<branch>`): the hub logs the reader in, nbgitpuller clones (or updates) the
  course into `~/<repo>` and JupyterLab opens the notebook there;
- the `assignment-launch` directive for assignment pages, which are markdown and must open
  the *released student notebook*, not the page:

      ```{assignment-launch} assignments/a01-convolution/a01-convolution.ipynb
      ```

  writes a line of "Open in Colab / JupyterHub" links into the page and adds the same
  links to the page's launch menu in the header;
- while the course is not published (empty or placeholder `publish.site`), no launch or
  repository buttons at all, and a note on every notebook and assignment page that says
  so and what the reader can do instead, rather than links to hosts that do not exist;
- the course library's wheel, copied into the built site at `_static/dist/` (built
  beforehand by `make wheel`, i.e. `python -m autograder.publish wheel _build/dist`; the
  folder can be changed with `$DLCOURSE_WHEEL_DIR`), after checking that it holds this
  checkout's library at the version the setup cells name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlencode

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from autograder import publish

LOGGER = logging.getLogger(__name__)
UI_PREFIX = {"classic": "tree", "jupyterlab": "lab/tree"}
UNPUBLISHED_CLASS = "dlc-unpublished"


def launch_urls(publication: publish.Publication, path: str, *, colab_url: str = "https://colab.research.google.com",
                notebook_interface: str = "jupyterlab") -> dict[str, str]:
    """{"Colab": url, "JupyterHub": url} for a notebook at `path` (relative to the repository root).

    Empty while the course is not published; Colab only for a GitHub repository; the
    JupyterHub link only when a hub is configured.
    """
    if not publication.published or not publication.repository:
        return {}
    path = path.lstrip("/")
    # the folder nbgitpuller clones into when the link names none: the URL's last segment
    repo_name = publication.repository.rstrip("/").rsplit("/", 1)[-1]
    urls = {}
    github = publication.github
    if colab_url and github:
        org, repo = github
        urls["Colab"] = f"{colab_url.rstrip('/')}/github/{org}/{repo}/blob/{publication.branch}/{path}"
    if publication.hub:
        ui = UI_PREFIX[notebook_interface]
        query = urlencode({"repo": publication.repository, "urlpath": f"{ui}/{repo_name}/{path}",
                           "branch": publication.branch}, safe="/")
        urls["JupyterHub"] = f"{publication.hub}/hub/user-redirect/git-pull?{query}"
    return urls


def unpublished_note(what: str, download: nodes.Node | None = None) -> nodes.admonition:
    """The note that stands where launch links would be while the course is not published.

    `download`: a link to the notebook (assignment pages); notebook pages have the theme's
    download button instead.
    """
    note = nodes.admonition(classes=["note", UNPUBLISHED_CLASS])
    note += nodes.title(text="Not published yet")
    para = nodes.paragraph()
    para += nodes.Text(f"This course is not published online yet, so {what} has no Colab or JupyterHub link. ")
    if download is None:
        para += nodes.Text("Download the notebook (the download button at the top of the page, .ipynb)")
    else:
        para += nodes.Text("Download the notebook, ")
        para += download
        para += nodes.Text(",")
    para += nodes.Text(" and run it in a checkout of the course repository, where ")
    para += nodes.literal(text="make venv")
    para += nodes.Text(" installs the course library. The links appear here once the course is published.")
    note += para
    return note


def _configure_theme(app, config):
    """Point the theme's launch and repository buttons at the published course (or remove them)."""
    publication = publish.read(Path(app.srcdir))
    app.config.dlc_publication = publication
    options = config.html_theme_options
    launch = dict(options.get("launch_buttons") or {})
    colab, hub = launch.pop("colab_url", ""), launch.pop("jupyterhub_url", "")
    if publication.published and publication.repository:
        options["repository_url"] = publication.repository
        options["repository_branch"] = publication.branch
        options["path_to_docs"] = ""
        options["use_repository_button"] = True
        if colab and publication.github:
            launch["colab_url"] = colab
        if publication.hub:
            launch["jupyterhub_url"] = publication.hub
    else:
        options["repository_url"] = ""
        options["use_repository_button"] = False
        if not publication.published:
            LOGGER.info(f"launch_links: the course is not published ({publication.reason}); "
                        "the book says so instead of showing launch buttons")
    options["launch_buttons"] = launch


class AssignmentLaunch(SphinxDirective):
    """`{assignment-launch} PATH`: links that open the notebook at PATH (repo-relative)."""

    required_arguments = 1

    def run(self):
        path = self.arguments[0].strip().lstrip("/")
        root = Path(self.env.srcdir)
        if not (root / path).is_file():
            LOGGER.warning(f"assignment-launch: {path} does not exist (release the assignment first: "
                           f"`python -m autograder release {Path(path).parent.name}`)",
                           location=(self.env.docname, self.lineno))
        self.env.dlc_launch = getattr(self.env, "dlc_launch", {})
        self.env.dlc_launch[self.env.docname] = path
        urls = _page_urls(self.config, path)
        if not urls:
            # the released notebook itself, copied into the site's _downloads/ by Sphinx
            link = addnodes.download_reference("", "", reftarget="/" + path, refdoc=self.env.docname,
                                               refdomain="", reftype="download", refexplicit=True)
            link += nodes.literal(text=Path(path).name)
            return [unpublished_note("this assignment", link)]
        para = nodes.paragraph(classes=["assignment-launch"])
        para += nodes.strong(text="Open the assignment: ")
        for i, (service, url) in enumerate(urls.items()):
            if i:
                para += nodes.Text(" · ")
            ref = nodes.reference("", f"in {service}", refuri=url, classes=["launch-link", f"launch-{service.lower()}"])
            para += ref
        return [para]


def _page_urls(config, path: str) -> dict[str, str]:
    launch = config.html_theme_options.get("launch_buttons", {}) or {}
    return launch_urls(config.dlc_publication, path, colab_url=launch.get("colab_url", ""),
                       notebook_interface=launch.get("notebook_interface", "jupyterlab"))


def add_header_links(app, pagename, templatename, context, doctree):
    """Add the directive's links to the header's launch menu (after the theme built it)."""
    path = getattr(app.env, "dlc_launch", {}).get(pagename)
    if path is None or "header_buttons" not in context:
        return
    icons = {"Colab": "_static/images/logo_colab.png", "JupyterHub": "_static/images/logo_jupyterhub.svg"}
    buttons = [{"type": "link", "text": service, "tooltip": f"Open the assignment in {service}",
                "icon": icons[service], "url": url}
               for service, url in _page_urls(app.config, path).items()]
    if buttons:
        context["header_buttons"].append({"type": "group", "tooltip": "Launch the assignment",
                                          "icon": "fas fa-rocket", "buttons": buttons, "label": "launch-buttons"})


def _note_on_notebook_pages(app, doctree, docname):
    """While unpublished, say so at the top of every page built from a notebook."""
    if app.config.dlc_publication.published or not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    title = next((i for i, child in enumerate(section.children) if isinstance(child, nodes.title)), -1)
    section.insert(title + 1, unpublished_note("this page's notebook"))


def wheel_dir(app) -> Path:
    """Where `make wheel` put the course library's wheel."""
    return Path(os.environ.get("DLCOURSE_WHEEL_DIR") or Path(app.srcdir) / "_build" / "dist").resolve()


def _check_wheel(app):
    """Warn early (an error under -W) when the wheel the site must publish is missing or stale."""
    app.dlc_wheel = None
    if app.builder.format != "html":
        return
    wheel = wheel_dir(app) / publish.wheel_name(publish.project_version(Path(app.srcdir)))
    if not wheel.is_file():
        LOGGER.warning(f"launch_links: {wheel} is missing, so the site would not serve the course library "
                       "that the notebooks' setup cells install: run `make wheel`")
        return
    problems = publish.wheel_mismatches(wheel, Path(app.srcdir))
    if problems:
        LOGGER.warning(f"launch_links: {wheel} is not this checkout's course library ({'; '.join(problems[:5])}): "
                       "run `make wheel`")
        return
    app.dlc_wheel = wheel


def _publish_wheel(app, exception):
    """Copy the checked wheel into the built site, beside the pages: <site>/_static/dist/."""
    wheel = getattr(app, "dlc_wheel", None)
    if exception is not None or wheel is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / publish.WHEEL_SITE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("dlcourse-*.whl"):
        old.unlink()
    shutil.copy2(wheel, target / wheel.name)


def _purge(app, env, docname):
    getattr(env, "dlc_launch", {}).pop(docname, None)


def _merge(app, env, docnames, other):
    env.dlc_launch = getattr(env, "dlc_launch", {})
    env.dlc_launch.update({d: p for d, p in getattr(other, "dlc_launch", {}).items() if d in docnames})


def _static_and_theme_defaults(app):
    """Serve book/_ext/static/ (widgets-offline.js, course.css) and give the theme a colour mode.

    pydata-sphinx-theme logs a console error ("Got invalid theme mode") on a first visit
    when no default mode is in html_context; the browser tests treat console errors as failures.
    """
    app.config.html_static_path.append(str(Path(__file__).with_name("static")))
    app.config.html_context.setdefault("default_mode", "light")  # figures are drawn for light pages


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Keep one copy of each inline script.

    sphinx-thebe adds its `const THEBE_JS_URL = ...` snippet twice under Jupyter Book, and
    the second `const` is a SyntaxError in the browser console on every page.
    """
    seen, kept = set(), []
    for script in context.get("script_files", []):
        body = getattr(script, "attributes", {}).get("body")
        key = (getattr(script, "filename", None) or "", body)  # None and "" both mean inline
        if body and key in seen:
            continue
        seen.add(key)
        kept.append(script)
    if "script_files" in context:
        context["script_files"][:] = kept


def setup(app):
    app.add_config_value("dlc_publication", None, "env")
    app.add_directive("assignment-launch", AssignmentLaunch)
    app.add_css_file("course.css")
    app.connect("config-inited", _configure_theme)
    app.connect("builder-inited", _static_and_theme_defaults)
    app.connect("builder-inited", _check_wheel)
    app.connect("doctree-resolved", _note_on_notebook_pages)
    app.connect("build-finished", _publish_wheel)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("html-page-context", add_header_links, priority=502)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}
