"""The built book on a phone: 390 CSS pixels wide, touch screen, the theme's mobile layout.

No page may scroll sideways (a wide element must scroll inside itself, as code blocks do),
no plot may shrink its labels below legibility, and chapter 1's explorers must be usable by
touch: they open on the worked examples, every control fits the screen, slider tracks are long enough to aim at and handles are
at least 24 px (the WCAG 2.2 minimum target size), and a tap on a track moves the slider
and changes the view. Each page is opened once at phone width (`phone_views`), and every
per-page check reads that one visit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from site_helpers import PHONE_VIEWPORT, toc_pages

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("phone-width")]
WIDTH = PHONE_VIEWPORT[0]
MIN_TARGET = 24      # px, WCAG 2.2 "target size (minimum)"
MIN_TRACK = 150      # px: a slider track a thumb can aim along (it was 3 px)
LABEL_PT = 10        # matplotlib's default size of tick labels, axis labels and legends
MIN_LABEL_PX = 9     # px on the phone's screen: what a 10 pt label may shrink to at most


def _png_dpi(path) -> float:
    """The resolution matplotlib wrote into a PNG (its pHYs chunk), 100 where there is none."""
    import struct

    data = path.read_bytes()
    at = 8
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"pHYs":
            per_unit, _, unit = struct.unpack(">IIB", data[at + 8:at + 17])
            return per_unit * 0.0254 if unit == 1 else 100.0
        if kind == b"IDAT":
            break
        at += 12 + size
    return 100.0


@dataclass
class PhoneView:
    """What one page showed on the phone, measured in one visit for every check of this module."""

    visit: object
    widths: list          # [document scroll width, client width], CSS px
    culprits: list        # elements sticking out past the screen's right edge (for the message)
    plots: list           # (file, drawn width, width on the screen) of every plot
    wide_math: list       # display equations wider than the screen
    wide_widgets: list    # widget parts beyond the screen's edge


@pytest.fixture(scope="module")
def phone_views(site, phone_session) -> dict[str, PhoneView | None]:
    """Every toc page, opened once at phone width (None where the page was not built)."""
    views = {}
    for doc in toc_pages():
        if not (site / f"{doc}.html").is_file():
            views[doc] = None
            continue
        page, visit = phone_session.open(f"{doc}.html")
        try:  # (a page that never settles fails its own tests, not the whole module)
            if page.locator(".ix").count():  # the inception explorer draws its table after loading
                page.wait_for_selector(".ix table", timeout=15_000)
            page.wait_for_function("() => [...document.querySelectorAll('main div.cell_output img')].every(i => i.complete)",
                                   timeout=15_000)
        except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError
            visit.console_errors.append(f"the page did not settle on the phone: {str(exc).splitlines()[0]}")
        widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        # what sticks out, for the failure message: elements whose right edge passes the screen's,
        # unless an ancestor clips or scrolls them inside the screen
        culprits = page.evaluate("""W => [...document.querySelectorAll('main *')].filter(e => {
            const r = e.getBoundingClientRect(); if (r.width === 0 || r.right <= W + 1) return false;
            for (let a = e.parentElement; a; a = a.parentElement) {
              if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= W + 1) return false; }
            return true; }).slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').slice(0, 60))""",
                                 WIDTH)
        plots = page.evaluate("""() => [...document.querySelectorAll('main div.cell_output img')]
            .map(i => [new URL(i.currentSrc).pathname, i.naturalWidth, i.getBoundingClientRect().width])""")
        wide_math = page.evaluate("""W => [...document.querySelectorAll('main mjx-container[display="true"]')]
            .filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > W + 1)
            .map(e => Math.round(e.scrollWidth) + ' px: ' + (e.textContent || '').slice(0, 60))""", WIDTH)
        wide_widgets = page.evaluate("""W => [...document.querySelectorAll('main .jupyter-widgets *, main .ix *')]
            .filter(e => { const r = e.getBoundingClientRect();
                           return r.width > 0 && e.offsetParent !== null && r.right > W + 1; })
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').slice(0, 40))""", WIDTH)
        page.close()
        views[doc] = PhoneView(visit, widths, culprits, plots, wide_math, wide_widgets)
    return views


@pytest.mark.parametrize("doc", toc_pages())
def test_page_does_not_scroll_sideways_at_phone_width(site, phone_views, doc):
    view = phone_views[doc]
    if view is None:
        pytest.fail(f"{doc}.html was not built")
    widths, culprits, plots, visit = view.widths, view.culprits, view.plots, view.visit
    assert widths[0] <= widths[1] <= WIDTH, f"{doc} scrolls sideways: {widths}; sticking out: {culprits}"
    assert not visit.console_errors and not visit.outside_requests, visit
    small = []
    for src, drawn, shown in plots:
        path = site / src.lstrip("/")   # the server's root is the site's
        dpi = _png_dpi(path) if path.suffix == ".png" and path.is_file() else 100.0
        label = LABEL_PT / 72 * dpi * shown / max(drawn, 1)   # CSS px of a 10 pt label
        if label < MIN_LABEL_PX:
            small.append(f"{path.name}: {drawn} px drawn, {shown:.0f} px shown, labels {label:.1f} px")
    assert not small, f"{doc}: plots whose labels are too small to read on a phone: {small}"


