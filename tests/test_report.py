"""The grading report's numbers, from a made-up journal: per-question pass rates and means in the
notebook's question order and titles, failure messages grouped once their particulars are
abstracted, whole-number counts on the histogram, time per notebook, flags and errors escaped."""
from __future__ import annotations

from autograder import report
from autograder.questions import Question

QS = {"test_a": Question("test_a", 1, "Shapes", 2.0), "test_b": Question("test_b", 2, "Training", 3.0)}


def _entry(student, a, b, msg_b="", seconds=10.0, flags=(), errors=()):
    return {"student": student, "seconds": seconds, "flags": list(flags),
            "diagnostics": [{"cell": "-", "severity": "error", "message": m} for m in errors],
            "tests": [{"grade_id": "test_b", "points": 3.0, "score": b, "status": "passed" if b else "failed", "message": msg_b},
                      {"grade_id": "test_a", "points": 2.0, "score": a, "status": "passed" if a else "failed",
                       "message": "" if a else "wrong shape (2, 3)"}]}


ENTRIES = {
    "ann": _entry("ann", 2, 3, seconds=12.0),
    "ben": _entry("ben", 2, 0, "a net trained by your train_epoch classifies 10.0% of 2,000 examples, below 90%"),
    "cy": _entry("cy", 0, 0, "a net trained by your train_epoch classifies 12.5% of 2,000 examples, below 90%", seconds=31.5),
    "dee": _entry("dee", 2, 0, "train_epoch returned a Tensor, not a float", flags=["<b>patched</b> torch.allclose"],
                  errors=["the kernel died in 'train'"]),
}


def test_summary_counts_questions_in_notebook_order_and_groups_mistakes():
    s = report.summarise(ENTRIES, QS)
    assert [q["label"] for q in s["questions"]] == ["Question 1: Shapes", "Question 2: Training"]
    a, b = s["questions"]
    assert (a["passed"], a["n"], a["mean"]) == (3, 4, 1.5) and (b["passed"], b["n"], b["mean"]) == (1, 4, 0.75)
    # 10.0% and 12.5% are one mistake, hit by two students; the type error is another
    assert b["common"][0] == ("a net trained by your train_epoch classifies # of # examples, below #", 2)
    assert ("train_epoch returned a Tensor, not a float", 1) in b["common"]
    assert sorted(s["totals"]) == [0, 2, 2, 5] and s["top"] == 5
    assert s["seconds"][0] == (31.5, "cy")


def test_histogram_counts_whole_students():
    fig = report.histogram([0, 2, 2, 5], 5, "a")
    ticks = fig.axes[0].get_yticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_pages_escape_what_students_influenced_and_hold_every_section(tmp_path):
    meta = {"assignment": "a09", "isolation": "bwrap", "settings": {"workers": 2, "cell_timeout": 60}}
    s = report.summarise(ENTRIES, QS)
    html, md = report.page(meta, s), report.markdown(meta, s)
    assert "<b>patched</b>" not in html and "&lt;b&gt;patched&lt;/b&gt;" in html
    for text in (html, md):
        for part in ("Question 2: Training", "Most common failures", "Time per notebook", "median", "cy 31.5 s",
                     "the kernel died", "workers 2"):
            assert part in text, part
    report.charts(s, tmp_path, "a09")
    assert (tmp_path / "scores.png").read_bytes()[:4] == (tmp_path / "questions.png").read_bytes()[:4] == b"\x89PNG"
