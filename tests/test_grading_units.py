"""Small parts of the grader, without a kernel: where cells run, what the source review
flags, the static checks tests use, student ids, CSV cells, and the withheld library."""
from __future__ import annotations

import os
import subprocess
import time
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
from autograder.testkit import count_params, forbidden_uses, function_source, map_state_dict, match_units
from autograder.testkit import units as reference_units
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
    found = forbidden_uses(sources, names={"conv2d", "max_pool2d", "convolution"}, module_attrs={"unfold"}, dynamic=True)
    text = " | ".join(found)
    assert "pool" not in text                        # its own max_pool2d and Tensor.unfold are fine
    assert "conv, line 3: G.conv2d" in text
    assert "from torch.nn.functional import unfold" in text and "getattr with a computed name" in text
    assert "torch.ops" in text and "eval" not in text  # model.eval() is not the builtin eval
    # by default only names count: computed lookups are review flags (what runs is checked by
    # student.forbid), and the stated rule lists exactly which lookups fail with dynamic=True
    plain = " | ".join(forbidden_uses(sources, names={"conv2d"}, module_attrs={"unfold"}))
    assert "getattr" not in plain and "torch.ops" not in plain and "conv, line 3: G.conv2d" in plain
    honest = {"cache": "class Cache:\n    def __init__(self, **kw):\n        self.__dict__.update(kw)\n"
                       "print(vars(Cache(a=1)), globals().keys())"}
    assert forbidden_uses(honest, names={"batch_norm"}, dynamic=True) == []  # the a07 false fail
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



def test_match_units_finds_blocks_in_any_order_by_their_shapes():
    """A U-Net registered level by level (each up-convolution beside its decoder block) loads into
    the reference, whose up-convolutions and decoder blocks are two separate lists; the weights land
    where the shapes say, and an entry that starts no block is named."""
    import torch

    from dlcourse.models.segmentation import UNet

    ref = UNet(((4, 2), (8, 2), (16, 2)), 3, 1)
    units = reference_units(ref, split=("down", "up", "decode"))
    assert sorted(units) == ["bottom", "classifier", "decode.0", "decode.1", "down.0", "down.1", "up.0", "up.1"]
    assert units["down.1"] is ref.down[1] and units["classifier"] is ref.classifier
    theirs = ref.state_dict()
    # the same tensors under other names, in data-flow order: encoder, bottom, (up, block) per level, classifier
    order = [k for k in theirs if k.startswith(("down.", "bottom."))]
    for level in range(2):
        order += [k for k in theirs if k.startswith(f"up.{level}.")] + [k for k in theirs if k.startswith(f"decode.{level}.")]
    order += [k for k in theirs if k.startswith("classifier.")]
    student = {f"layer{i}.{k.rsplit('.', 1)[-1]}": theirs[k] for i, k in enumerate(order)}
    mapping = match_units(student, units)
    assert sorted(mapping.values()) == sorted(theirs)
    assert all(torch.equal(student[s], theirs[r]) for s, r in mapping.items())
    shuffled = dict(reversed(list(student.items())))          # a block's entries out of their order
    with pytest.raises(AssertionError, match="cannot place"):
        match_units(shuffled, units)
    with pytest.raises(AssertionError, match="not found"):                # the classifier left out
        match_units(dict(list(student.items())[:-2]), units)


def test_random_state_keeps_counters_and_makes_evaluation_mode_differ():
    import torch
    from torch import nn

    from autograder.testkit import random_state

    net = nn.Sequential(nn.Conv2d(2, 8, 3), nn.BatchNorm2d(8), nn.Linear(4, 3))
    new = random_state(net.state_dict(), torch.Generator().manual_seed(0))
    assert list(new) == list(net.state_dict())
    assert torch.equal(new["1.num_batches_tracked"], net.state_dict()["1.num_batches_tracked"])
    assert float(new["1.running_var"].min()) >= 0.5 and float(new["1.running_var"].max()) < 1.5
    assert 0.15 < float(new["0.weight"].std()) < 0.45 and float(new["1.running_mean"].abs().max()) > 0
    net.load_state_dict(new)
    x = torch.randn(4, 2, 6, 6)
    assert not torch.allclose(net[:2].train()(x), net[:2].eval()(x))   # the statistics matter in evaluation mode
    again = random_state(net.state_dict(), torch.Generator().manual_seed(0))
    assert all(torch.equal(again[k], new[k]) for k in new)


