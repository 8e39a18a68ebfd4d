"""Execute a restored notebook cell by cell in a sandboxed kernel and score its tests.

Why cell by cell from the outside rather than `papermill.execute_notebook`: the
kernel must never hold a cell before it runs (hidden tests would be readable by
earlier student code), and the grader must not trust what the kernel reports. So:

1. Before the first cell with student code, the executor records a *baseline*: the
   identity (CPython address, read with the unpatchable `object.__repr__`) of the
   builtins, assertion helpers and torch/NumPy comparison functions, the names the
   tests use, IPython's input/AST transformers, exception hooks and tracers. It is
   read with a `user_expressions` request, which bypasses IPython's input transformers.
2. Before and after every graded cell the same probe runs again. Any difference is
   tampering: that test and all later ones score 0 and the submission is flagged.
3. Each graded cell is sent with one extra last line that prints a fresh random nonce.
   It scores only when the kernel replied "ok", no error output appeared and the nonce
   came back on stdout, i.e. the instructor's code really ran to its end.
A printed "All tests passed" earns nothing: output text is never parsed for success.
"""
from __future__ import annotations

import ast
import asyncio
import builtins
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder.restore import GradedCell, nbgrader_meta
from autograder.sandbox import Limits, SandboxKernelManager, prepare_workdir

# Functions whose replacement would let a failing test pass.
WATCHED = [
    "builtins.print", "builtins.isinstance", "builtins.len", "builtins.abs", "builtins.all", "builtins.any",
    "builtins.round", "builtins.float", "builtins.int", "builtins.bool", "builtins.repr", "builtins.str",
    "builtins.getattr", "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
    "builtins.AssertionError", "builtins.Exception", "builtins.BaseException", "builtins.globals",
    "sys.excepthook", "sys.displayhook", "sys.stdout", "sys.stderr", "sys.exit",
    "math.isclose", "torch.allclose", "torch.equal", "torch.isclose", "torch.eq", "torch.all", "torch.testing.assert_close",
    "torch.Tensor.__eq__", "torch.Tensor.allclose", "torch.Tensor.equal", "torch.Tensor.all", "torch.Tensor.item",
    "torch.Tensor.__bool__", "torch.nn.functional.relu", "torch.nn.functional.conv2d",
    "numpy.allclose", "numpy.array_equal", "numpy.isclose", "numpy.testing.assert_allclose",
    "numpy.testing.assert_array_equal", "numpy.testing.assert_equal", "numpy.testing.assert_almost_equal",
]
STATE = [
    "len(ip.input_transformers_post)", "len(ip.input_transformers_cleanup)", "len(ip.ast_transformers)",
    "o.__repr__(ip.custom_exceptions)", "repr(ip.custom_exceptions)", "sorted(k for k in vars(ip) if k in ('run_cell','run_code','showtraceback','run_ast_nodes','_showtraceback','CustomTB'))",
    "o.__repr__(m['sys'].gettrace())", "o.__repr__(m['sys'].getprofile())",
    "tuple((k, len(v)) for k, v in sorted(ip.events.callbacks.items()))",
]


def guard_expression(test_names: list[str]) -> str:
    """One Python expression whose value describes everything tests rely on."""
    parts = []
    for dotted in WATCHED:
        mod, *attrs = dotted.split(".")
        expr = f"m.get({mod!r})"
        for a in attrs:
            expr = f"getattr({expr}, {a!r}, None)"
        parts.append(f"({dotted!r}, o.__repr__({expr}))")
    for name in test_names:
        parts.append(f"('global {name}', o.__repr__(g[{name!r}]) if {name!r} in g else 'absent')")
    for s in STATE:
        parts.append(f"({s!r}, repr({s}))")
    body = ", ".join(parts)
    return (f"(lambda o, m, ip, g: ({body},))"
            f"(().__class__.__base__, __import__('sys').modules, get_ipython(), globals())")


def names_used(sources: list[str]) -> list[str]:
    """Global names the instructor's test cells read (so shadowing them is caught)."""
    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
    return sorted(names)


@dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    status: str  # "passed" | "failed" | "error" | "not run" | "tampered"
    message: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Execution:
    tests: list[TestResult]
    diagnostics: list[dict] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: nbformat.NotebookNode | None = None


class CappedClient(NotebookClient):
    """nbclient that keeps at most `cap` bytes of output per cell (huge prints)."""

    cap_bytes = 256 * 1024

    def output(self, outs, msg, display_id, cell_index):
        used = getattr(self, "_used", {})
        self._used = used
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + len(str(content.get("data", "")))
        if used.get(cell_index, 0) + size > self.cap_bytes:
            if used.get(cell_index, 0) <= self.cap_bytes:
                used[cell_index] = self.cap_bytes + 1
                outs.append(nbformat.v4.new_output("stream", name="stderr",
                                                   text=f"[grader: output beyond {self.cap_bytes // 1024} KiB dropped]\n"))
            return None
        used[cell_index] = used.get(cell_index, 0) + size
        return super().output(outs, msg, display_id, cell_index)


def _error_message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip().splitlines()
            value = value[-1] if value else ""
            return f"{out.get('ename', 'Error')}: {value}".rstrip(": ")[:500]
    return ""


def _strip(cell, nonce: str) -> bool:
    """Remove the nonce line from a cell's stdout; True when it was there."""
    found = False
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout" and nonce in out.get("text", ""):
            found = True
            out["text"] = out["text"].replace(nonce + "\n", "").replace(nonce, "")
    cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("text") == "")]
    return found


