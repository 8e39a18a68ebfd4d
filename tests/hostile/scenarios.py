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

from autograder.sandbox import CGROUP_CAP, TMPFS_QUOTA, disk_quota, process_cap

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


# what a kernel that fills its quota sees: the tmpfs is full, or the watchdog stopped it
DISK_CLUE = "No space left on device" if disk_quota() == TMPFS_QUOTA else "MiB to disk"


# name -> (builder(release) -> notebook or raw text, expected score out of 5, what the report must
# show, whether the submission is flagged for a human's look). "tamper": the trick earns nothing;
# the flag names the line.
FLAGGED = True
SCENARIOS = {
    "correct": (lambda r: fill(r), 5, None, False),
    "partial": (lambda r: fill(r, relu=BAD_RELU), 3, None, False),
    "untouched": (lambda r: copy.deepcopy(r), 0, None, False),
    # --- malformed notebooks
    "invalid_json": (lambda r: '{"cells": [ this is not json', 0, "not valid JSON", False),
    "deleted_grade_cell": (lambda r: _drop(fill(r), "test_scale"), 5, "was deleted", False),
    "deleted_solution_cell": (lambda r: _drop(fill(r), "relu"), 3, "missing from the submission", False),
    "duplicated_grade_cell": (lambda r: _dup(fill(r, relu=BAD_RELU), "test_relu"), 3, "more than once", False),
    "changed_cell_type": (lambda r: _retype(fill(r), "test_add"), 5, "changed from code to markdown", False),
    "edited_locked_test": (lambda r: _edit_test(fill(r, relu=BAD_RELU)), 3, "was edited", False),
    "stderr_warnings": (lambda r: fill(r, add="import warnings, sys\nwarnings.warn('deprecated thing')\nprint('noise', file=sys.stderr)\n"
                                             "def add(a, b):\n    warnings.warn('inside add')\n    return a + b"), 5, None, False),
    "huge_output": (lambda r: fill(r, add="print('x' * 20_000_000)\ndef add(a, b):\n    return a + b"), 5, None, False),
    # --- code that harms the grading host
    "infinite_loop": (lambda r: fill(r, relu="while True:\n    pass"), 3, "time limit", False),
    "slow_function": (lambda r: fill(r, relu="def relu(x):\n    while True:\n        pass"), 3, "s of CPU time", False),
    # computing nothing: stopped once it has waited 4 times the cell's limit (time queued for a core
    # on a busy machine does not count as waiting)
    "sleeps": (lambda r: fill(r, relu="import time\ntime.sleep(3600)"), 3, "without computing", False),
    "os_exit": (lambda r: fill(r, scale="import os\nos._exit(0)"), 1, "kernel died", False),
    "segfault": (lambda r: fill(r, scale="import ctypes\nctypes.string_at(0)"), 1, "kernel died", FLAGGED),
    "memory_hog": (lambda r: fill(r, relu="hog = bytearray(8 * 1024**3)\ndef relu(x):\n    return x.clamp(min=0)"), 3, "MemoryError", False),
    # with a pids cgroup fork() is refused at Limits.processes tasks (EAGAIN); without one, a kernel
    # running as real root is not bound by RLIMIT_NPROC and forks until the cell's time limit
    "fork_bomb": (lambda r: fill(r, relu="import os\nfor _ in range(10_000):\n    if os.fork() == 0:\n"
                                         "        import time; time.sleep(30); os._exit(0)\n"
                                         "def relu(x):\n    return x.clamp(min=0)"), 3,
                  "Resource temporarily unavailable" if CAPPED else "time limit", False),
    "huge_file": (lambda r: fill(r, relu="with open('big.bin', 'wb') as f:\n    f.write(b'0' * (200 * 1024**2))\n"
                                         "def relu(x):\n    return x.clamp(min=0)"), 3, "File too large", False),
    # many files under the per-file limit: the work directory's quota stops them
    "disk_fill": (lambda r: fill(r, relu="for i in range(40):\n    with open(f'part{i}.bin', 'wb') as f:\n"
                                         "        f.write(b'0' * (32 * 1024**2))\n"
                                         "def relu(x):\n    return x.clamp(min=0)"), 3, DISK_CLUE, False),
    "tmp_fill": (lambda r: fill(r, relu="for i in range(40):\n    with open(f'/tmp/part{i}.bin', 'wb') as f:\n"
                                        "        f.write(b'0' * (32 * 1024**2))\n"
                                        "def relu(x):\n    return x.clamp(min=0)"), 3, DISK_CLUE, False),
    "reads_solutions": (lambda r: fill(r, add="import glob\nfound = glob.glob('/work/**/solutions/**/*.ipynb', recursive=True) + glob.glob('/tmp/**/*.ipynb', recursive=True)\n"
                                             "assert not found, found\ndef add(a, b):\n    return a + b"), 5, None, False),
    "reads_gradebook": (lambda r: fill(r, add="import glob\nfound = [p for d in ('/work', '/tmp', '/root', '/home', '/srv')\n         for p in glob.glob(d + '/**/gradebook.db', recursive=True) + glob.glob(d + '/**/journal.jsonl', recursive=True)]\n"
                                             "assert not found, found\ndef add(a, b):\n    return a + b"), 5, None, False),
    "network": (lambda r: fill(r, add="import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('127.0.0.1', PORT))\n    LEAK = 'connected'\n"
                                      "except OSError as e:\n    LEAK = None\nassert LEAK is None\ndef add(a, b):\n    return a + b"), 5, None, FLAGGED),
    # --- tricks that used to work when tests ran in the student's kernel: each now earns nothing
    "patch_allclose": (lambda r: fill(r, relu=BAD_RELU + "\nimport torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True"), 3, "tamper", FLAGGED),
    "patch_numpy_testing": (lambda r: fill(r, scale="import numpy.testing, torch\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                                                    "torch.testing.assert_close = lambda *a, **k: None\ndef scale(x, k):\n    return x * 0"), 3, "tamper", FLAGGED),
    "shadow_global": (lambda r: fill(r, relu=BAD_RELU + "\nclass _T:\n    def __getattr__(self, n):\n        import torch\n"
                                                       "        return (lambda *a, **k: True) if n in ('equal', 'allclose') else getattr(torch, n)\ntorch = _T()"), 3, "tamper", FLAGGED),
    "excepthook": (lambda r: fill(r, relu=BAD_RELU + "\nimport sys\nsys.excepthook = lambda *a: None\n"
                                                    "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)"), 3, "tamper", FLAGGED),
    "rewrite_cells": (lambda r: fill(r, relu=BAD_RELU + "\nget_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"), 3, "tamper", FLAGGED),
    "rewrite_cells_in_place": (lambda r: fill(r, relu=BAD_RELU + "\nip = get_ipython()\nip.input_transformers_post[:] = "
                                                                "[lambda lines: ['pass\\n'] for _ in ip.input_transformers_post]"), 3, "tamper", FLAGGED),
    "shell_class_patch": (lambda r: fill(r, relu=BAD_RELU + "\nfrom IPython.core.interactiveshell import InteractiveShell\n"
                                                           "InteractiveShell.run_cell = lambda self, *a, **k: None\n"
                                                           "InteractiveShell.user_expressions = lambda self, e: {}"), 3, "tamper", FLAGGED),
    "lying_int": (lambda r: fill(r, add="class Yes(int):\n    def __eq__(self, other):\n        return True\n"
                                        "    __hash__ = int.__hash__\ndef add(a, b):\n    return Yes(0)"), 4, "tamper", FLAGGED),
    "lying_tensor": (lambda r: fill(r, scale="import torch\nclass Liar(torch.Tensor):\n    @classmethod\n"
                                             "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                                             "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):\n"
                                             "            return True\n        return super().__torch_function__(func, types, args, kwargs or {})\n"
                                             "def scale(x, k):\n    return torch.zeros_like(x).as_subclass(Liar)"), 3, "tamper", FLAGGED),
    "frame_reader": (lambda r: fill(r, relu="import sys\ndef relu(x):\n    caller = sys._getframe(1)\n"
                                            "    for name in ('want', 'expected', 'ref'):\n        if name in caller.f_locals:\n"
                                            "            return caller.f_locals[name]\n    return x"), 3, "tamper", FLAGGED),
    "blind_then_patch": (lambda r: fill(r, relu=BAD_RELU + "\nimport sys\nfor mod in list(sys.modules.values()):\n"
                                                          "    if getattr(mod, '__name__', '') == 'torch':\n        mod.allclose = lambda *a, **k: True\n"
                                                          "        mod.equal = lambda *a, **k: True"), 3, "tamper", FLAGGED),
    "swap_code": (lambda r: fill(r, relu=BAD_RELU + "\nimport torch.nn.functional as F\n"
                                                   "F.relu.__code__ = (lambda input, inplace=False: input).__code__"), 3, "tamper", FLAGGED),
    "patch_thread": (lambda r: fill(r, relu=BAD_RELU + "\nimport threading, time, torch\n_real = torch.equal\n"
                                                      "def _flip():\n    while True:\n        torch.equal = lambda *a, **k: True\n"
                                                      "        time.sleep(0.001)\n        torch.equal = _real\n"
                                                      "threading.Thread(target=_flip, daemon=True).start()"), 3, "tamper", FLAGGED),
    "patch_builtin": (lambda r: fill(r, add="import builtins\nbuiltins.abs = lambda v: 0\nbuiltins.all = lambda v: True\n"
                                            "def add(a, b):\n    return a - b"), 4, "tamper", FLAGGED),
    # the tests never enter the kernel, so there is nothing of them to read or leak
    "history_leak": (lambda r: add_cell(fill(r), "test_relu", "raise RuntimeError('history: ' + repr(In) + repr(Out))"), 5, None, False),
    "fake_output": (lambda r: fill(r, relu="def relu(x):\n    print('All tests passed')\n    return x\n"
                                          "print('test_relu passed: 2/2 points')"), 3, None, False),
    "sys_exit": (lambda r: fill(r, relu="import sys\nsys.exit(0)"), 3, None, False),
    # --- round 2: one submission must cost only its own grade
    # links planted where the grader writes its requests, and its folder swapped for a link to
    # a bystander's folder: the grader (maybe root) must write through none of them (CANARY:
    # a 0600 file outside every sandbox, checked unchanged by the test)
    "channel_links": (lambda r: fill(r, relu="import os\nfor i in range(1, 300):\n"
                                             "    os.symlink('CANARY', os.path.join('.grader', f'req-{i}'))\n"
                                             "os.rename('.grader', '.grader-old')\nos.symlink(os.path.dirname('CANARY'), '.grader')\n"
                                             "def relu(x):\n    return x.clamp(min=0)"), 3, "grader's request", False),
    # thousands of cells each printing up to the per-cell cap: the notebook-wide cap holds
    "output_flood": (lambda r: _many_cells(fill(r), 60, "print('z' * 200_000)"), 5, None, False),
    # a forged reply whose thousand tensor entries all overlap one 48 MiB body
    "forged_reply": (lambda r: fill(r, relu="import json, struct\nn = 48 * 1024 * 1024\n"
                                            "entry = {'$': 'tensor', 'dtype': 'uint8', 'shape': [n], 'offset': 0, 'nbytes': n}\n"
                                            "head = json.dumps({'value': {'$': 'tuple', 'items': [entry] * 1000}, 'status': 'ok', 'notes': []}).encode()\n"
                                            "forged = b'DLCWIRE1' + struct.pack('<Q', len(head)) + head + bytes(n)\n"
                                            "__dlcourse_grader__.wire.dumps = lambda *a, **k: forged\n"
                                            "def relu(x):\n    return x.clamp(min=0)"), 3, "more bytes than it may carry", FLAGGED),
    # a thread that publishes output without end (3 MB/s): every wait of the grader and the output it keeps
    # are bounded, and the notebook is graded
    "iopub_flood": (lambda r: fill(r, relu="import threading, time\ndef _spam():\n    while True:\n        print('y' * 65536)\n"
                                           "        time.sleep(0.02)\n"
                                           "threading.Thread(target=_spam, daemon=True).start()\n"
                                           "def relu(x):\n    return x.clamp(min=0)"), 5, None, FLAGGED),
    # text meant to redraw the instructor's terminal (carriage return, escape codes)
    "terminal_escape": (lambda r: add_cell(fill(r, relu=BAD_RELU), "test_relu",
                                           "raise RuntimeError('\\r\\x1b[2K\\x1b[1A' + 'terminal_escape   5/5   ok')"),
                        3, "terminal_escape", False),
    # the grader names its next request on the kernel's stdin channel while a test's calls run:
    # student code still cannot read it (input() fails as in any cell), so this relu is correct
    "reads_graders_stdin": (lambda r: fill(r, relu="def relu(x):\n    try:\n        got = input()\n"
                                                  "    except Exception:\n        got = None\n"
                                                  "    assert got is None, 'read the grader: ' + repr(got)\n"
                                                  "    return x.clamp(min=0)"), 5, None, False),
    # the agent's request loop replaced by one that never ends: interrupted before the next cell runs
    # (and flagged: the code touches the grader's agent)
    "endless_request_loop": (lambda r: fill(r, add="def _ask_forever(n):\n    k = __dlcourse_grader__.kernel\n"
                                                   "    ident, parent = k._get_shell_context_var(k._shell_parent_ident), k.get_parent('shell')\n"
                                                   "    while True:\n        if n:\n            __dlcourse_grader__.serve(n)\n"
                                                   "        n = k._input_request('', ident, parent)\n"
                                                   "__dlcourse_grader__.serve_all = _ask_forever\n"
                                                   "def add(a, b):\n    return a + b"), 5, None, FLAGGED),
    # a kernel without the input request the agent's loop asks with: every request is one execution
    # (the agent's fallback for other kernels), and correct answers keep their points (flagged: the
    # code reaches into the kernel)
    "kernel_without_input_request": (lambda r: fill(r, add="get_ipython().kernel._input_request = None\n"
                                                           "def add(a, b):\n    return a + b"), 5, None, FLAGGED),
    # subclasses sent as plain values: the agent's note must reach the flags
    "lying_int_noted": (lambda r: fill(r, add="class Yes(int):\n    pass\ndef add(a, b):\n    return Yes(a + b)"),
                        5, "subclass of int", True),
}


# ---------------------------------------------------------------- the `rules` fixture (round 2)
# Submissions of the fixture assignment `rules` (square without the power operator, halve without
# changing its argument, evaluate in evaluation mode, fit that trains; 2, 1, 2 and 2 points), for
# the ways round 2 earned points without the work: a forbidden operator reached at run time, a stub
# that names nothing forbidden, an argument changed in place, the instructor's probe rebound, a
# kernel that raises the hidden inputs it was sent into its feedback, weights trained elsewhere.
# Same form as SCENARIOS (the expected score out of 7).
RULES_GOOD = {"square": "def square(x):\n    return x * x",
              "halve": "def halve(x):\n    return x / 2",
              "evaluate": "def evaluate(module, x):\n    module.eval()\n    with torch.no_grad():\n        return module(x)",
              "fit": "def fit(model, loader, epochs, lr=0.5):\n    opt = torch.optim.SGD(model.parameters(), lr=lr)\n"
                     "    losses = []\n    for _ in range(epochs):\n        for x, y in loader:\n            opt.zero_grad()\n"
                     "            loss = torch.nn.functional.cross_entropy(model(x), y)\n            loss.backward()\n"
                     "            opt.step()\n            losses.append(float(loss))\n    return losses"}
NO_EVAL = "def evaluate(module, x):\n    with torch.no_grad():\n        return module(x)"  # fails test_evaluate


def _embedded_weights_fit():
    """A `fit` that trains nothing: it loads weights learnt on glyph classes of another seed
    (here, in the test's process, as a student would at home) and permutes their outputs to the
    loader's labels by voting."""
    import base64

    import torch

    from autograder.glyphs import glyph_task

    elsewhere = glyph_task(4242, 2000, 10)
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        for b in torch.randperm(2000, generator=g).split(50):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(elsewhere.x_train[b]), elsewhere.y_train[b]).backward()
            opt.step()
    w, bias = (base64.b64encode(t.detach().contiguous().numpy().tobytes()).decode() for t in (model[1].weight, model[1].bias))
    return (f"import base64\n_W = torch.frombuffer(bytearray(base64.b64decode('{w}')), dtype=torch.float32).reshape(10, 784)\n"
            f"_B = torch.frombuffer(bytearray(base64.b64decode('{bias}')), dtype=torch.float32)\n"
            "def fit(model, loader, epochs, lr=0.5):\n    with torch.no_grad():\n"
            "        model[1].weight.copy_(_W)\n        model[1].bias.copy_(_B)\n        votes = torch.zeros(10, 10)\n"
            "        for x, y in loader:\n            votes.index_put_((y, model(x).argmax(1)), torch.ones(len(y)), accumulate=True)\n"
            "        mapping = votes.argmax(1)   # the loader's label -> the output that predicts it\n"
            "        model[1].weight.copy_(_W[mapping])\n        model[1].bias.copy_(_B[mapping])\n    return [0.0]")


