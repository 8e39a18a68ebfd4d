"""Which modules of the course library answer which assignment, and withholding them.

The book and the full profile need the reference code (`dlcourse.conv`, the models, the
training loop); an assignment asks students to write the same things themselves. While
an assignment is graded, the sandboxed kernel gets a copy of the library in which the
modules listed here for that assignment are replaced by stubs that raise ImportError with
a clear message (the grader builds that copy; see `autograder/sandbox.py`). The grader
itself, the book and every other notebook keep the whole library.

In a student's own notebook `dlcourse.setup(..., assignment="a03-lenet")` withholds the
same modules in that kernel, so that an answer which imports one fails already in the
visible tests, with the same message, rather than only when graded. (That local step is a
courtesy to honest students; the grader does not rely on it.)
"""
from __future__ import annotations

import importlib.abc
import os
import sys
import types

# assignment -> modules that hold its answers
ANSWERS: dict[str, tuple[str, ...]] = {
    "a01-convolution": ("dlcourse.conv",),
    "a02-building-blocks": ("dlcourse.activations",),
    "a03-lenet": ("dlcourse.models.lenet", "dlcourse.summary", "dlcourse.train"),
    # vgg and googlenet import alexnet's LRN: withholding alexnet makes them unimportable too
    "a04-alexnet": ("dlcourse.models.alexnet", "dlcourse.train"),
    "a05-vgg": ("dlcourse.models.vgg", "dlcourse.summary", "dlcourse.conv", "dlcourse.train"),
    "a06-googlenet": ("dlcourse.models.googlenet", "dlcourse.flops", "dlcourse.conv", "dlcourse.train"),
    "a07-batchnorm": ("dlcourse.norm",),
    "a08-resnet": ("dlcourse.models.resnet",),
    "a09-densenet": ("dlcourse.models.densenet",),
    # the cells and layers, the text pipeline (clipping, training) and perplexity
    "a10-rnn": ("dlcourse.models.rnn", "dlcourse.text", "dlcourse.metrics"),
    # box operations, the detection metrics and the detectors (whose module imports dlcourse.boxes)
    "a11-detection": ("dlcourse.boxes", "dlcourse.metrics", "dlcourse.models.detection"),
    # upsampling, the segmentation metrics and the segmentation models (which import dlcourse.upsample)
    "a12-segmentation": ("dlcourse.upsample", "dlcourse.metrics", "dlcourse.models.segmentation"),
    # the players' losses, the training step, mode coverage, the receptive field (dlcourse.gan) and the
    # networks (DCGAN, PatchGAN, the ring's players)
    "a13-gans": ("dlcourse.gan", "dlcourse.models.gan"),
}

# The grader's own process sets this so that its reference code stays importable.
TRUSTED_ENV = "DLCOURSE_GRADER_PROCESS"


def withheld(assignment: str) -> tuple[str, ...]:
    """The modules withheld while `assignment` is worked on or graded (empty if none)."""
    return ANSWERS.get(assignment, ())


def message(module: str, assignment: str) -> str:
    return (f"{module} holds the course's reference answers for assignment {assignment}, so it is not "
            f"available while you work on it (or while it is graded). Write this part yourself; "
            f"the book's chapters use {module} and you can read them after the deadline.")


class _Withhold(importlib.abc.MetaPathFinder):
    def __init__(self, modules: tuple[str, ...], assignment: str):
        self.modules = set(modules)
        self.assignment = assignment

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.modules:
            raise ImportError(message(fullname, self.assignment), name=fullname)
        return None


def block(assignment: str) -> tuple[str, ...]:
    """Withhold the answer modules of `assignment` in this process; returns their names.

    Already-imported copies are dropped from `sys.modules` and from their parent package,
    so `from dlcourse import conv` fails too. Does nothing in the grader's own process.
    """
    modules = withheld(assignment)
    if not modules or os.environ.get(TRUSTED_ENV) == "1":
        return ()
    if not any(isinstance(f, _Withhold) and f.assignment == assignment for f in sys.meta_path):
        sys.meta_path.insert(0, _Withhold(modules, assignment))
    for name in modules:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        # vars(), not hasattr(): a package with a lazy __getattr__ (dlcourse.models) would
        # import the module just withheld to answer hasattr, raising ImportError here.
        if parent in sys.modules and isinstance(vars(sys.modules[parent]).get(child), types.ModuleType):
            delattr(sys.modules[parent], child)
    return modules


def stub_source(module: str, assignment: str) -> str:
    """The text of the stub that replaces `module` in the grader's copy of the library."""
    return f'"""Withheld while {assignment} is graded."""\nraise ImportError({message(module, assignment)!r})\n'
