"""`autograder similarity` on a small class of a01 submissions, through the real command line:
a copy with every name changed and its comments rewritten is found first, with the shared code
side by side; an honest, differently written solution shares far less (only what every answer
shares); an untouched release (starter code only) is paired with no one; an unreadable notebook is listed and the others compared; what
students wrote cannot add markup to the page; the outputs are private."""
from __future__ import annotations

import csv
import re
import stat
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder.demo import fill_release, load_assignment, solution_answers

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "a01-convolution"

# carol's own answers to three tasks, written another way (the others left unanswered)
CAROL = {
    "conv_param_count": '''def conv_param_count(f, d_in, k, bias=True):
    """Learnable parameters of a conv layer: k filters of size f x f x d_in, plus k biases."""
    per_filter = d_in * f ** 2 + int(bias)
    return per_filter * k
''',
    "receptive_field": '''def receptive_field(layers):
    """Side of the receptive field of one output pixel of a stack of (kernel, stride) layers."""
    size = 1
    for kernel, _ in reversed(layers):
        size = size  # placeholder so the loop below reads in forward order
    strides = [s for _, s in layers]
    total = 1
    for i, (kernel, _) in enumerate(layers):
        product = 1
        for s in strides[:i]:
            product = product * s
        total = total + (kernel - 1) * product
    return total
''',
    "conv2d_naive": '''def conv2d_naive(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation with explicit loops. x: (N, C, H, W), w: (K, C, FH, FW), b: (K,)."""
    batch, channels, height, width = x.shape
    filters, _, fh, fw = w.shape
    padded = torch.zeros(batch, channels, height + 2 * padding, width + 2 * padding, dtype=x.dtype)
    padded[..., padding:padding + height, padding:padding + width] = x
    rows = (height + 2 * padding - fh) // stride + 1
    cols = (width + 2 * padding - fw) // stride + 1
    result = torch.empty(batch, filters, rows, cols, dtype=x.dtype)
    for r in range(rows):
        for c in range(cols):
            patch = padded[:, :, r * stride:r * stride + fh, c * stride:c * stride + fw]
            result[:, :, r, c] = torch.einsum("nchw,kchw->nk", patch, w)
    if b is not None:
        result += b.view(1, -1, 1, 1)
    return result
''',
}
RENAMES = {"out": "result_tensor", "windows": "patches", "xp": "padded_input", "cols": "matrix", "jump": "step",
           "f_eff": "effective", "span": "room", "win": "views"}


def _disguised(code: str) -> str:
    """The same code with every renamed local and its comments rewritten (one with markup)."""
    for old, new in RENAMES.items():
        code = re.sub(rf"\b{old}\b", new, code)
    return re.sub(r"#[^\n]*", "# my own working </pre><script>alert(1)</script>", code)


def _class(folder: Path) -> None:
    source, release, _ = load_assignment(ROOT, ASSIGNMENT)
    answers = solution_answers(source)
    folder.mkdir()
    nbformat.write(fill_release(release, answers, set(answers)), folder / "alice.ipynb")
    bob = {k: _disguised(v) for k, v in answers.items()}
    nbformat.write(fill_release(release, bob, set(bob)), folder / "bob.ipynb")
    nbformat.write(fill_release(release, CAROL, set(CAROL)), folder / "carol.ipynb")
    nbformat.write(release, folder / "dave.ipynb")
    (folder / "eve.ipynb").write_text('{"cells": [ "truncated by the LMS')


def test_similarity_finds_the_disguised_copy_and_nothing_else(tmp_path):
    _class(tmp_path / "subs")
    out = tmp_path / "grading"
    proc = subprocess.run([sys.executable, "-m", "autograder", "similarity", ASSIGNMENT, str(tmp_path / "subs"),
                           "--root", str(ROOT), "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 submissions compared" in proc.stdout and "1 not readable" in proc.stdout, proc.stdout

    rows = list(csv.DictReader((out / "similarity.csv").open()))
    pairs = {(r["student_a"], r["student_b"]): (float(r["share_a"]), float(r["share_b"])) for r in rows}
    # the copy: most of each one's code is in the other's, names and comments notwithstanding
    assert list(pairs)[0] == ("alice", "bob") and min(pairs[("alice", "bob")]) > 0.8, pairs
    # starter code is not counted: the untouched release shares nothing with anyone
    assert not any("dave" in p for p in pairs), pairs
    # honest code written another way shares only what every answer shares (the output-size
    # formula, the padding slice), far below the copy
    assert all(max(shares) < 0.5 for p, shares in pairs.items() if "carol" in p), pairs

    page = (out / "similarity.html").read_text()
    assert "eve" in page and "not valid JSON" in page
    assert "never a\npenalty" in page or "never a penalty" in page
    assert "<mark>" in page and page.count("<section") == len(rows)
    assert "<script>" not in page and "&lt;script&gt;" in page      # the student's text, escaped
    for name in ("similarity.html", "similarity.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