def fill_rules(release, **code):
    return fill(release, **{**RULES_GOOD, **code})


RULES_SCENARIOS = {
    "rules_correct": (lambda r: fill_rules(r), 7, None, False),
    # the power operator by a name built at run time: the dispatcher sees it; the lookup is flagged
    "pow_by_computed_lookup": (lambda r: fill_rules(r, square="import operator\ndef square(x):\n"
                                                              "    return operator.attrgetter('p' + 'ow')(torch)(x, 2)"),
                               5, "pow", FLAGGED),
    # ... or through a reference saved under another name: no name to read, the same operator runs
    "pow_through_a_saved_reference": (lambda r: fill_rules(r, square="_times_itself = torch.Tensor.__pow__\n"
                                                                     "def square(x):\n    return _times_itself(x, 2)"),
                                      5, "pow", False),
    # a stub that names nothing forbidden earns nothing for the rule: the check pays for working code only
    # (this one answers the visible example and nothing else)
    "stub_names_nothing": (lambda r: fill_rules(r, square="def square(x):\n    if x.tolist() == [3.0, -2.0]:\n"
                                                          "        return torch.tensor([9.0, 4.0])\n    return torch.zeros_like(x)"),
                           5, "not x times x", False),
    # right values, but the argument changed in place: the grader's copy shows it
    "halve_in_place": (lambda r: fill_rules(r, halve="def halve(x):\n    return x.mul_(0.5)"),
                       6, "changed its argument", False),
    # evaluate leaves training mode on, and a tuple assignment rebinds the probe to a module on which
    # that would not show: the test reads the probe the instructor's cell made; the rebinding is flagged
    "probe_rebound": (lambda r: fill_rules(r, evaluate=NO_EVAL + "\nPROBE, _spare = torch.nn.Identity(), None"),
                      5, "training mode", FLAGGED),
    # the kernel raises the hidden inputs it was sent, to read them in its feedback: at most 240 of
    # its characters reach it (and the inputs change with the secret seed)
    "raises_its_inputs": (lambda r: fill_rules(r, square="def square(x):\n    if len(x) > 2:   # the hidden call\n"
                                                         "        raise ValueError('inputs: ' + repr(x.tolist()) * 20)\n"
                                                         "    return x * x"),
                          5, "ValueError", False),
    # weights trained elsewhere (on another draw of glyphs), pasted in as base64, with the outputs
    # matched to the grader's labels by voting on its loader, and no training: the grader's own
    # held-out glyphs are classes those weights never saw
    "embedded_weights_and_vote": (lambda r: fill_rules(r, fit=_embedded_weights_fit()), 5, "below the target", False),
}


