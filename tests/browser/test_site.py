"""The built book as a reader meets it: headless Chromium on the HTML served from loopback.

Needs the built book (`make book`; `make test` builds it first) and /usr/bin/chromium.
"""
from __future__ import annotations

import html.parser
import pathlib
import re
from urllib.parse import parse_qs, unquote, urlsplit

import nbformat
import pytest
import torch

from site_helpers import ROOT, book_config, toc_pages

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("site")]
CHAPTER_PAGES = [d for d in toc_pages() if re.match(r"book/\d\d-", d)]


@pytest.mark.parametrize("doc", toc_pages())
def test_page_loads_with_no_console_error_failed_or_outside_request(visits, doc):
    visit = visits[doc]
    assert not visit.console_errors, f"{doc}: console errors {visit.console_errors}"
    assert not visit.failed_requests, f"{doc}: failed requests {visit.failed_requests}"
    assert not visit.outside_requests, f"{doc}: requests leaving 127.0.0.1 {visit.outside_requests}"


def test_every_content_image_has_alt_text(visits):
    missing = {doc: v.missing_alt for doc, v in visits.items() if v.missing_alt}
    assert not missing, f"images without alt text (or with a file name as alt text): {missing}"


def test_notebooks_that_plot_show_their_figures(visits):
    # A kernel that runs with a non-inline matplotlib backend (MPLBACKEND=Agg, say) silently
    # drops every figure; the alt-text check above would then pass on an empty page.
    for doc in CHAPTER_PAGES:
        source = ROOT / f"{doc}.ipynb"
        if source.is_file() and "plt." in source.read_text():
            assert visits[doc].content_images > 0, f"{doc}: the notebook plots, but the page shows no figure"


def test_equations_render_as_math(visits):
    with_math = {doc: v for doc, v in visits.items() if v.math_elements}
    assert any(doc in CHAPTER_PAGES for doc in with_math), "no chapter page has any math to render"
    for doc, v in with_math.items():
        # every display/inline math element becomes (at least) one MathJax container
        assert v.mathjax_containers >= v.math_elements, (
            f"{doc}: {v.math_elements} math elements but {v.mathjax_containers} rendered by MathJax")
        assert v.mathjax_errors == 0, f"{doc}: {v.mathjax_errors} TeX errors (mjx-merror)"


def _source_title(doc: str) -> str:
    """The first level-1 heading of a page's source (.md, or an .ipynb's first markdown cell)."""
    md, nb = ROOT / f"{doc}.md", ROOT / f"{doc}.ipynb"
    if md.is_file():
        text = md.read_text()
    else:
        text = next(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown")
    found = re.search(r"^# (.+)$", text, re.M)
    assert found, f"{doc}: no '# title' in its source"
    return found.group(1).strip()


def test_chapter_pages_show_their_title_and_render_visibly(visits):
    """What the reader sees: the page's own title as its heading, and a screenshot of the whole
    laid-out page that is not blank (the screenshots are kept for people to look at)."""
    from PIL import Image

    for doc in CHAPTER_PAGES:
        visit = visits[doc]
        # the theme appends a permalink sign ("#" or "¶") to the heading's text
        heading = re.sub(r"\s*[#¶]\s*$", "", visit.heading).strip()
        assert heading == _source_title(doc), f"{doc}: the page's heading is {visit.heading!r}"
        assert visit.screenshot is not None and visit.screenshot.is_file(), f"{doc}: no screenshot"
        with Image.open(visit.screenshot) as shot:
            # full page: the image is the whole document as Chromium laid it out (device scale 1)
            assert shot.size == visit.page_size, (doc, shot.size, visit.page_size)
            # not blank: more than 1% of the pixels differ from the most common (background) shade
            grey = shot.convert("L").histogram()
            ink = 1 - max(grey) / (shot.width * shot.height)
            assert ink > 0.01, f"{doc}: the screenshot is {100 * (1 - ink):.1f}% one shade"


# ---------------------------------------------------------------- convolution explorer
def _explorer_page(site: pathlib.Path) -> str:
    for doc in toc_pages():
        if doc.startswith("book/01-"):
            text = (site / f"{doc}.html").read_text(errors="replace")
            if "application/vnd.jupyter.widget-state+json" in text and "Output: " in text:
                return f"{doc}.html"
    pytest.fail("no chapter 1 page embeds the convolution explorer's widget state")


def _explorer_state(page):
    """(slider label -> value, visible 'Output: H x W' texts) as the reader sees them."""
    sliders = page.eval_on_selector_all(
        ".widget-slider", "els => els.map(e => [e.querySelector('.widget-label').innerText.trim(),"
                          " e.querySelector('.widget-readout').innerText.trim()])")
    views = page.eval_on_selector_all(
        ".widget-html-content", "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText)")
    outputs = [m.group(0) for text in views for m in re.finditer(r"Output: \d+ x \d+", text)]
    return dict(sliders), outputs


def _torch_output(sliders: dict[str, str], n: int = 5) -> str:
    """The output size PyTorch's conv2d gives for the sliders' setting on an n x n input."""
    values = {label.split()[0].lower(): int(v) for label, v in sliders.items()}
    out = torch.nn.functional.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, values["kernel"], values["kernel"]),
                                     stride=values["stride"], padding=values["padding"], dilation=values["dilation"])
    return f"Output: {out.shape[2]} x {out.shape[3]}"


