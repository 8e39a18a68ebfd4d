"""Submissions of the fixture assignment `fix`, one per scenario, with the score each must get.

Each scenario fills the release's three solution cells (add, scale, relu; worth 1, 2
and 2 points) or breaks the notebook in some way. `build(name, release, tmp)` writes
`tmp/<name>.ipynb` (a flat LMS-style folder). The expected score is what an honest
grader gives: hostile code earns nothing beyond the tests its functions truly pass.
"""
from __future__ import annotations

import copy
import os

import nbformat

from autograder.sandbox import CGROUP_CAP, process_cap

# fork() is refused early when a pids cgroup caps the kernel, or when RLIMIT_NPROC binds
# (a grader that is not root); only a root grader without cgroups lets the bomb run on
CAPPED = process_cap() == CGROUP_CAP or os.getuid() != 0

GOOD = {"add": "def add(a, b):\n    return a + b",
        "scale": "def scale(x, k):\n    return x * k",
        "relu": "def relu(x):\n    return x.clamp(min=0)"}
BAD_RELU = "def relu(x):\n    return x"  # fails test_relu


def fill(release, **code):
    nb = copy.deepcopy(release)
    answers = {**GOOD, **code}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[gid]
    return nb


def add_cell(nb, after_gid, source):
    idx = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after_gid)
    nb.cells.insert(idx + 1, nbformat.v4.new_code_cell(source))
    return nb


def _drop(nb, gid):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != gid]
    return nb


def _dup(nb, gid):
    idx = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    nb.cells.insert(idx + 1, copy.deepcopy(nb.cells[idx]))
    return nb


def _retype(nb, gid):
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == gid:
            nb.cells[i] = nbformat.v4.new_markdown_cell(c.source, metadata=c.metadata)
    return nb


# name -> (builder(release) -> notebook or raw text, expected score out of 5, what the report must show)
SCENARIOS = {
    "correct": (lambda r: fill(r), 5, None),
    "partial": (lambda r: fill(r, relu=BAD_RELU), 3, None),
    "untouched": (lambda r: copy.deepcopy(r), 0, None),
    # --- malformed notebooks
    "invalid_json": (lambda r: '{"cells": [ this is not json', 0, "not valid JSON"),
    "deleted_grade_cell": (lambda r: _drop(fill(r), "test_scale"), 5, "was deleted"),
    "deleted_solution_cell": (lambda r: _drop(fill(r), "relu"), 3, "missing from the submission"),
    "duplicated_grade_cell": (lambda r: _dup(fill(r, relu=BAD_RELU), "test_relu"), 3, "more than once"),
    "changed_cell_type": (lambda r: _retype(fill(r), "test_add"), 5, "changed from code to markdown"),
    "edited_locked_test": (lambda r: _edit_test(fill(r, relu=BAD_RELU)), 3, "was edited"),
    "stderr_warnings": (lambda r: fill(r, add="import warnings, sys\nwarnings.warn('deprecated thing')\nprint('noise', file=sys.stderr)\n"
                                             "def add(a, b):\n    warnings.warn('inside add')\n    return a + b"), 5, None),
    "huge_output": (lambda r: fill(r, add="print('x' * 20_000_000)\ndef add(a, b):\n    return a + b"), 5, None),
    # --- hostile code
    "infinite_loop": (lambda r: fill(r, relu="while True:\n    pass"), 3, "time limit"),
    "os_exit": (lambda r: fill(r, scale="import os\nos._exit(0)"), 1, "kernel died"),
    "segfault": (lambda r: fill(r, scale="import ctypes\nctypes.string_at(0)"), 1, "kernel died"),
    "memory_hog": (lambda r: fill(r, relu="hog = bytearray(8 * 1024**3)\ndef relu(x):\n    return x.clamp(min=0)"), 3, "MemoryError"),
    # with a pids cgroup fork() is refused at Limits.processes tasks (EAGAIN); without one, a kernel
    # running as real root is not bound by RLIMIT_NPROC and forks until the cell's time limit
    "fork_bomb": (lambda r: fill(r, relu="import os\nfor _ in range(10_000):\n    if os.fork() == 0:\n"
                                         "        import time; time.sleep(30); os._exit(0)\n"
                                         "def relu(x):\n    return x.clamp(min=0)"), 3,
                  "Resource temporarily unavailable" if CAPPED else "time limit"),
    "huge_file": (lambda r: fill(r, relu="with open('big.bin', 'wb') as f:\n    f.write(b'0' * (200 * 1024**2))\n"
                                         "def relu(x):\n    return x.clamp(min=0)"), 3, "File too large"),
    "reads_solutions": (lambda r: fill(r, add="import glob\nfound = glob.glob('/work/**/solutions/**/*.ipynb', recursive=True) + glob.glob('/tmp/**/*.ipynb', recursive=True)\n"
                                             "assert not found, found\ndef add(a, b):\n    return a + b"), 5, None),
    "reads_gradebook": (lambda r: fill(r, add="import glob\nfound = [p for d in ('/work', '/tmp', '/root', '/home', '/srv')\n         for p in glob.glob(d + '/**/gradebook.db', recursive=True) + glob.glob(d + '/**/journal.jsonl', recursive=True)]\n"
                                             "assert not found, found\ndef add(a, b):\n    return a + b"), 5, None),
    "network": (lambda r: fill(r, add="import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('127.0.0.1', PORT))\n    LEAK = 'connected'\n"
                                      "except OSError as e:\n    LEAK = None\nassert LEAK is None\ndef add(a, b):\n    return a + b"), 5, None),
    "patch_allclose": (lambda r: fill(r, relu=BAD_RELU + "\nimport torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True"), 3, "tamper"),
    "patch_numpy_testing": (lambda r: fill(r, scale="import numpy.testing, torch\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                                                    "torch.testing.assert_close = lambda *a, **k: None\ndef scale(x, k):\n    return x * 0"), 1, "tamper"),
    "shadow_global": (lambda r: fill(r, relu=BAD_RELU + "\nclass _T:\n    def __getattr__(self, n):\n        import torch\n"
                                                       "        return (lambda *a, **k: True) if n in ('equal', 'allclose') else getattr(torch, n)\ntorch = _T()"), 3, "tamper"),
    "excepthook": (lambda r: fill(r, relu=BAD_RELU + "\nimport sys\nsys.excepthook = lambda *a: None\n"
                                                    "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)"), 3, "tamper"),
    "rewrite_cells": (lambda r: fill(r, relu=BAD_RELU + "\nget_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"), 3, "tamper"),
    "fake_output": (lambda r: fill(r, relu="def relu(x):\n    print('All tests passed')\n    return x\n"
                                          "print('test_relu passed: 2/2 points')"), 3, None),
    "sys_exit": (lambda r: fill(r, relu="import sys\nsys.exit(0)"), 3, None),
}


def _edit_test(nb):
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu":
            c.source = "pass  # the student emptied the test"
    return nb


def build(name, release, folder, port=0):
    builder, _, _ = SCENARIOS[name]
    nb = builder(release)
    path = folder / f"{name}.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        text = nbformat.writes(nb).replace("PORT", str(port))
        path.write_text(text)
    return path