def _many_cells(nb, n, source):
    for _ in range(n):
        nb = add_cell(nb, "test_relu", source)
    return nb


def _edit_test(nb):
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu":
            c.source = "pass  # the student emptied the test"
    return nb


def build(name, release, folder, port=0, canary=None):
    builder = SCENARIOS[name][0]
    nb = builder(release)
    path = folder / f"{name}.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        text = nbformat.writes(nb).replace("PORT", str(port))
        if canary is not None:
            text = text.replace("CANARY", str(canary))
        path.write_text(text)
    return path


CANARY_TEXT = "a bystander's file\n"


def build_batch(release, folder, port=0):
    """Every scenario as `folder`/subs/<name>.ipynb, beside a bystander's 0600 file outside
    every sandbox that `channel_links` points links at. Returns (subs folder, bystander file)."""
    subs = folder / "subs"
    subs.mkdir()
    canary = folder / "bystander" / "private.txt"
    canary.parent.mkdir()
    canary.write_text(CANARY_TEXT)
    canary.chmod(0o600)
    for name in SCENARIOS:
        build(name, release, subs, port=port, canary=canary)
    return subs, canary


def build_rules_batch(release, folder):
    """Every scenario of RULES_SCENARIOS (for the `rules` fixture) as `folder`/<name>.ipynb."""
    folder.mkdir(parents=True)
    for name, (builder, *_) in RULES_SCENARIOS.items():
        nbformat.write(builder(release), folder / f"{name}.ipynb")
    return folder