def test_units_of_a_sequential_are_its_layers_with_tensors():
    from torch import nn

    ref = nn.Module()
    ref.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    ref.head = nn.Linear(2, 1)
    ref.act = nn.Tanh()
    units = reference_units(ref, split=("net",))
    assert list(units) == ["net.0", "net.2", "net.3", "head"]        # ReLU and Tanh hold no tensors
    assert units["net.2"] is ref.net[2]
    assert list(reference_units(ref)) == ["net", "head"]


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


def test_withheld_library_is_never_taken_from_a_shared_folder(tmp_path):
    """Round 2: a copy planted in the shared scratch (e.g. /tmp) under the old predictable name
    must not become the kernel's library; ours lives in a private, unguessable folder."""
    import hashlib
    import stat

    from autograder.sandbox import library_location, private_scratch

    src = library_location()
    h = hashlib.sha256(b"a03-lenet")
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(src)).encode())
            h.update(p.read_bytes())
    planted = tmp_path / f"autograder-library-a03-lenet-{h.hexdigest()[:16]}" / "dlcourse"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("PLANTED = True\n")
    lib = withheld_library("a03-lenet", tmp_path)
    assert planted.parent not in (lib, *lib.parents)
    private = private_scratch(tmp_path)
    assert lib.parent == private and private.parent == tmp_path
    st = os.lstat(private)
    assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o711  # reachable, not listable
    assert "PLANTED" not in (lib / "dlcourse" / "__init__.py").read_text()
    # a copy someone else could write is rebuilt, never used
    os.chmod(lib / "dlcourse", 0o777)
    rebuilt = withheld_library("a03-lenet", tmp_path)
    assert stat.S_IMODE(os.lstat(rebuilt / "dlcourse").st_mode) == 0o755


def test_review_sees_every_way_a_cell_rebinds_an_instructor_name():
    """Round 2: a tuple assignment rebound a kernel-only helper unnoticed."""
    sneaky = {"tuple": "ProbeNet, other = MyNet, 1",
              "starred": "*_, ProbeNet = [1, MyNet]",
              "loop": "for ProbeNet in [MyNet]:\n    pass",
              "walrus": "(ProbeNet := MyNet)",
              "global": "def f():\n    global ProbeNet\n    ProbeNet = MyNet\nf()",
              "import": "from mine import MyNet as ProbeNet",
              "with": "with open('x') as ProbeNet:\n    pass"}
    for how, src in sneaky.items():
        flags = review({"cell 'accuracy'": src}, (), {"ProbeNet"})
        assert any("redefines ProbeNet" in f for f in flags), how
    # a local of the same name inside a function is not a rebinding
    assert not any("redefines" in f for f in review({"c": "def f():\n    ProbeNet = 1\n    return ProbeNet"}, (), {"ProbeNet"}))


def test_kernel_text_is_made_safe_for_each_place_it_is_shown():
    from autograder.text import clean, markdown_inline, one_line

    evil = "ok\r\x1b[2K\x1b[1A 28/28 \u202egnp.exe\x00\n| <b>x</b> [link](http://x)"
    assert not any(ch in clean(evil) for ch in "\r\x1b\u202e\x00") and "\n" in clean(evil)
    assert "\n" not in one_line(evil) and "\x1b" not in one_line(evil)
    md = markdown_inline(evil)
    assert "\\<b\\>" in md and "\\[link\\](" in md and "\\|" in md  # markup shown as text, not rendered
    assert len(clean("x" * 10_000)) == 3000


def test_channel_writes_only_into_the_folder_it_opened(tmp_path):
    """The grader's side of the channel, against links a kernel plants (no kernel needed to
    plant them): requests are created exclusively, never through a link, and only in the
    directory opened before the kernel started, even after the folder is swapped for a link."""
    from autograder.remote import BadReply, KernelChannel

    folder = tmp_path / "work" / ".grader"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    victim.chmod(0o600)
    channel = KernelChannel(client=None, folder=folder)
    (folder / "req-planted").symlink_to(victim)
    with pytest.raises(BadReply, match="changed the grader's folder"):
        channel._write_request("planted", b"data", "a test")
    assert victim.read_text() == "untouched" and victim.stat().st_mode & 0o777 == 0o600
    # the folder renamed and replaced by a link to the victim's folder
    folder.rename(tmp_path / "work" / "moved")
    folder.symlink_to(tmp_path)
    channel._write_request("abc", b"data", "a test")
    assert (tmp_path / "work" / "moved" / "req-abc").read_bytes() == b"data"
    assert not (tmp_path / "req-abc").exists()
    # a reply planted as a link is refused, not followed
    (tmp_path / "work" / "moved" / "rep-abc").symlink_to(victim)
    with pytest.raises(BadReply, match="symbolic link"):
        channel._read_reply("abc", {}, "a test")
    channel.close()