def test_convolution_explorer_responds_to_a_slider(site, session):
    page, visit = session.open(_explorer_page(site))
    page.wait_for_selector(".widget-slider .noUi-handle", timeout=15_000)
    sliders, before = _explorer_state(page)
    assert set(k.split()[0].lower() for k in sliders) >= {"kernel", "stride", "padding", "dilation"}, sliders
    assert before == [_torch_output(sliders)], (sliders, before)

    # Move the kernel-size slider one step with the keyboard, as a reader would.
    kernel = page.locator(".widget-slider", has_text=re.compile("kernel", re.I)).locator(".noUi-handle")
    kernel.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "before => ![...document.querySelectorAll('.widget-html-content')]"
        ".filter(e => e.offsetParent !== null).some(e => e.innerText.includes(before))",
        arg=before[0], timeout=10_000)
    after_sliders, after = _explorer_state(page)
    assert after_sliders != sliders, "the slider did not move"
    assert after != before, "the explorer did not change when the slider moved"
    assert after == [_torch_output(after_sliders)], (after_sliders, after)
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit
    page.close()


# ---------------------------------------------------------------- launch buttons
def _expected_launch_urls(notebook_path: str) -> dict[str, str]:
    """{service: url} as book/_ext/launch_links.py derives them from _config.yml ({} while unpublished)."""
    import sys

    from autograder import publish

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import launch_links

    launch = book_config().get("launch_buttons", {}) or {}
    return launch_links.launch_urls(publish.read(ROOT), notebook_path, colab_url=launch.get("colab_url", ""),
                                    notebook_interface=launch.get("notebook_interface", "jupyterlab"))


def _launch_targets() -> list[tuple[str, str]]:
    """(page, notebook it must open): notebook pages open themselves, assignment pages the release."""
    targets = []
    for doc in toc_pages():
        if (ROOT / f"{doc}.ipynb").is_file():
            targets.append((doc, f"{doc}.ipynb"))
        elif doc.startswith("book/assignments/a"):
            slug = pathlib.PurePosixPath(doc).name
            targets.append((doc, f"assignments/{slug}/{slug}.ipynb"))
    return targets


def test_launch_buttons_carry_the_urls_configured_in_config_yml(visits, site):
    """Published: the links derived from `publish.site`; not published: no links, and a note that says so."""
    targets = _launch_targets()
    assert targets, "no notebook or assignment page in the toc"
    for doc, notebook in targets:
        assert (ROOT / notebook).is_file(), f"{doc}: its launch target {notebook} does not exist"
        hrefs = visits[doc].launch_hrefs
        want = _expected_launch_urls(notebook)
        if not want:
            assert not hrefs, f"{doc}: the course is not published, yet the page links to {hrefs}"
            assert "dlc-unpublished" in (site / f"{doc}.html").read_text(), f"{doc}: no 'not published' note"
            continue
        for service, url in want.items():
            found = [h for h in hrefs if h.split("?")[0] == url.split("?")[0]]
            assert found, f"{doc}: no {service} link to {url} among {hrefs}"
            assert all(parse_qs(urlsplit(h).query) == parse_qs(urlsplit(url).query) for h in found), (doc, found)


# ---------------------------------------------------------------- search
def test_search_finds_a_term_from_a_chapter(site, session):
    term = "stride"
    chapter = next((d for d in CHAPTER_PAGES if term in (site / f"{d}.html").read_text().lower()), None)
    assert chapter, f"no chapter page mentions {term!r}"
    page, visit = session.open(f"search.html?q={term}")
    page.wait_for_selector("#search-results ul.search li a", timeout=20_000)
    found = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    page.close()
    assert any("/book/01-convolution/" in h for h in found), found
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit


