"""What students and the instructor see in the browser on the course's hub (JupyterLab 4 and Notebook 7).

Headless Chromium logs in through the hub's login form, as a person does. A student sees
only the tools a student uses (the Assignment List with fetch, submit, validate and
feedback); the Nbgrader menu offers nothing else, and there is no Create Assignment panel,
Formgrader, Course List or toolbar Validate button. The instructor, in the same hub,
sees all of nbgrader (the check that the student test is not passing vacuously). And the
book's JupyterHub button, an nbgitpuller link, pulls the course into the student's home
and opens the notebook in JupyterLab.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import hubkit
from scenario import ASSIGNMENT, COURSE_ID, INSTRUCTOR
from suite_helpers import chromium

pytestmark = [pytest.mark.hub, pytest.mark.slow]
STUDENT = "dlct-bob"
INSTRUCTOR_TOOLS = ("Formgrader", "Course List", "Create assignment", "Create Assignment")


@pytest.fixture(scope="module")
def browser(course):
    """The suite's headless Chromium (skips without it, fails instead in CI as root)."""
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def released(course):
    """a01 in the exchange (the workflow test released it already when it ran first), fetched by the student."""
    r = course.instructor.api("POST", f"formgrader/api/assignment/{ASSIGNMENT}/release").json()
    assert r["success"] or "already exists" in r.get("error", ""), r
    course.users[STUDENT].assignment_action("fetch", COURSE_ID, ASSIGNMENT)
    return course


def _menu_items(page, menu: str) -> list[str] | None:
    """Labels in a main-menu menu as the user sees them when opening it (None: no such menu)."""
    bar = page.locator(".lm-MenuBar-item", has_text=menu)
    if bar.count() == 0:
        return None
    bar.first.click()
    page.wait_for_selector(".lm-Menu .lm-Menu-itemLabel", timeout=10_000)
    labels = page.eval_on_selector_all(".lm-Menu .lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel",
                                       "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText.trim())")
    page.keyboard.press("Escape")
    return [label for label in labels if label]