def test_in_place_changes_to_arguments_reach_the_graders_copies():
    """Round 2: a check like `x0 = x.clone(); f(x); assert torch.equal(x, x0)` compared two grader
    copies; the kernel's report of what the call did to its tensor arguments is mirrored."""
    import torch

    from autograder.agent import _tensor_args
    from autograder.remote import BadReply, _mirror_changes

    x, y, z = torch.ones(3), torch.zeros(2), torch.arange(4.0)
    kernel_x, kernel_list = x.clone(), [y.clone()]
    tracked = _tensor_args((kernel_x, kernel_list), {"w": z.clone()})
    kernel_x.mul_(2)
    kernel_list[0].add_(5)
    kernel_list[0].data.add_(0)                     # (a write through .data bumps no version: compared by value)
    changed = [[path, t] for path, t, v, before in tracked if t._version != v or not torch.equal(before, t)]
    assert [p for p, _ in changed] == [["args", 0], ["args", 1, 0]]
    args = (x, [y])
    _mirror_changes(args, {"w": z}, changed, "f(x)")
    assert torch.equal(x, torch.full((3,), 2.0)) and torch.equal(y, torch.full((2,), 5.0))
    assert torch.equal(z, torch.arange(4.0))  # untouched arguments stay as they were
    for forged in ([[["args", 7], torch.ones(3)]], [[["globals", 0], torch.ones(3)]], [["args", 0]]):
        with pytest.raises(BadReply):
            _mirror_changes(args, {}, forged, "f(x)")


def test_a_killed_graders_leftovers_are_swept_and_nothing_else(tmp_path):
    """A grader killed at its wall limit cannot unmount its kernel's tmpfs or remove its private
    folder; the next grader removes them, and nothing that is another process's or user's."""
    from autograder.sandbox import _mount_tmpfs, sweep_stale

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)                      # a pid whose process has exited
    stale = tmp_path / f"autograder-{dead}-abc123"
    (stale / "work-x").mkdir(parents=True)
    mounted = _mount_tmpfs(stale / "work-x", 1)  # (as root: the kernel's disk quota)
    (stale / "work-x" / "notebook.bin").write_bytes(b"x" * 100)
    alive = tmp_path / f"autograder-{os.getpid()}-def456"
    alive.mkdir()
    other = tmp_path / f"autograder-{dead}-ghi789"
    other.mkdir()
    if os.geteuid() == 0:
        os.chown(other, 65534, 65534)            # another user's: not ours to remove
    link = tmp_path / f"autograder-{dead}-jkl000"
    link.symlink_to(alive)
    removed = [p for p in sweep_stale(tmp_path) if p.parent == tmp_path]  # (not cgroups of dead graders)
    assert removed == [stale] and not stale.exists()
    if mounted:
        assert str(stale) not in Path("/proc/self/mounts").read_text()
    assert alive.is_dir() and link.is_symlink()
    assert other.is_dir() == (os.geteuid() == 0)


def test_kernels_a_killed_grader_left_running_are_stopped_by_the_next_sweep(tmp_path):
    """bubblewrap starts a session of its own, so killing a grader's process group (the watch's wall
    limit) leaves its kernel running; the kernel's pids cgroup names the grader, and the next
    grader's sweep kills what is left in it."""
    from autograder.sandbox import CGROUP_CAP, PidsCgroup, process_cap, sweep_stale

    if process_cap() != CGROUP_CAP:
        pytest.skip("no usable pids cgroup here (the kernels' process cap is RLIMIT_NPROC)")
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    group = PidsCgroup(f"{int(done.stdout)}-123", 8)   # as a grader that has exited would have named it
    orphan = subprocess.Popen(group.prefix() + ["sleep", "600"])
    try:
        for _ in range(100):
            if (group.path / "cgroup.procs").read_text().split():
                break
            time.sleep(0.05)
        assert group.path in sweep_stale(tmp_path)
        assert orphan.wait(timeout=10) == -9 and not group.path.exists()
    finally:
        orphan.kill()
        group.release()
