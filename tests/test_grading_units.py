"""Small parts of the grader, without a kernel: where cells run, what the source review
flags, the static checks tests use, student ids, CSV cells, and the withheld library."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.execute import bound_names, cell_roles, student_names
from autograder.export import cell_text
from autograder.grade import safe_student_id
from autograder.restore import GradedCell
from autograder.review import review
from autograder.sandbox import withheld_library
from autograder.testkit import count_params, forbidden_uses, function_source, map_state_dict
from dlcourse.answers import ANSWERS

ROOT = Path(__file__).resolve().parents[1]


def _nb(cells):
    return nbformat.v4.new_notebook(cells=cells)


def _meta(gid, **kw):
    return {"nbgrader": {"grade_id": gid, "schema_version": 3, **kw}}


def test_cells_run_where_the_design_says():
    v4 = nbformat.v4
    nb = _nb([
        v4.new_code_cell("!pip install x", metadata={"tags": ["setup"]}),
        v4.new_code_cell("SEED = 0", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("import torch\nTARGET = 0.9"),                                    # instructor: both
        v4.new_code_cell("def f(x):\n    return x\nclass M: pass", metadata=_meta("f", solution=True)),
        v4.new_code_cell("loader = make()", metadata={"tags": ["kernel-only"]}),
        v4.new_code_cell("model = M()\nlosses = f(loader)"),                                # uses student names
        v4.new_code_cell("assert f(1) == 1", metadata=_meta("test_f", grade=True, points=1)),
        v4.new_markdown_cell("text"),
    ])
    students = student_names(nb)
    assert students == {"f", "M"}
    assert cell_roles(nb, [GradedCell("test_f", 1, 6)], students) == [
        "kernel", "both", "both", "student", "kernel", "kernel", "test", "markdown"]


def test_bound_names_sees_every_top_level_binding():
    src = "import numpy as np\nfrom a import b\nx, (y, *z) = 1, (2, 3)\nfor i in []: pass\nwith o as w: pass\n" \
          "if True:\n    def g(): pass\nclass C: pass\nn: int = 1\nn += 1"
    assert bound_names(src) == {"np", "b", "x", "y", "z", "i", "w", "g", "C", "n"}


def test_review_flags_tricks_and_leaves_honest_code_alone():
    honest = {"relu": "import torch\ndef relu(x):\n    return torch.clamp(x, min=0)\n",
              "net": "class Net(torch.nn.Module):\n    def forward(self, x):\n        return self.fc(x).relu()\n"}
    assert review(honest) == []
    tricks = {
        "a": "import torch\ntorch.allclose = lambda *a, **k: True",
        "b": "import sys\nf = sys._getframe(1).f_locals",
        "c": "class Yes(int):\n    def __eq__(self, o):\n        return True",
        "d": "get_ipython().input_transformers_post.append(lambda l: [])",
        "e": "from dlcourse import activations",
        "f": "import threading",
        "g": "torch = None",
        "h": "TARGET = 0.0",
        "i": "class M(torch.nn.Module):\n    def state_dict(self):\n        return {}",
    }
    flags = review(tricks, withheld=("dlcourse.activations",), instructor_names={"TARGET"})
    for label in tricks:
        assert any(f.startswith(f"{label}:") for f in flags), (label, flags)


def test_forbidden_uses_finds_library_calls_not_own_names():
    sources = {
        "pool": "def max_pool2d(x, k):\n    return x.unfold(2, k, k).unfold(3, k, k).amax((-2, -1))\n",
        "conv": "import torch.nn.functional as G\ndef conv(x, w):\n    return G.conv2d(x, w)\n",
        "sneaky": "from torch.nn.functional import unfold\nf = getattr(torch, 'con' + 'v2d')\n",
        "ops": "y = torch.ops.aten.convolution\nmodel.eval()\n",
    }
    found = forbidden_uses(sources, names={"conv2d", "max_pool2d", "convolution"}, module_attrs={"unfold"})
    text = " | ".join(found)
    assert "pool" not in text                        # its own max_pool2d and Tensor.unfold are fine
    assert "conv, line 3: G.conv2d" in text
    assert "from torch.nn.functional import unfold" in text and "getattr with a computed name" in text
    assert "torch.ops" in text and "eval" not in text  # model.eval() is not the builtin eval
    whole = forbidden_uses({"a": "import torch.nn.functional as F\ny = F.pad(x, (1, 1))"}, names=set(),
                           whole_modules={"F", "functional"})
    assert whole == ["a, line 2: F.pad"]


def test_function_source_and_state_dict_helpers():
    import torch

    src = {"c": "x = 1\ndef f(a):\n    return a\n\ndef g():\n    pass\n"}
    assert function_source(src, "f") == "def f(a):\n    return a"
    assert function_source(src, "h") == ""
    sd = {"c1.weight": torch.zeros(6, 1, 5, 5), "c1.bias": torch.zeros(6), "body.0.weight": torch.zeros(6, 1, 5, 5),
          "bn.running_mean": torch.zeros(6), "bn.num_batches_tracked": torch.tensor(0)}
    assert map_state_dict(sd, {"c1": "features.C1"}) == {"features.C1.weight": sd["c1.weight"], "features.C1.bias": sd["c1.bias"]}
    assert count_params({k: v for k, v in sd.items() if not k.startswith("body")}) == 156


@pytest.mark.parametrize("raw, safe", [("alice", "alice"), ("bob.smith@uni.edu", "bob.smith@uni.edu")])
def test_safe_ids_keep_ordinary_names(raw, safe):
    assert safe_student_id(raw) == safe


@pytest.mark.parametrize("raw", ["..", ".", "=HYPERLINK(\"x\")", "a/b", "-rf", "é", "", " "])
def test_unsafe_names_become_safe_and_distinct(raw):
    sid = safe_student_id(raw)
    assert sid and sid not in (".", "..") and not sid.startswith((".", "-")) and "/" not in sid
    assert all(ch.isalnum() or ch in "_.@+-" for ch in sid) and sid.isascii()
    assert safe_student_id(raw + "x") != sid


def test_csv_cells_are_never_formulas():
    assert cell_text("=1+1") == "'=1+1" and cell_text("@SUM(A1)") == "'@SUM(A1)" and cell_text("alice") == "alice"


def test_withheld_library_has_stubs_where_the_answers_were(tmp_path):
    lib = withheld_library("a03-lenet", tmp_path)
    assert (lib / "dlcourse" / "runtime.py").read_text() == (ROOT / "dlcourse" / "runtime.py").read_text()
    for module in ANSWERS["a03-lenet"]:
        stub = lib / Path(*module.split(".")).with_suffix(".py")
        assert "raise ImportError" in stub.read_text() and "a03-lenet" in stub.read_text()
    assert withheld_library("a03-lenet", tmp_path) == lib  # built once
    env = dict(os.environ, PYTHONPATH=str(lib))
    env.pop("DLCOURSE_GRADER_PROCESS", None)
    out = subprocess.run([sys.executable, "-c", "import dlcourse.runtime\nimport dlcourse.train"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)  # (not the checkout: '' is on sys.path)
    assert out.returncode != 0 and "holds the course's reference answers for assignment a03-lenet" in out.stderr


def test_setup_withholds_the_answers_in_a_students_kernel_but_not_in_the_grader():
    code = ("import dlcourse\nfrom dlcourse import conv\n"
            "dlcourse.setup('fast', 'cpu', 0, assignment='a01-convolution')\n"
            "try:\n    from dlcourse import conv\nexcept ImportError as e:\n    print('BLOCKED', e)\n"
            "else:\n    print('AVAILABLE')\n")
    env = {k: v for k, v in os.environ.items() if k != "DLCOURSE_GRADER_PROCESS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "BLOCKED dlcourse.conv holds the course's reference answers" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-c", code], env={**env, "DLCOURSE_GRADER_PROCESS": "1"},
                         capture_output=True, text=True)
    assert "AVAILABLE" in out.stdout, out.stderr
