"""Fixtures of the browser tests: the built book served on loopback, and headless Chromium.

The book (``_build/html``, or ``$BOOK_HTML``) is served by a real ``http.server`` on
127.0.0.1 in a thread (``suite_helpers.LoopbackServer``). Chromium (the system one,
``/usr/bin/chromium`` or ``$CHROMIUM``) is driven by Playwright (``suite_helpers.chromium``).
Without the built book or Chromium the tests skip, except in CI as root, where `make test`
provides both and their absence fails (``suite_helpers.require_or_skip``). Every request
to a host other than 127.0.0.1 is recorded and aborted: the site must work inside a
firewall, so any such request is a failure.

Every page in the table of contents is visited once per session (``visits``), and what
happened there (console errors, failed requests, outside requests, images without alt
text) is kept for the tests to judge; a screenshot of each page goes to
``<build>/screenshots/``.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from site_helpers import PHONE_VIEWPORT, site_dir, toc_pages
from suite_helpers import LoopbackServer, chromium, require_or_skip


@pytest.fixture(scope="session")
def site() -> pathlib.Path:
    folder = site_dir()
    if not (folder / "index.html").is_file():
        require_or_skip(f"the book is not built in {folder} (run `make book`, or set BOOK_HTML)")
    return folder


@pytest.fixture(scope="session")
def base_url(site):
    with LoopbackServer(directory=site) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser():
    with chromium() as browser:
        yield browser


@dataclass
class Visit:
    """What happened while one page loaded."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    missing_alt: list[str] = field(default_factory=list)
    content_images: int = 0  # images in the page's content that actually loaded
    launch_hrefs: list[str] = field(default_factory=list)
    math_elements: int = 0
    mathjax_containers: int = 0
    mathjax_errors: int = 0
    heading: str = ""                      # the first <h1> of the page's content, as rendered
    page_size: tuple[int, int] = (0, 0)    # the laid-out document's width and height, CSS pixels
    screenshot: pathlib.Path | None = None  # full-page screenshot (written by `visits`)


class Session:
    """A browser context that refuses and records every request leaving 127.0.0.1."""

    def __init__(self, browser, base_url, width: int = 1280, height: int = 900, phone: bool = False):
        self.base_url = base_url
        # phone: a touch screen that reports itself as mobile (the theme's narrow layout)
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           is_mobile=phone, has_touch=phone)
        self.outside: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, path: str, visit: Visit | None = None):
        """Open a page, wait until it and its scripts (MathJax, widgets) have settled."""
        visit = visit or Visit(url=path)
        page = self.context.new_page()
        page.on("console", lambda msg: msg.type == "error" and visit.console_errors.append(msg.text))
        page.on("pageerror", lambda err: visit.console_errors.append(f"uncaught: {err}"))
        page.on("requestfailed", lambda req: visit.failed_requests.append(f"{req.url} ({req.failure})"))
        page.on("response", lambda resp: resp.status >= 400 and visit.failed_requests.append(f"{resp.url} (HTTP {resp.status})"))
        start = len(self.outside)
        page.goto(f"{self.base_url}/{path}", wait_until="load")
        # MathJax typesets asynchronously; its startup promise resolves when it is done.
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                      " ? MathJax.startup.promise.then(() => true) : true")
        page.wait_for_load_state("networkidle")
        visit.outside_requests.extend(self.outside[start:])
        return page, visit

    def close(self):
        self.context.close()


@pytest.fixture(scope="session")
def session(browser, base_url):
    s = Session(browser, base_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def phone_session(browser, base_url):
    """Like `session`, on a phone: PHONE_VIEWPORT CSS pixels, touch, mobile layout."""
    s = Session(browser, base_url, *PHONE_VIEWPORT, phone=True)
    yield s
    s.close()


@pytest.fixture(scope="session")
def visits(site, session) -> dict[str, Visit]:
    """Every toc page, loaded once: what happened there; screenshots to <build>/screenshots/."""
    shots = site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    result = {}
    for doc in toc_pages():
        path = f"{doc}.html"
        if not (site / path).is_file():
            result[doc] = Visit(url=path, failed_requests=[f"{path} was not built"])
            continue
        page, visit = session.open(path)
        visit.missing_alt = page.eval_on_selector_all(
            "main img", "els => els.filter(e => { const alt = (e.getAttribute('alt') || '').trim();"
                        " return !alt || /\\.(png|jpe?g|svg|gif|webp)$/i.test(alt); }).map(e => e.getAttribute('src'))")
        visit.content_images = page.eval_on_selector_all(
            "main img", "els => els.filter(e => e.complete && e.naturalWidth > 0"
                        " && !/logo/i.test(e.getAttribute('src') || '')).length")
        visit.launch_hrefs = page.eval_on_selector_all(
            ".dropdown-launch-buttons a, a.launch-link", "els => els.map(e => e.href)")
        visit.math_elements = page.locator("main .math").count()
        visit.mathjax_containers = page.locator("main mjx-container").count()
        visit.mathjax_errors = page.locator("main mjx-merror").count()
        headings = page.locator("main h1")
        visit.heading = headings.first.inner_text() if headings.count() else ""
        visit.page_size = tuple(page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"))
        visit.screenshot = shots / (doc.replace("/", "__") + ".png")
        visit.screenshot.unlink(missing_ok=True)  # a stale file from an earlier run must not pass for this one
        page.screenshot(path=str(visit.screenshot), full_page=True)
        page.close()
        result[doc] = visit
    return result
