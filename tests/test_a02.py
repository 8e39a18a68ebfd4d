"""Assignment a02 (building blocks): the release is current and proven, and the hidden
tests reject subtly wrong solutions (each mutant below is a plausible student mistake)."""
import pathlib

import pytest

from mutation_helpers import assert_each_mutant_caught, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a02-building-blocks"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a02")]


WELL_FORMED = dict(points=27)  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail)
MUTANTS = {
    "naive_sigmoid": (
        "    pos = 1.0 / (1.0 + torch.exp(-torch.clamp(x, min=0.0)))\n"
        "    e = torch.exp(torch.clamp(x, max=0.0))\n"
        "    return torch.where(x >= 0, pos, e / (1.0 + e))",
        "    return 1.0 / (1.0 + torch.exp(-x))",
        "test_activations_forward"),
    "non_inverted_dropout": (
        "    return x * keep.to(x.dtype) / p_keep",
        "    return x * keep.to(x.dtype)",
        "test_dropout_training"),
    "naive_cross_entropy": (
        "    m = logits.max(dim=1, keepdim=True).values  # (N, 1)",
        "    m = torch.zeros_like(logits[:, :1])  # no max shift: overflows",
        "test_cross_entropy"),
    "hinge_counts_correct_class": (
        "    margins = margins.scatter(1, target.unsqueeze(1), 0.0)  # drop the j = y term",
        "",
        "test_hinge_loss"),
    "relu_grad_one_at_zero": (
        "    return (x > 0).to(x.dtype)",
        "    return (x >= 0).to(x.dtype)",
        "test_activation_derivatives"),
}
LIBRARY_MUTANTS = {
    "library_cross_entropy": (
        "    return (lse - picked).mean()",
        "    return F.cross_entropy(logits, target)",
        "test_cross_entropy"),
    "library_softmax": (
        "    return e / e.sum(dim=dim, keepdim=True)",
        "    return torch.softmax(x, dim=dim)",
        "test_softmax"),
    # round 2: the grader's copy of the input could not show an in-place change; the kernel now
    # reports what a call did to its tensor arguments
    "dropout_in_place": (
        "    return x * keep.to(x.dtype) / p_keep",
        "    return x.mul_(keep.to(x.dtype)).div_(p_keep)",
        "test_dropout_training"),
    "eval_still_drops": (
        "    if not training or p_keep == 1:\n        return x",
        "    if p_keep == 1:\n        return x",
        "test_dropout_eval_and_errors"),
}


@pytest.mark.mutation
@pytest.mark.parametrize("mutants", [MUTANTS, LIBRARY_MUTANTS], ids=["mistakes", "library-and-eval"])
def test_wrong_solutions_fail_their_graded_cell(tmp_path, mutants):
    failed = run_mutated(SOURCE, tmp_path, mutants)
    assert_each_mutant_caught(failed, mutants)
