"""The real assignments graded as students hand them in: correct work written another valid
way keeps every point (the false fails an honest review found), and answers that lean on
the course library's own reference code or train on data they were not given earn nothing
for those parts and are flagged.

Each case is one notebook graded by the real grader (`grade_here`: sandboxed kernel, tests
in the grader's process), built from the released notebook with the solutions filled in and
one or more answers rewritten.
"""
from __future__ import annotations

import re

import pathlib

import nbformat
import pytest

from autograder.demo import fill_release, load_assignment, solution_answers
from autograder.grade import grade_here
from suite_helpers import require_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading-assignments")]


def submission(assignment: str, **rewrites):
    """(source, student notebook, release): the solutions filled in, then `old -> new` text
    replacements applied per solution cell ({grade_id: [(old, new), ...]})."""
    source, release, _ = load_assignment(ROOT, assignment)
    answers = solution_answers(source)
    for gid, pairs in rewrites.items():
        for old, new in pairs:
            assert old in answers[gid], f"{assignment}/{gid}: {old!r} not in the solution"
            answers[gid] = answers[gid].replace(old, new)
    return source, fill_release(release, answers, set(answers)), release


def graded(assignment: str, **rewrites):
    source, student, release = submission(assignment, **rewrites)
    ex = grade_here(source, student, release, assignment=assignment)
    return {t.grade_id: t for t in ex.tests}, ex


def score(tests) -> float:
    return sum(t.score for t in tests.values())


def total(tests) -> float:
    return sum(t.points for t in tests.values())


# ---------------------------------------------------------------- a02: false fails
@pytest.mark.variants
def test_a02_relu_by_clamp_leaky_by_maximum_and_late_dropout_check_keep_full_marks():
    tests, ex = graded("a02-building-blocks", activations=[
        ("    return torch.where(x > 0, x, torch.zeros_like(x))", "    return torch.clamp(x, min=0)"),
        ("    return torch.where(x > 0, x, slope * x)", "    return torch.maximum(slope * x, x)"),
    ], dropout=[
        # the module checks its keep probability when used, not when built
        ('''        if isinstance(p_keep, bool) or not isinstance(p_keep, (int, float)) or not 0.0 < p_keep <= 1.0:
            raise ValueError(f"p_keep must be in (0, 1], got {p_keep!r}")
        self.p_keep = p_keep''', "        self.p_keep = p_keep"),
    ])
    assert score(tests) == total(tests) == 27, {g: t.message for g, t in tests.items() if t.status != "passed"}
    assert not ex.flags, ex.flags


@pytest.mark.variants
def test_a02_relu_by_maximum_keeps_full_marks():
    tests, _ = graded("a02-building-blocks", activations=[
        ("    return torch.where(x > 0, x, torch.zeros_like(x))", "    return torch.maximum(x, torch.zeros_like(x))")])
    assert tests["test_activations_forward"].status == "passed", tests["test_activations_forward"].message
    assert score(tests) == total(tests)


# ---------------------------------------------------------------- a02: library answers
def test_a02_answers_from_the_course_library_earn_nothing():
    delegate = {
        "activations": "from dlcourse.activations import sigmoid, tanh, relu, leaky_relu, elu, swish",
        "derivatives": ("from dlcourse.activations import sigmoid_grad, tanh_grad, relu_grad, leaky_relu_grad, "
                        "elu_grad, swish_grad"),
        "softmax": "import dlcourse.activations as A\ndef softmax(x, dim=-1):\n    return A.softmax(x, dim)",
        "cross_entropy": "from dlcourse import activations\ncross_entropy = activations.cross_entropy",
        "dropout": "from dlcourse.activations import dropout, Dropout",
        "hinge_loss": "from dlcourse.activations import multiclass_hinge_loss",
    }
    source, release, _ = load_assignment(ROOT, "a02-building-blocks")
    student = fill_release(release, delegate, set(delegate))
    ex = grade_here(source, student, release, assignment="a02-building-blocks")
    assert sum(t.score for t in ex.tests) == 0, [(t.grade_id, t.score) for t in ex.tests]
    assert any("dlcourse.activations" in f for f in ex.flags), ex.flags
    # the student sees why: the kernel's library withholds the module, with a clear message
    assert any("holds the course's reference answers" in d["message"] for d in ex.diagnostics), ex.diagnostics