def _explorer_pages() -> list[str]:
    return [d for d in toc_pages() if d.startswith("book/01-")]


def _controls(page):
    """Every slider of the explorers on the page: label, readout, track and handle boxes."""
    return page.eval_on_selector_all(".cx-explorer .widget-slider", """els => els.map(e => {
        const box = x => { const r = x.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
        return {label: e.querySelector('.widget-label').innerText.trim(),
                value: e.querySelector('.widget-readout').innerText.trim(),
                track: box(e.querySelector('.noUi-target')), handle: box(e.querySelector('.noUi-handle'))}; })""")


def _visible_outputs(page) -> list[str]:
    views = page.eval_on_selector_all(
        ".cx-explorer .widget-html-content", "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText)")
    return [m.group(0) for text in views for m in re.finditer(r"Output: \d+ x \d+", text)]


def test_explorers_open_on_the_worked_examples_with_touch_sized_controls(site, phone_session):
    seen = {}
    for doc in _explorer_pages():
        text = (site / f"{doc}.html").read_text(errors="replace")
        if "cx-explorer" not in text:
            continue
        page, visit = phone_session.open(f"{doc}.html")
        page.wait_for_selector(".cx-explorer .noUi-handle", timeout=15_000)
        controls = _controls(page)
        seen[doc] = {c["label"]: c["value"] for c in controls}
        for c in controls:
            left, _, width, _ = c["track"]
            assert width >= MIN_TRACK and left + width <= WIDTH, (doc, c)
            assert min(c["handle"][2:]) >= MIN_TARGET, (doc, c)
        buttons = page.eval_on_selector_all(".cx-explorer button", "els => els.map(e => { const r = "
                                            "e.getBoundingClientRect(); return [r.width, r.height, r.right]; })")
        assert all(min(w, h) >= MIN_TARGET and right <= WIDTH for w, h, right in buttons), (doc, buttons)
        seen[doc]["outputs"] = _visible_outputs(page)
        page.close()
        assert not visit.console_errors and not visit.outside_requests, visit
    conv = next(v for v in seen.values() if "kernel F" in v)
    assert conv["kernel F"] == "3" and conv["stride S"] == "1" and conv["padding P"] == "0", conv
    assert conv["outputs"] == ["Output: 3 x 3"], conv  # the worked example: 5x5 image, 3x3 kernel
    pool = next(v for v in seen.values() if "window F" in v)
    assert pool["window F"] == "2" and pool["stride S"] == "2" and pool["outputs"] == ["Output: 2 x 2"], pool


def test_a_tap_on_a_slider_track_moves_it_and_changes_the_view(site, phone_session):
    doc = next(d for d in _explorer_pages() if "kernel F" in (site / f"{d}.html").read_text(errors="replace"))
    page, visit = phone_session.open(f"{doc}.html")
    page.wait_for_selector(".cx-explorer .noUi-handle", timeout=15_000)
    kernel = next(c for c in _controls(page) if c["label"] == "kernel F")
    left, top, width, height = kernel["track"]
    page.locator(".cx-explorer .widget-slider", has_text="kernel F").scroll_into_view_if_needed()
    kernel = next(c for c in _controls(page) if c["label"] == "kernel F")
    left, top, width, height = kernel["track"]
    page.touchscreen.tap(left + width - 2, top + height / 2)  # the right end: the largest kernel
    page.wait_for_function("() => [...document.querySelectorAll('.cx-explorer .widget-html-content')]"
                           ".some(e => e.offsetParent !== null && e.innerText.includes('F=5, S=1'))", timeout=10_000)
    after = next(c for c in _controls(page) if c["label"] == "kernel F")
    assert after["value"] == "5"
    assert _visible_outputs(page) == ["Output: 1 x 1"]  # a 5x5 kernel on the 5x5 image
    page.close()
    assert not visit.console_errors and not visit.outside_requests, visit


def _chapters_4_to_9() -> list[str]:
    return [d for d in toc_pages() if d.startswith(tuple(f"book/0{n}-" for n in range(4, 10)))]


@pytest.mark.parametrize("doc", _chapters_4_to_9())
def test_equations_and_widgets_fit_the_phone(phone_views, doc):
    """Chapters 4-9 (issue 18): a display equation may not need a sideways scroll of its own (a
    long one is broken into lines), and no part of a widget (the inception explorer's sliders and
    its table's multiply-adds column) may lie beyond the right edge of the screen, even inside an
    element that scrolls."""
    view = phone_views[doc]
    if view is None:
        pytest.fail(f"{doc}.html was not built")
    assert not view.wide_math, f"{doc}: equations wider than a phone: {view.wide_math}"
    assert not view.wide_widgets, f"{doc}: widget parts beyond the screen's edge: {view.wide_widgets}"