# ---------------------------------------------------------------- links
class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def test_no_broken_internal_links(site):
    pages = [p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts]
    parsed = {}

    def parse(path):
        if path not in parsed:
            parser = _Links()
            parser.feed(path.read_text(errors="replace"))
            parsed[path] = parser
        return parsed[path]

    broken = []
    for page in pages:
        for href in parse(page).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if site not in target.parents and target != site:
                broken.append(f"{page.relative_to(site)}: {href} leaves the site")
            elif not target.is_file():
                broken.append(f"{page.relative_to(site)}: {href} (no file {target.relative_to(site)})")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
                broken.append(f"{page.relative_to(site)}: {href} (no anchor #{parts.fragment})")
    assert len(pages) >= len(toc_pages())
    assert not broken, "broken links:\n" + "\n".join(broken)


def _open_explorer(site, session, chapter: str, marker: str, what: str):
    """Open the page of `chapter` (a toc prefix) whose HTML holds `marker`, once its sliders are drawn."""
    page_path = next((f"{doc}.html" for doc in toc_pages() if doc.startswith(chapter)
                      and marker in (site / f"{doc}.html").read_text(errors="replace")), None)
    assert page_path, f"no {chapter} page embeds {what}"
    page, visit = session.open(page_path)
    page.wait_for_selector(".widget-slider .noUi-handle", timeout=15_000)
    return page, visit


# ---------------------------------------------------------------- inception explorer (chapter 6)
def test_inception_explorer_recomputes_cost_when_a_slider_moves(site, session):
    """The static page's explorer shows, after a slider step, the multiply-adds that
    torch's flop counter gives for the module it describes."""
    from dlcourse.arch_explorer import REDUCE3, Setting, compute_view

    page, visit = _open_explorer(site, session, "book/06-", "3x3 reduce", "the inception explorer")

    def shown_macs():
        texts = page.eval_on_selector_all(".widget-html-content", "els => els.filter(e => e.offsetParent !== null)"
                                                                  ".map(e => e.innerText)")
        found = [m.group(1) for t in texts for m in re.finditer(r"Multiply-adds: ([\d,]+)", t)]
        assert len(found) == 1, found
        return int(found[0].replace(",", ""))

    naive = compute_view(Setting(None, None, None))["macs"]
    assert shown_macs() == naive
    handle = page.locator(".widget-slider", has_text="3x3 reduce").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowRight")
    expected = compute_view(Setting(REDUCE3[1], None, None))["macs"]
    page.wait_for_function("n => [...document.querySelectorAll('.widget-html-content')]"
                           ".filter(e => e.offsetParent !== null).some(e => e.innerText.replace(/,/g, '')"
                           ".includes('Multiply-adds: ' + n))", arg=str(expected), timeout=10_000)
    assert shown_macs() == expected < naive
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit
    page.close()


# ---------------------------------------------------------------- NMS explorer (chapter 11)
def test_nms_explorer_responds_to_its_slider_in_the_static_page(site, session):
    """Chapter 11's explorer without a kernel: moving the NMS slider to 1 shows the view without
    suppression, over the same candidates, keeping at least as many boxes as the opening view."""
    from dlcourse.nms_explorer import IOU_THRESHOLDS

    page, visit = _open_explorer(site, session, "book/11-", "NMS IoU threshold", "the NMS explorer")

    def shown():
        texts = page.eval_on_selector_all(".nx p", "els => els.filter(e => e.offsetParent !== null)"
                                                   ".map(e => e.innerText)")
        found = [m for t in texts for m in re.finditer(r"(\d+) candidates score at least ([\d.]+); (.*?) keeps (\d+)\.", t)]
        assert len(found) == 1, texts
        return int(found[0].group(1)), found[0].group(2), found[0].group(3), int(found[0].group(4))

    before = shown()
    assert before[1:3] == ("0.2", "NMS at IoU 0.5"), before               # yolo_decode's defaults
    handle = page.locator(".widget-slider", has_text="NMS IoU threshold").locator(".noUi-handle")
    handle.focus()
    for _ in range(len(IOU_THRESHOLDS) - 1 - IOU_THRESHOLDS.index(0.5)):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => [...document.querySelectorAll('.nx p')].some(e => e.offsetParent !== null"
                           " && e.innerText.includes('no suppression'))", timeout=10_000)
    after = shown()
    assert after[0] == before[0] and after[2] == "no suppression (IoU threshold 1)" and after[3] >= before[3]
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit
    page.close()


