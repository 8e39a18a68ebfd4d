"""Assignment a09 (DenseNet): the release is current and proven, and the hidden tests reject
subtly wrong solutions (each mutant below is a plausible student mistake).

Convergence threshold (fast profile: 4,000 training images, 3 epochs, batch 64, Adam 3e-3 with
cosine decay to 0, the small DenseNet of 46,366 parameters, one CPU thread), measured with the
reference solution for SEED = 0..4 (the grader's run: classes renamed by derangement(10, 1000 +
SEED), accuracy of the trained weights in the reference network on 2,000 held-out images):

    SEED                         0       1       2       3       4
    notebook: val accuracy       0.9660  0.9715  0.9690  0.9785  0.9695
    grader: held-out accuracy    0.9745  0.9655  0.9675  0.9770  0.9710

Worst seed 0.9655 (grader) and 0.9660 (notebook) against TARGET = 0.93: a margin of 3.55 points.
Ten more grader runs (SEED 0, secret seeds 101, 202, ..., 1010; 9.6 to 11.3 s of training each):
0.9755, 0.9715, 0.9780, 0.9745, 0.9745, 0.9790, 0.9705, 0.9725, 0.9770, 0.9765 (worst 0.9705, mean
0.9750, sd 0.0028). Over all fifteen grader runs the worst is 0.9655, 3.55 points above TARGET.
Offline stand-in (scikit-learn's digits, 1,438 training images; the student's own run only, the
grader always uses MNIST): with the fast profile's 3 epochs only 0.8273 to 0.8997, below the MNIST
target on every seed; with the 10 epochs the notebook sets for it 0.9944, 0.9972, 0.9889, 0.9916,
1.0 for SEED = 0..4 (mean 0.9944, sd 0.0044): target 0.95, 3.9 points below the worst seed.

Grader's run on its own task (round 2: `autograder.glyphs`, ten classes of random glyphs drawn from
the secret seed, as many training examples as the notebook's run, 2,000 held-out), reference
solution, `bench/convergence/run.py`, secret seeds 101, 202, ..., 1515 (101-606 first; 707-1515 added on 2026-12-07):
    0.9995, 0.9940, 0.9940, 0.9990, 0.9985, 0.9950, 0.9985, 0.9995,
    0.9990, 0.9965, 0.9955, 0.9975, 0.9985, 0.9980, 0.9985
worst 0.9940, mean 0.9974, sd 0.0019: _GLYPH_TARGET = 0.95 (4.4 points below the worst run). Weights trained elsewhere (on MNIST, matched to the
task's labels by voting) reach about a third of it (tests/test_glyphs.py).
"""
import pathlib

import pytest

from mutation_helpers import grade_group, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a09-densenet"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a09")]