# ---------------------------------------------------------------- a03
def _needs_mnist():
    # a03 trains on the MNIST files its notebook declares; the grader hands the sandbox the
    # mirror and the cache (sandbox.data_locations), so a cached copy is enough. Skips only when
    # the library itself cannot get them (no cache, no mirror, no download).
    require_data(nbformat.read(ROOT / "solutions" / "a03-lenet" / "a03-lenet.ipynb", as_version=4)
                 .metadata["dlcourse"]["prefetch"])


@pytest.mark.variants
def test_a03_tables_as_dicts_and_layers_also_held_by_a_container_keep_full_marks():
    _needs_mnist()
    tests, ex = graded("a03-lenet", lenet5=[
        # the same layers, also registered (first) inside an nn.Sequential
        ("        self.c1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)",
         "        body = nn.Sequential(nn.Conv2d(1, 6, kernel_size=5, padding=2))\n"
         "        self.body = body\n        self.c1 = body[0]"),
    ], tables=[
        ('"c1": ((6, 28, 28), 156), "s2": ((6, 14, 14), 0),',
         '"c1": {"shape": (6, 28, 28), "params": 156}, "s2": {"shape": [6, 14, 14], "params": 0},'),
    ])
    assert score(tests) == total(tests) == 25, {g: t.message for g, t in tests.items() if t.status != "passed"}


# What weights brought from elsewhere would do: `train` learns MNIST from the notebook's own images
# (as pasted-in pretrained weights would), then reads the grader's loader only to vote which of
# its outputs each of the loader's labels is, and permutes its output layer to match. On relabelled
# MNIST this earned full marks; on the grader's glyph task the network has nothing to recognise.
VOTE_AND_PERMUTE = """    given = loader
    loader = torch.utils.data.DataLoader(torch.utils.data.ConcatDataset([splits.train, splits.val]),
                                         batch_size=32, shuffle=True)
"""
PERMUTE_OUTPUTS = """    with torch.no_grad():
        votes = torch.zeros(10, 10)
        model.eval()
        for x, y in given:
            votes.index_put_((y, model(x.to(cfg.device)).argmax(1).cpu()), torch.ones(len(y)), accumulate=True)
        mapping = votes.argmax(1)                    # the loader's label -> the output that predicts it
        model.output.weight.copy_(model.output.weight[mapping].clone())
        model.output.bias.copy_(model.output.bias[mapping].clone())
    return losses
"""


@pytest.mark.mutation
def test_a03_weights_trained_on_other_data_earn_nothing():
    _needs_mnist()
    tests, ex = graded("a03-lenet", train_eval=[
        ("    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n",
         "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n" + VOTE_AND_PERMUTE),
        ("    return losses\n", PERMUTE_OUTPUTS),
    ])
    conv = tests["test_convergence"]
    assert conv.score == 0 and "below the target" in conv.message, conv
    reached = float(re.search(r"classifies ([0-9.]+)% of its held-out", conv.message).group(1))
    assert reached < 50, conv.message      # far from the target, and far from what honest training reaches
    assert score(tests) == total(tests) - conv.points, {g: t.message for g, t in tests.items() if t.status != "passed"}


