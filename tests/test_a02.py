"""Assignment a02 (building blocks): the release is current and proven, and the hidden
tests reject subtly wrong solutions (each mutant below is a plausible student mistake)."""
import pathlib

import nbformat
import pytest

from autograder import notebook_checks as checks
from autograder import release

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a02-building-blocks"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a02")]


def test_source_is_well_formed():
    assert checks.validate_source(SOURCE) == []
    nb = nbformat.read(SOURCE, as_version=4)
    points = sum(checks.nbgrader_meta(c).get("points", 0) for c in nb.cells if checks.is_graded_test(c))
    assert 20 <= points <= 30


def test_release_is_current_and_proven():
    # generate again, compare with assignments/, run the solution (must pass) and the
    # untouched release (every graded cell must fail)
    release.release_one(ROOT, NAME, check=True, prove=True, echo=lambda *a: None)


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
    "eval_still_drops": (
        "    if not training or p_keep == 1:\n        return x",
        "    if p_keep == 1:\n        return x",
        "test_dropout_eval_and_errors"),
}


def _run_mutated(tmp_path, mutants):
    nb = nbformat.read(SOURCE, as_version=4)
    for name, (old, new, _) in mutants.items():
        hits = [c for c in nb.cells if old in c.source]
        assert len(hits) == 1, f"mutant {name}: solution text not found exactly once"
        hits[0].source = hits[0].source.replace(old, new)
    path = tmp_path / f"{NAME}.ipynb"
    nbformat.write(nb, path)
    executed = release.execute(path, allow_errors=True)
    by_id = {checks.nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(executed.cells)}
    errors = checks.error_cells(executed, by_id.values())
    return {gid: errors[i] for gid, i in by_id.items() if gid}


@pytest.mark.parametrize("mutants", [MUTANTS, LIBRARY_MUTANTS], ids=["mistakes", "library-and-eval"])
def test_wrong_solutions_fail_their_graded_cell(tmp_path, mutants):
    failed = _run_mutated(tmp_path, mutants)
    targets = {cell for (_, _, cell) in mutants.values()}
    for name, (_, _, cell) in mutants.items():
        assert failed[cell], f"mutant {name} passes {cell}"
    # the mutants were chosen to break only their own cell
    for gid, err in failed.items():
        if gid.startswith("test_") and gid not in targets:
            assert not err, f"{gid} failed although no mutant targets it"
