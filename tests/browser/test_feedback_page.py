"""A student's feedback page on a phone (390 CSS pixels): every question, its title, points and
message readable without scrolling sideways, even with a long unbroken message and call, and the
written answer shown as awaiting its grade."""
from __future__ import annotations

import pytest

from autograder import feedback
from autograder.questions import load
from site_helpers import PHONE_VIEWPORT
from suite_helpers import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("feedback-page")]


def test_feedback_page_reads_at_phone_width(browser, tmp_path):
    qs = load(ROOT, "a01-convolution")
    long_call = "conv2d_im2col(float32[2, 3, 7, 7], float32[4, 3, 3, 3], " + "x" * 300 + ")"
    entry = {"student": "alice", "flags": [], "diagnostics": [
        {"cell": "conv2d_naive", "severity": "warning", "message": "conv2d_naive (cell 21) raised NotImplementedError"}],
        "tests": [{"grade_id": g, "points": q.points, "score": 0.0 if g == "test_conv2d_im2col" else q.points,
                   "status": "failed" if g == "test_conv2d_im2col" else "passed",
                   "message": f"Tensor-likes are not close! (while checking {long_call})" if g == "test_conv2d_im2col" else ""}
                  for g, q in qs.items() if not q.manual],
        # the written answer (graded by hand): answered, not graded yet
        "manual": [{"grade_id": g, "points": q.points, "answered": True, "digest": "0"} for g, q in qs.items() if q.manual]}
    html = feedback.page("a01-convolution", entry, "full", qs, "https://course.example.org/book/assignments/a01.html",
                         {"conv2d_naive": "Convolution with loops"})
    (tmp_path / "alice.html").write_text(html)
    context = browser.new_context(viewport={"width": PHONE_VIEWPORT[0], "height": PHONE_VIEWPORT[1]}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto((tmp_path / "alice.html").as_uri())
    text = page.inner_text("body")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    context.close()
    assert widths[0] <= widths[1] <= PHONE_VIEWPORT[0], widths
    for q in qs.values():
        assert q.label in text
    assert "Score: 23 / 30" in text and "Tensor-likes are not close!" in text
    assert "2 of the points are for written answers your instructor has not graded yet" in text
    assert "awaiting grading \u00b7 \u2013 / 2 points" in text
    # the note names the section of the notebook, not a cell index the student cannot find
    assert "your code in \u201cConvolution with loops\u201d (conv2d_naive) raised NotImplementedError" in text
    assert "(cell 21)" not in text