# ---------------------------------------------------------------- transposed-convolution explorer (chapter 12)
def test_tconv_explorer_responds_to_its_slider_in_the_static_page(site, session):
    """Chapter 12's explorer without a kernel: it opens on kernel 3 and stride 2 (the checkerboard);
    one step of the kernel slider shows kernel 4, whose output is one pixel larger and whose overlap
    is even, as `compute_view` computes them."""
    from dlcourse.tconv_explorer import compute_view

    page, visit = _open_explorer(site, session, "book/12-", "tx-map", "the transposed-convolution explorer")

    def shown():
        texts = page.eval_on_selector_all(".tx p", "els => els.filter(e => e.offsetParent !== null)"
                                                   ".map(e => e.innerText)")
        sizes = [m for t in texts for m in re.finditer(r"kernel k = (\d+), stride s = (\d+), padding p = (\d+): "
                                                       r"output .*? = (\d+), so output (\d+) x (\d+)", t)]
        assert len(sizes) == 1, texts
        k, s, p, out = (int(sizes[0].group(i)) for i in (1, 2, 3, 4))
        return (k, s, p, out), " ".join(texts)

    (k, s, p, out), text = shown()
    opening = compute_view(3, 2, 0)
    assert (k, s, p, out) == (3, 2, 0, opening["size"]) and "checkerboard" in text, text
    handle = page.locator(".widget-slider", has_text="kernel k").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => [...document.querySelectorAll('.tx p')].some(e => e.offsetParent !== null"
                           " && e.innerText.includes('kernel k = 4'))", timeout=10_000)
    (k, s, p, out), text = shown()
    after = compute_view(4, 2, 0)
    assert (k, s, p, out) == (4, 2, 0, after["size"]) == (4, 2, 0, opening["size"] + 1)
    assert after["pattern"] == "even" and "even overlap" in text, text
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit
    page.close()


# ---------------------------------------------------------------- ring-of-Gaussians explorer (chapter 13)
def test_ring_explorer_steps_through_both_runs_in_the_static_page(site, session):
    """Chapter 13's explorer without a kernel: it opens on the healthy run's last snapshot; one step
    left of the slider shows the snapshot before, and the second run's button shows that run at the
    same step. The modes each view states are the ones the page's own cell printed for that run and
    step (its "modes covered by step" lines)."""
    page, visit = _open_explorer(site, session, "book/13-", "rx-map", "the ring explorer")
    printed = {}
    for line in page.inner_text("body").splitlines():
        m = re.match(r"(.+?): modes covered by step\s+(.*)$", line.strip())
        if m and "{" not in m.group(1):                        # the output, not the cell's own source
            printed[m.group(1)] = {int(s): int(n) for s, n in re.findall(r"(\d+): (\d+)", m.group(2))}
    assert len(printed) == 2, printed

    def shown():
        texts = page.eval_on_selector_all(".rx p", "els => els.filter(e => e.offsetParent !== null)"
                                                   ".map(e => e.innerText)")
        found = [m for t in texts for m in re.finditer(r"(.+), step (\d+) of (\d+): (\d+) of 8 modes covered", t)]
        assert len(found) == 1, texts
        return found[0].group(1), int(found[0].group(2)), int(found[0].group(3)), int(found[0].group(4))

    healthy, collapsed = list(printed)
    name, step, total, modes = shown()
    assert (name, step) == (healthy, total) and modes == printed[healthy][step]
    handle = page.locator(".widget-slider", has_text="step").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => [...document.querySelectorAll('.rx p')].some(e => e.offsetParent !== null"
                           f" && e.innerText.includes('step {total - 250} of'))", timeout=10_000)
    name, step, _, modes = shown()
    assert (name, step) == (healthy, total - 250) and modes == printed[healthy][step]
    page.get_by_role("button", name=collapsed).click()
    page.wait_for_function("() => [...document.querySelectorAll('.rx p')].some(e => e.offsetParent !== null"
                           " && e.innerText.includes(\"10x\"))", timeout=10_000)
    name, step, _, modes = shown()
    assert (name, step) == (collapsed, total - 250) and modes == printed[collapsed][step]
    assert not visit.console_errors and not visit.failed_requests and not visit.outside_requests, visit
    page.close()