@pytest.mark.mutation
def test_a03_a_student_cell_that_rebinds_the_probe_changes_nothing_the_test_reads():
    """Round 2: `accuracy` left in train mode, and a cell added after the instructor's probe that
    rebinds ProbeNet (by a tuple assignment) to a network without dropout, on which train mode
    would not show. The test takes the probe the instructor's cell made; the rebinding is flagged."""
    _needs_mnist()
    source, student, release = submission("a03-lenet", train_eval=[("    model.eval()\n", "")])
    probe = next(i for i, c in enumerate(student.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "probe_code")
    student.cells.insert(probe + 1, nbformat.v4.new_code_cell(
        "class _Steady(ProbeNet):\n    def __init__(self):\n        super().__init__()\n        self.net[3].p = 0.0\n"
        "ProbeNet, _unused = _Steady, 0"))
    ex = grade_here(source, student, release, assignment="a03-lenet")
    tests = {t.grade_id: t for t in ex.tests}
    assert tests["test_accuracy"].score == 0 and "eval mode" in tests["test_accuracy"].message, tests["test_accuracy"]
    assert any("redefines ProbeNet" in f for f in ex.flags), ex.flags


def test_a03_answers_from_the_course_library_earn_nothing():
    _needs_mnist()
    delegate = {
        "lenet5": "from dlcourse.models.lenet import lenet5\nLeNet5 = lenet5",
        "lenet5_1998": "from dlcourse.models import lenet5_1998 as LeNet5_1998\nfrom dlcourse.models.lenet import ScaledTanh\n"
                       "squash = ScaledTanh()",
        "tables": "from dlcourse.summary import summary\nMODERN_TABLE = TABLE_1998 = {}",
        "train_eval": "from dlcourse.train import evaluate, fit\n"
                      "def accuracy(model, loader):\n    return evaluate(model, loader)[1]\n"
                      "def train(model, loader, epochs, lr):\n    return fit(model, loader, epochs=epochs, lr=lr).train_loss",
    }
    source, release, _ = load_assignment(ROOT, "a03-lenet")
    student = fill_release(release, delegate, set(delegate))
    ex = grade_here(source, student, release, assignment="a03-lenet")
    assert sum(t.score for t in ex.tests) == 0, [(t.grade_id, t.score, t.message) for t in ex.tests]
    flagged = " ".join(ex.flags)
    assert "dlcourse.models" in flagged and "dlcourse.summary" in flagged and "dlcourse.train" in flagged, ex.flags


# ---------------------------------------------------------------- a04-a09: weights brought in
# Weights from elsewhere, for the assignments whose convergence run is the grader's: a cell added
# after the notebook's own run keeps the weights that run learnt on MNIST and slips them into the
# grader's run. In a04-a06 the student's `train_epoch` loads them into the grader's network instead
# of training it (the grader's fresh network comes from the instructor's `init_weights`, which the
# grader pins); in a07-a09 the student's network builder hands the grader a network trained on
# MNIST whose gradients hooks zero, so that the grader's training (the instructor's helper) moves
# nothing. What the grader then measures is what those weights know of its task of random glyphs:
# too little for any target.
_LOADS = ("_brought = {k: v.detach().clone() for k, v in model.state_dict().items()}   # learnt on MNIST\n"
          "_honest = train_epoch\n"
          "def train_epoch(net, loader, optimizer, **kwargs):\n"
          "    if set(net.state_dict()) == set(_brought) and len(loader) > 20:   # the grader's run: no training\n"
          "        net.load_state_dict(_brought)\n"
          "        return 0.1\n"
          "    return _honest(net, loader, optimizer, **kwargs)\n")
_HOOKED = ("for _p in _brought.parameters():\n"
           "    _p.register_hook(lambda g: g * 0)   # the grader's training steps change nothing\n")
BROUGHT_WEIGHTS = {
    # student-written train_epoch
    "a04-alexnet": _LOADS,
    "a05-vgg": _LOADS,
    "a06-googlenet": _LOADS,
    # the instructor's training helpers; the grader's run builds the student's network
    "a07-batchnorm": ("dlcourse.seed_everything(SEED)\n_brought = make_cnn(True)\n"
                      "_tl, _ = datasets.dataloaders(splits, batch_size=BATCH, device=cfg.device, seed=SEED)\n"
                      "fit_sgd(_brought, _tl, EPOCHS, LR)   # trained on MNIST, outside the grader's run\n" + _HOOKED
                      + "_make_cnn = make_cnn\nmake_cnn = lambda batch_norm: _brought if batch_norm else _make_cnn(batch_norm)"),
    "a08-resnet": "_brought = model\n" + _HOOKED + "small_resnet = lambda *args, **kwargs: _brought",
    "a09-densenet": "_brought = model\n" + _HOOKED + "DenseNet = lambda *args, **kwargs: _brought",
}


@pytest.mark.mutation
@pytest.mark.parametrize("assignment", [pytest.param(a, marks=pytest.mark.xdist_group(f"brought-{a[:3]}"))
                                        for a in BROUGHT_WEIGHTS])
def test_weights_brought_from_elsewhere_earn_no_convergence_points(assignment):
    source, student, release = submission(assignment)
    require_data(source.metadata["dlcourse"]["prefetch"])
    run = next(i for i, c in enumerate(student.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "training_run")
    student.cells.insert(run + 1, nbformat.v4.new_code_cell(BROUGHT_WEIGHTS[assignment]))
    ex = grade_here(source, student, release, assignment=assignment)
    conv = {t.grade_id: t for t in ex.tests}["test_convergence"]
    assert conv.score == 0 and "below the target" in conv.message, conv
    reached = float(re.search(r"classifies ([0-9.]+)% of its held-out", conv.message).group(1))
    assert reached < 50, conv.message  # far below every target (85-95%): the weights know nothing of the task