def _choose(page, menu: str, item: str, tries: int = 4) -> None:
    """Open `menu` in the main menu bar and click `item`. On a loaded machine the first click can
    land while Lab is still laying out (the menu opens and closes again), so a menu that shows no
    such item within 15 s is closed and opened again; the last try's error is the test's."""
    for attempt in range(tries):
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-item", has_text=menu).first.click()
        entry = page.locator(".lm-Menu-item", has_text=item).first
        try:
            entry.wait_for(state="visible", timeout=15_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try again, re-raised on the last try
            if attempt == tries - 1:
                raise
            continue
        entry.click()
        return


def _tab_labels(page) -> list[str]:
    return page.eval_on_selector_all(".lm-TabBar-tabLabel", "els => els.map(e => e.innerText.trim())")


def _toolbar_text(page) -> str:
    page.wait_for_selector(".jp-NotebookPanel-toolbar", timeout=60_000)
    page.wait_for_timeout(1500)  # toolbar buttons of extensions arrive after the panel
    return " ".join(page.eval_on_selector_all(".jp-NotebookPanel-toolbar", "els => els.map(e => e.innerText)"))


def _lab(page, course, name, notebook: str | None = None):
    path = f"/tree/{notebook}" if notebook else ""
    page.goto(f"{course.hub.url}/user/{name}/lab{path}", wait_until="load")
    page.wait_for_selector(".lm-MenuBar-item", timeout=120_000)


@pytest.fixture(scope="module")
def views(released, browser):
    """What each person sees: menus, side panels and notebook toolbars, in Lab and in Notebook 7."""
    course, seen = released, {}
    for name in (STUDENT, INSTRUCTOR):
        context, page = hubkit.browser_login(browser, course.hub.url, name, course.password)
        nb = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb" if name == STUDENT else f"dlcourse/assignments/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
        _lab(page, course, name, nb)
        lab = {"menu": _menu_items(page, "Nbgrader"), "tabs": _tab_labels(page), "toolbar": _toolbar_text(page)}
        # the Assignment List, opened the way a student finds it: from the Nbgrader menu
        _choose(page, "Nbgrader", "Assignment List")
        # the notebook's own tab also shows the assignment's name: wait for the list itself to load
        page.wait_for_function(
            """([selector, name]) => { const w = document.querySelector(selector);
                 return w !== null && w.innerText.includes(name) && !w.innerText.includes("Loading, please wait"); }""",
            arg=[".nbgrader-mainarea-widget", ASSIGNMENT], timeout=60_000)
        lab["assignment_list"] = page.locator(".nbgrader-mainarea-widget").first.inner_text()
        page.goto(f"{course.hub.url}/user/{name}/tree", wait_until="load")
        page.wait_for_selector(".lm-MenuBar-item", timeout=120_000)
        classic = {"menu": _menu_items(page, "Nbgrader"), "tabs": _tab_labels(page)}
        page.goto(f"{course.hub.url}/user/{name}/notebooks/{nb}", wait_until="load")
        classic["toolbar"] = _toolbar_text(page)
        page.screenshot(path=str(course.root / f"notebook7-{name}.png"))
        seen[name] = {"lab": lab, "notebook7": classic}
        context.close()
    return seen


@pytest.mark.parametrize("ui", ["lab", "notebook7"])
def test_student_sees_the_assignment_list_and_no_instructor_tools(views, ui):
    view = views[STUDENT][ui]
    assert view["menu"] == ["Assignment List"], view["menu"]
    assert not any(tool in label for label in view["tabs"] for tool in INSTRUCTOR_TOOLS), view["tabs"]
    assert "Validate" not in view["toolbar"], view["toolbar"]


def test_student_assignment_list_offers_the_assignment(views):
    text = views[STUDENT]["lab"]["assignment_list"]
    assert ASSIGNMENT in text and "Submit" in text, text


@pytest.mark.parametrize("ui", ["lab", "notebook7"])
def test_instructor_sees_nbgraders_instructor_tools(views, ui):
    view = views[INSTRUCTOR][ui]
    assert {"Assignment List", "Formgrader"} <= set(view["menu"] or []), view["menu"]
    assert "Validate" in view["toolbar"], view["toolbar"]
    if ui == "lab":
        assert "Create assignment" in view["menu"] and "Create Assignment" in view["tabs"], view


def test_book_hub_button_pulls_the_course_and_opens_the_notebook(course, browser, tmp_path):
    """The link the book's JupyterHub button carries, followed by a logged-in student."""
    import sys

    from autograder import publish

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "book" / "_ext"))
    import launch_links

    # the course's repository, as the hub can reach it (a local clone stands in for GitHub)
    repo = course.root / "dlcourse-site"
    notebook = f"assignments/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    (repo / Path(notebook).parent).mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / notebook, repo / notebook)
    git = ["git", "-C", str(repo), "-c", "user.name=hub test", "-c", "user.email=hub@test.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "course"], check=True)
    # git refuses to read a repository another user owns ("dubious ownership"): the clone source
    # stands in for a remote one, so it is handed to the student who pulls from it
    subprocess.run(["chown", "-R", f"{STUDENT}:", str(repo)], check=True)
    pub = publish.Publication(site="https://course.invalid/", repository=f"file://{repo}", branch="main",
                              hub=course.hub.url)
    url = launch_links.launch_urls(pub, notebook)["JupyterHub"]
    assert urlsplit(url).path == "/hub/user-redirect/git-pull"

    context, page = hubkit.browser_login(browser, course.hub.url, STUDENT, course.password)
    page.goto(url, wait_until="load")
    page.wait_for_url(f"**/user/{STUDENT}/lab/tree/dlcourse-site/{notebook}", timeout=120_000)
    # the visible panel: JupyterLab may also restore, hidden, the notebook this student had open before
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden)", timeout=120_000)
    tabs = _tab_labels(page)
    context.close()
    assert f"{ASSIGNMENT}.ipynb" in tabs, tabs
    pulled = course.users[STUDENT].read(f"dlcourse-site/{notebook}")
    assert pulled["type"] == "notebook"
