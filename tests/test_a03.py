"""Assignment a03 (LeNet): the release is current and proven, and the hidden tests reject
subtly wrong solutions (each mutant below is a plausible student mistake).

Convergence threshold (fast profile: 6,000 training images, 3 epochs, batch 32, Adam 2e-3,
one CPU thread): the reference solution reached 0.9705, 0.9615, 0.9725, 0.9630, 0.9620
validation accuracy with SEED = 0..4 (min 0.9615, mean 0.9659); the target is 0.95, a margin
of more than one point below the worst seed.
The grader's run (SEED 0, classes renamed by derangement(10, s), accuracy on the 2,000 held-out
images) for fifteen secret seeds s (1..5, 101, 202, ..., 1010): 0.9610, 0.9700, 0.9670, 0.9645,
0.9600, 0.9620, 0.9655, 0.9645, 0.9705, 0.9630, 0.9580, 0.9630, 0.9645, 0.9650, 0.9625 (worst 0.9580,
mean 0.9641, sd 0.0034; 1.5 to 2.4 s of training each): the target sits four standard deviations
below the mean and 0.8 points below the worst run.

Grader's run on its own task (round 2: `autograder.glyphs`, ten classes of random glyphs drawn from
the secret seed, as many training examples as the notebook's run, 2,000 held-out), reference
solution, `bench/convergence/run.py`, secret seeds 101, 202, ..., 1515 (101-606 first; 707-1515 added on 2026-12-07):
    0.9875, 0.9765, 0.9875, 0.9735, 0.9840, 0.9570, 0.9750, 0.9935,
    0.9785, 0.9710, 0.9740, 0.9810, 0.9880, 0.9790, 0.9880
worst 0.9570, mean 0.9796, sd 0.0091: _GLYPH_TARGET = 0.90 (5.7 points below the worst run). Weights trained elsewhere (on MNIST, matched to the
task's labels by voting) reach about a third of it (tests/test_glyphs.py).
"""
import pathlib

import pytest

from mutation_helpers import assert_each_mutant_caught, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a03-lenet"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a03")]


# (solution text, wrong replacement, graded cell that must now fail). Each group runs as one
# notebook; within a group the mutants touch different cells and target different tests.
STRUCTURE_MUTANTS = {
    "c1_without_bias": (
        "        self.c1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)\n        self.s2 = nn.MaxPool2d(2, 2)",
        "        self.c1 = nn.Conv2d(1, 6, kernel_size=5, padding=2, bias=False)\n        self.s2 = nn.MaxPool2d(2, 2)",
        "test_lenet5_structure"),
    "accuracy_in_train_mode": (
        "    model.eval()\n",
        "",
        "test_accuracy"),
    "subsampling_is_plain_average": (
        "        s = F.avg_pool2d(x, 2) * 4\n",
        "        s = F.avg_pool2d(x, 2)\n",
        "test_lenet1998_layers"),
    "slide_output_count_without_bias": (
        '"f6": ((84,), 10_164), "output": ((10,), 850),\n}\nTABLE_1998',
        '"f6": ((84,), 10_164), "output": ((10,), 840),\n}\nTABLE_1998',
        "test_tables"),
}
POOLING_MUTANTS = {
    "average_instead_of_max_pooling": (
        "        self.s2 = nn.MaxPool2d(2, 2)\n",
        "        self.s2 = nn.AvgPool2d(2, 2)\n",
        "test_lenet5_agreement"),
    "dense_c3": (
        "        self.c3 = SparseC3()\n",
        "        self.c3 = nn.Conv2d(6, 16, kernel_size=5)\n",
        "test_lenet1998_counts"),
}
TRAINING_MUTANTS = {
    "gradients_never_zeroed": (
        "            optimizer.zero_grad()\n",
        "",
        "test_convergence", "of its held-out examples correctly, below the target"),
}
# besides its target a wrong model may also train worse (convergence) or no longer load into
# the reference model (agreement: a missing bias is a missing state-dict key); no other cell
MAY_ALSO_FAIL = {"test_convergence", "test_lenet5_agreement"}


@pytest.mark.parametrize("mutants", [STRUCTURE_MUTANTS, POOLING_MUTANTS, TRAINING_MUTANTS],
                         ids=["structure-eval-tables", "pooling-and-c3", "training"])
@pytest.mark.mutation
def test_wrong_solutions_fail_their_graded_cell(tmp_path, mutants):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, mutants, messages)
    assert_each_mutant_caught(failed, mutants, MAY_ALSO_FAIL, messages)
