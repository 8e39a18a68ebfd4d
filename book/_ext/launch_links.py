"""Launch links for pages that describe a notebook kept elsewhere in the repository.

sphinx-book-theme puts Colab / JupyterHub launch buttons on pages built from notebooks,
pointing at that page's own notebook. An assignment page is markdown, and its button
must open the *released student notebook* (`assignments/aNN-slug/aNN-slug.ipynb`), not
the page. The directive

    ```{assignment-launch} assignments/a01-convolution/a01-convolution.ipynb
    ```

writes a line of "Open in Colab / JupyterHub" links into the page and adds the same
links to the page's launch menu in the header. The URLs are built exactly as the theme
builds them, from the one place they are configured: `repository` and `launch_buttons`
in `_config.yml` (which Jupyter Book passes on as `html_theme_options`).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)
UI_PREFIX = {"classic": "tree", "jupyterlab": "lab/tree"}


def launch_urls(theme_options: dict, path: str) -> dict[str, str]:
    """{"Colab": url, "JupyterHub": url} for a notebook at `path` (relative to the repo root).

    Only the services configured in `launch_buttons` are returned.
    """
    repo_url = theme_options.get("repository_url", "").rstrip("/")
    branch = theme_options.get("repository_branch", "") or "main"
    launch = theme_options.get("launch_buttons", {}) or {}
    if not repo_url.startswith("https://github.com/"):
        raise ValueError(f"repository.url in _config.yml must be a GitHub URL for Colab links, got {repo_url!r}")
    org, repo = repo_url[len("https://github.com/"):].split("/")[:2]
    urls = {}
    colab = (launch.get("colab_url") or "").rstrip("/")
    if colab:
        urls["Colab"] = f"{colab}/github/{org}/{repo}/blob/{branch}/{path}"
    hub = (launch.get("jupyterhub_url") or "").rstrip("/")
    if hub:
        ui = UI_PREFIX[launch.get("notebook_interface", "classic")]
        query = urlencode({"repo": repo_url, "urlpath": f"{ui}/{repo}/{path}", "branch": branch}, safe="/")
        urls["JupyterHub"] = f"{hub}/hub/user-redirect/git-pull?{query}"
    return urls


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
        urls = launch_urls(self.config.html_theme_options, path)
        para = nodes.paragraph(classes=["assignment-launch"])
        para += nodes.strong(text="Open the assignment: ")
        for i, (service, url) in enumerate(urls.items()):
            if i:
                para += nodes.Text(" · ")
            ref = nodes.reference("", f"in {service}", refuri=url, classes=["launch-link", f"launch-{service.lower()}"])
            para += ref
        return [para]


def add_header_links(app, pagename, templatename, context, doctree):
    """Add the directive's links to the header's launch menu (after the theme built it)."""
    path = getattr(app.env, "dlc_launch", {}).get(pagename)
    if path is None or "header_buttons" not in context:
        return
    icons = {"Colab": "_static/images/logo_colab.png", "JupyterHub": "_static/images/logo_jupyterhub.svg"}
    buttons = [{"type": "link", "text": service, "tooltip": f"Open the assignment in {service}",
                "icon": icons[service], "url": url}
               for service, url in launch_urls(app.config.html_theme_options, path).items()]
    context["header_buttons"].append({"type": "group", "tooltip": "Launch the assignment",
                                      "icon": "fas fa-rocket", "buttons": buttons, "label": "launch-buttons"})


def _purge(app, env, docname):
    getattr(env, "dlc_launch", {}).pop(docname, None)


def _merge(app, env, docnames, other):
    env.dlc_launch = getattr(env, "dlc_launch", {})
    env.dlc_launch.update({d: p for d, p in getattr(other, "dlc_launch", {}).items() if d in docnames})


def _static_and_theme_defaults(app):
    """Serve book/_ext/static/ (widgets-offline.js) and give the theme a colour mode.

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
    app.add_directive("assignment-launch", AssignmentLaunch)
    app.connect("builder-inited", _static_and_theme_defaults)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("html-page-context", add_header_links, priority=502)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
