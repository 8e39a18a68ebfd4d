"""Assignment a01-convolution: the committed release is current, the solution passes every
test, the untouched release fails every graded cell, and the stubs sit where the
solutions were."""
from __future__ import annotations

import pathlib
import re

import nbformat
import pytest

from autograder import notebook_checks as checks

REPO = pathlib.Path(__file__).resolve().parents[1]
NAME = "a01-convolution"
SOURCE = REPO / "solutions" / NAME / f"{NAME}.ipynb"
RELEASED = REPO / "assignments" / NAME / f"{NAME}.ipynb"
FUNCTIONS = ["conv_output_size", "conv_param_count", "receptive_field", "conv2d_naive", "conv2d_im2col",
             "max_pool2d", "avg_pool2d", "max_pool2d_backward"]


def _by_grade_id(nb):
    return {checks.nbgrader_meta(c)["grade_id"]: c for c in nb.cells if checks.nbgrader_meta(c).get("grade_id")}


WELL_FORMED = dict(points=28)  # tests/test_assignments.py checks the source with these


def test_released_notebook_has_stubs_where_the_solutions_were():
    source, released = _by_grade_id(nbformat.read(SOURCE, 4)), _by_grade_id(nbformat.read(RELEASED, 4))
    assert source.keys() == released.keys()
    solutions = [gid for gid, c in source.items() if checks.nbgrader_meta(c).get("solution") and c.cell_type == "code"]
    assert len(solutions) >= 6
    # the written answer (graded by hand): nbgrader's stub in place of the model answer
    written = [gid for gid, c in source.items() if checks.is_manual_answer(c)]
    assert written and all(released[gid].source == "YOUR ANSWER HERE" for gid in written), written
    for gid in solutions:
        src, rel = source[gid].source, released[gid].source
        # the stub replaces each solution region ...
        assert rel.count("raise NotImplementedError()") == src.count(checks.BEGIN_SOLUTION), gid
        assert checks.BEGIN_SOLUTION not in rel
        # ... and everything outside the regions (signatures, docstrings) is kept
        outside = re.sub(r"[ \t]*### BEGIN SOLUTION.*?### END SOLUTION\n?", "", src, flags=re.S)
        for line in outside.splitlines():
            assert line in rel.splitlines(), (gid, line)
    released_text = RELEASED.read_text()
    for fn in FUNCTIONS:  # every function the students write is still declared
        assert f"def {fn}(" in released_text, fn


def test_graded_cells_and_points_survive_the_release():
    source, released = nbformat.read(SOURCE, 4), nbformat.read(RELEASED, 4)
    points = {checks.nbgrader_meta(c)["grade_id"]: checks.nbgrader_meta(c)["points"]
              for c in source.cells if checks.is_graded_test(c)}
    assert points == {checks.nbgrader_meta(c)["grade_id"]: checks.nbgrader_meta(c)["points"]
                      for c in released.cells if checks.is_graded_test(c)}
    assert 20 <= sum(points.values()) <= 30 and len(points) >= 6
    # every graded cell has hidden tests in the source and none in the release
    src_cells = _by_grade_id(source)
    for gid in points:
        assert checks.BEGIN_HIDDEN in src_cells[gid].source, gid
    assert checks.check_released(SOURCE, RELEASED) == []


# ---------------------------------------------------------------- mutation tests
# (solution text, wrong replacement, graded cell that must now fail). Each group is graded
# as one submission; within a group the mutants sit in different functions.
MISTAKES = {
    "output_size_rounds_down": (
        '    if span % s != 0:\n        raise ValueError(f"invalid setting: ({n} + 2*{p} - {f_eff}) / {s} + 1 = '
        '{span / s + 1:.2f} is not an integer")\n', "", "test_conv_output_size"),
    "param_count_ignores_bias_flag": (
        "    return f * f * d_in * k + (k if bias else 0)", "    return f * f * d_in * k + k", "test_conv_param_count"),
    "receptive_field_ignores_strides": ("        jump *= s\n", "", "test_receptive_field"),
    "naive_ignores_stride": (
        "window = xp[n, :, i * stride:i * stride + FH, j * stride:j * stride + FW]",
        "window = xp[n, :, i:i + FH, j:j + FW]", "test_conv2d_naive"),
    "im2col_flips_the_kernel": (
        "    out = cols @ w.reshape(K, C * FH * FW).T", "    out = cols @ w.flip(-2, -1).reshape(K, C * FH * FW).T",
        "test_conv2d_im2col"),
    "backward_overwrites_overlapping_windows": (
        "    grad_x.scatter_add_(2, flat, grad_out.reshape(N, C, OH * OW))",
        "    grad_x.scatter_(2, flat, grad_out.reshape(N, C, OH * OW))", "test_max_pool2d_backward"),
}
SHORTCUTS = {
    "im2col_calls_the_library": (
        "    if b is not None:\n        out = out + b.view(1, K, 1, 1)\n    return out",
        "    return F.conv2d(x, w, b, stride=stride, padding=padding)", "test_no_library_convolution"),
    "average_pooling_takes_the_max": (".mean(dim=(-2, -1))", ".amax(dim=(-2, -1))", "test_pooling_forward"),
}
AUTOGRAD = {
    "backward_by_autograd": (
        "    s = k if s is None else s\n    N, C, H, W = x.shape\n    win",
        "    xr = x.detach().clone().requires_grad_(True)\n    max_pool2d(xr, k, s).backward(grad_out)\n"
        "    return xr.grad\n    s = k if s is None else s\n    N, C, H, W = x.shape\n    win", "test_no_library_convolution"),
}

# round 2: a library call reached through a computed lookup names nothing forbidden; the grader
# sees the operator run while the function answers
LOOKUPS = {
    "conv_by_computed_lookup": (
        "    if b is not None:\n        out = out + b.view(1, K, 1, 1)\n    return out",
        "    import operator\n    return operator.attrgetter('con' + 'v2d')(F)(x, w, b, stride=stride, padding=padding)",
        "test_no_library_convolution"),
}


@pytest.mark.mutation
@pytest.mark.slow
@pytest.mark.xdist_group("a01")
@pytest.mark.parametrize("mutants", [MISTAKES, SHORTCUTS, AUTOGRAD, LOOKUPS], ids=["mistakes", "shortcuts", "autograd", "lookups"])
def test_wrong_solutions_fail_their_graded_cell(tmp_path, mutants):
    from mutation_helpers import assert_each_mutant_caught, run_mutated

    messages = {}
    failed = run_mutated(SOURCE, tmp_path, mutants, messages)
    # the proof that no library convolution ran pays only for functions that work: a mistake in
    # one of them fails it too
    assert_each_mutant_caught(failed, mutants, may_also_fail={"test_no_library_convolution"})
    # the feedback names what failed without the hidden test's source
    if "backward_by_autograd" in mutants:
        assert "max_pool2d_backward(" in messages["test_no_library_convolution"]
        assert "used autograd (backward), which this task forbids" in messages["test_no_library_convolution"]
    if "conv_by_computed_lookup" in mutants:
        assert "conv2d_im2col(" in messages["test_no_library_convolution"]
        assert "used PyTorch's convolution" in messages["test_no_library_convolution"]