# the data and the given training helpers live in the kernel (the grader calls fit_adam there)
WELL_FORMED = dict(kernel_only=("data_code", "train_helpers"))  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail). Each group runs as one
# notebook; within a group the mutants target different tests. A wrong layer, block or transition
# also breaks the networks built from it (test_densenet121, test_convergence).
INPLACE_ROUND = {
    # a ReLU applied in place to the layer's shared input (and before the batch norm): the grader's
    # copy of the input follows the kernel's, so the visible check sees the change
    "relu_in_place_on_input": (
        "        out = self.conv1(F.relu(self.norm1(x)))",
        "        out = self.conv1(F.relu(self.norm1(x.relu_())))",
        "test_dense_layer", "must not modify its input"),
    "round_not_floor": (
        "    return int(channels * compression)", "    return round(channels * compression)", "test_bookkeeping"),
}
ORDER_POOLING = {
    "cat_new_first": (
        "            features.append(layer(torch.cat(features, dim=1)))",
        "            features.insert(0, layer(torch.cat(features, dim=1)))",
        "test_dense_block"),
    "max_pool_transition": (
        "        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2, stride=2)",
        "        return F.max_pool2d(self.conv(F.relu(self.norm(x))), 2, stride=2)",
        "test_transition", "each part of your Transition computes what it should from its own input"),
}
# round 2: compression rounded to nearest inside DenseNet alone (the bookkeeping function floors); the
# widths of DenseNet-121 are even, so only an odd width shows it
ROUND_IN_NET = {
    "round_inside_densenet": (
        "                out = int(channels * compression)\n",
        "                out = round(channels * compression)\n",
        "test_densenet121"),
}
FINAL_RELU_CONNECTIONS = {
    "no_final_relu": (
        "        x = F.relu(self.norm_final(x))", "        x = self.norm_final(x)", "test_densenet121",
        "each part of your DenseNet computes what it should from its own input"),
    "connections_without_input": (   # counts l - 1 links into layer l, forgetting x_0
        "    return L * (L + 1) // 2", "    return L * (L - 1) // 2", "test_bookkeeping"),
}
STEM_INPUTS = {
    "stem_4k": (   # deck 000's statement: the first convolution outputs 4k maps
        "        self.norm0 = nn.BatchNorm2d(num_init_features)\n        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()\n"
        "        channels = num_init_features\n",
        "        num_init_features = 4 * growth_rate\n"
        "        self.conv0 = nn.Conv2d(in_channels, num_init_features, self.conv0.kernel_size, self.conv0.stride,\n"
        "                               self.conv0.padding, bias=False)\n"
        "        self.norm0 = nn.BatchNorm2d(num_init_features)\n        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()\n"
        "        channels = num_init_features\n",
        "test_densenet121"),
    "layer_inputs_shifted": (
        "    return [k0 + i * k for i in range(L)]", "    return [k0 + (i + 1) * k for i in range(L)]", "test_bookkeeping"),
}
# every assignment with a convergence test has a mutant aimed at it, alone in its group so that its
# failure is its own: weights initialised to zero (the structure and the agreement tests, which load
# random weights, cannot see it; no training can move such a network)
ZERO_INIT = {
    "weights_initialised_to_zero": (
        '        self.classifier = nn.Linear(channels, num_classes)\n',
        "        self.classifier = nn.Linear(channels, num_classes)\n        net = self\n        for m in net.modules():   # every weight zero: nothing can ever move (the ReLUs' gradient at 0 is 0)\n            if isinstance(m, (nn.Conv2d, nn.Linear)):\n                nn.init.zeros_(m.weight)\n",
        "test_convergence", "below the target"),
}
GROUPS = {
    "zero-init": (ZERO_INIT, set()),
    "inplace-round": (INPLACE_ROUND, {"test_dense_block", "test_densenet121", "test_convergence"}),
    "order-pooling": (ORDER_POOLING, {"test_densenet121", "test_convergence"}),
    "final-relu-connections": (FINAL_RELU_CONNECTIONS, {"test_convergence"}),
    "round-in-net": (ROUND_IN_NET, set()),
    "stem-inputs": (STEM_INPUTS, {"test_convergence"}),
}


@pytest.mark.mutation
@pytest.mark.parametrize("group", list(GROUPS))
def test_wrong_solutions_fail_their_graded_cell(tmp_path, group):
    mutants = GROUPS[group][0]
    messages = grade_group(SOURCE, tmp_path, GROUPS[group])
    if "cat_new_first" in mutants:   # inside DenseNet, the message names the first block that differs
        assert "the first part of your DenseNet whose output differs is blocks.0:" in messages["test_densenet121"], \
            messages["test_densenet121"]


# Correct answers written other valid ways keep full marks: nn.ReLU modules (in place on the batch
# norms' outputs), a block that grows one tensor, math.floor, a sum for the connections, and a
# classifier that is an nn.Sequential of pooling, flattening and the linear layer.
OTHER_WAYS = {
    "layer": (
        """        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out)))""",
        """        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        h = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(h)))""",
        None),
    "block": (
        """        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)""",
        """        out = x
        for layer in self.layers:
            out = torch.cat([out, layer(out)], 1)
        return out""",
        None),
    # pooling before the 1x1 convolution: the same function with a quarter of the multiply-adds
    # (round 2: it lost 5 points to float32 rounding in the gradient check)
    "transition": (
        """        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2, stride=2)""",
        """        return self.conv(nn.functional.avg_pool2d(torch.relu(self.norm(x)), kernel_size=2))""",
        None),
    "floor": (
        """    return int(channels * compression)""",
        """    import math
    return math.floor(channels * compression)""",
        None),
    "links": (
        """    return L * (L + 1) // 2""",
        """    return sum(range(1, L + 1))""",
        None),
    "net": (
        """        self.norm_final = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, num_classes)""",
        """        self.norm_final = nn.BatchNorm2d(channels)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))""",
        None),
    "net_forward": (
        """        x = F.relu(self.norm_final(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))""",
        """        return self.classifier(F.relu(self.norm_final(x)))""",
        None),
}


@pytest.mark.variants
def test_other_valid_answers_keep_full_marks(tmp_path):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, OTHER_WAYS, messages, train=True)
    assert not any(failed.values()), {gid: messages[gid] for gid, err in failed.items() if err}