def execute(nb: nbformat.NotebookNode, graded: list[GradedCell], workdir: Path, *, limits: Limits,
            level: str, hide: list[Path], threads: int = 1) -> Execution:
    """Run `nb` (restored, parameters injected) in a sandboxed kernel; score `graded`."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_workdir(workdir, level)
    start = time.monotonic()
    by_index = {g.index: g for g in graded}
    tests = {g.grade_id: TestResult(g.grade_id, g.points, 0.0, "not run", "the notebook stopped before this test") for g in graded}
    diags: list[dict] = []
    flags: list[str] = []
    first_student = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and
                          (nbgrader_meta(c).get("solution") or not nbgrader_meta(c)) and
                          "parameters" not in c.metadata.get("tags", []) and "setup" not in c.metadata.get("tags", []) and
                          "injected-parameters" not in c.metadata.get("tags", [])), len(nb.cells))
    probe = guard_expression(names_used([nb.cells[g.index].source for g in graded]) + ["print"])
    km = SandboxKernelManager(workdir=workdir, limits=limits, level=level, hide=hide, threads=threads)
    # shutdown "immediate": the kernel and its work directory are thrown away after the last
    # cell, so waiting for a graceful exit would only keep this worker's core idle
    client = CappedClient(nb, km=km, timeout=limits.cell_timeout, allow_errors=True, record_timing=False,
                          startup_timeout=120, shell_timeout_interval=1, iopub_timeout=4, shutdown_kernel="immediate")
    client.cap_bytes = limits.output_kb * 1024
    replies: dict[int, dict] = {}
    client.on_cell_executed = lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply)

    def run_probe() -> str | None:
        msg_id = client.kc.execute("", silent=True, store_history=False, user_expressions={"g": probe})
        reply = client.wait_for_reply(msg_id)
        data = (reply or {}).get("content", {}).get("user_expressions", {}).get("g", {})
        if data.get("status") != "ok":
            return None
        return data.get("data", {}).get("text/plain")

    def diff(before: str | None, now: str | None) -> str:
        if before is None or now is None:
            return "the integrity probe could not run"
        try:
            a, b = dict(ast.literal_eval(before)), dict(ast.literal_eval(now))
        except (ValueError, SyntaxError):
            return "the integrity probe returned garbage"
        # a test's own variables (absent at baseline, not builtins) may change freely;
        # instructor globals (torch, np) and shadowed builtins may not
        changed = [k for k in a if a.get(k) != b.get(k) and not
                   (k.startswith("global ") and a[k] == "absent" and not hasattr(builtins, k[7:]))]
        return ", ".join(changed)

    baseline = None
    tampered = ""
    stopped = ""
    try:
        with client.setup_kernel():
            client.kc.execute(f"import torch as _t; _t.set_num_threads({threads}); del _t", silent=True)
            for idx, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = limits.notebook_timeout - (time.monotonic() - start)
                if remaining <= 0:
                    stopped = f"the notebook exceeded its time limit of {limits.notebook_timeout:.0f} s before cell {idx}"
                    break
                client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                if idx == first_student:
                    baseline = run_probe()
                g = by_index.get(idx)
                if g is None:
                    client.execute_cell(cell, idx)
                    err = _error_message(cell)
                    if err:
                        diags.append({"cell": _name(cell), "message": f"{_name(cell)} (cell {idx}) raised {err}",
                                      "severity": "warning"})
                    continue
                if tampered:
                    tests[g.grade_id] = TestResult(g.grade_id, g.points, 0.0, "tampered", "not scored: " + tampered)
                    continue
                if baseline is not None:
                    changed = diff(baseline, run_probe())
                    if changed:
                        tampered = f"student code changed {changed} before {g.grade_id}"
                        flags.append(tampered)
                        tests[g.grade_id] = TestResult(g.grade_id, g.points, 0.0, "tampered", "not scored: " + tampered)
                        continue
                nonce = "grader-" + secrets.token_hex(16)
                original = cell.source
                cell.source = original.rstrip() + f"\nprint({nonce!r})\n"
                try:
                    client.execute_cell(cell, idx)
                finally:
                    cell.source = original
                reply = replies.get(idx, {}).get("content", {})
                reached = _strip(cell, nonce)
                err = _error_message(cell)
                if reply.get("status") == "ok" and reached and not err:
                    res = TestResult(g.grade_id, g.points, g.points, "passed", "")
                else:
                    if not err and reply.get("status") == "error":
                        err = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}".rstrip(": ")
                    res = TestResult(g.grade_id, g.points, 0.0, "failed", err or "the test did not run to its end")
                if baseline is not None:
                    changed = diff(baseline, run_probe())
                    if changed:
                        tampered = f"student code changed {changed} while {g.grade_id} ran"
                        flags.append(tampered)
                        res = TestResult(g.grade_id, g.points, 0.0, "tampered", "not scored: " + tampered)
                tests[g.grade_id] = res
    except CellTimeoutError:
        stopped = f"cell {idx} ({_name(cell)}) exceeded the per-cell time limit of {client.timeout} s"
    except DeadKernelError:
        code = _exit_code(km)
        stopped = f"the kernel died in cell {idx} ({_name(cell)}){code}"
    except RuntimeError as exc:  # kernel failed to start, or died while starting
        stopped = f"the kernel could not run (cell {idx if 'idx' in dir() else '-'}): {exc}"
    finally:
        _kill(km)
    if stopped:
        diags.append({"cell": _name(cell) if "cell" in dir() else "-", "message": stopped, "severity": "error"})
        for t in tests.values():
            if t.status == "not run":
                t.message = "not run: " + stopped
    if tampered:
        diags.append({"cell": "-", "message": "suspected tampering: " + tampered, "severity": "tamper"})
    shutil.rmtree(workdir, ignore_errors=True)
    return Execution(list(tests.values()), diags, flags, time.monotonic() - start, nb)


def _name(cell) -> str:
    gid = nbgrader_meta(cell).get("grade_id")
    return f"cell {gid!r}" if gid else "a student cell"


def _exit_code(km) -> str:
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    code = proc.poll() if proc is not None else None
    if code is None:
        return ""
    if code > 128:
        return f" (killed by signal {code - 128}: {'segmentation fault' if code - 128 == 11 else 'out of memory or killed' if code - 128 == 9 else 'signal'})"
    return f" (the kernel process exited with status {code}: os._exit or exit() in student code)"


def _kill(km) -> None:
    try:
        if km.has_kernel:
            asyncio.get_event_loop().run_until_complete(km.shutdown_kernel(now=True))
    except Exception:
        pass
    km.release_cgroup()
