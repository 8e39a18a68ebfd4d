"""Run a restored notebook: student code in the sandboxed kernel, tests in the grader's process.

Nothing that decides a grade runs in the student's process. Each cell of the restored
notebook has one of these roles (`cell_roles`):

  student   solution cells and cells the student added: run in the kernel only;
  kernel    instructor cells that use the student's names (a training run calling the
            student's `train`), the setup cell, and cells tagged `kernel-only`: kernel only;
  both      the other instructor cells (imports, parameters, constants, helpers, data):
            run in the kernel, so the student's code finds them, and in the grader's own
            process, so that tests use the instructor's values, not the kernel's;
  test      graded test cells, visible and hidden parts together: run in the grader's
            process only (`autograder.testrun`), against the student's names through
            `autograder.remote` proxies. The hidden tests never enter the kernel.

The kernel talks to the grader through the agent the grader installs in it
(`autograder.agent`), which answers with plain data only (`autograder.wire`). Whatever
student code does inside the kernel, the worst it can do is answer wrongly or not at all.
"""
from __future__ import annotations

import ast
import asyncio
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from nbclient import NotebookClient
from traitlets import default
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder import spare as spares
from autograder import testrun
from autograder.remote import GraderNamespace, KernelChannel, Student
from autograder.restore import GradedCell, nbgrader_meta
from autograder.review import review
from autograder.sandbox import (HARD_WALL_FACTOR, WALL_FACTOR, Limits, directory_bytes, own_run_delay,
                                process_tree_times, release_workdir)

AGENT_SOURCE = (Path(__file__).parent / "agent.py").read_text()
WIRE_SOURCE = (Path(__file__).parent / "wire.py").read_text()
KERNEL_ONLY_TAG = "kernel-only"
BOOTSTRAP_TIMEOUT = 120  # seconds for a new kernel to load the grader's agent (the grader's time, not the student's)
STUDENT_CELL_KEY = "autograder-student-cell"


@dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    status: str  # "passed" | "failed" | "not run"
    message: str = ""
    seconds: float = 0.0  # how long the test cell ran (its calls into the kernel included)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Execution:
    tests: list[TestResult]
    diagnostics: list[dict] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: nbformat.NotebookNode | None = None
    grader_error: str = ""
    requests: int = 0


# ---------------------------------------------------------------- which cell runs where
def bound_names(source: str) -> set[str]:
    """Names a cell binds at its top level (defs, classes, assignments, imports, loops, with)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()

    def targets(node):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    def visit(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    targets(t)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets(node.target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    names.add((a.asname or a.name).split(".")[0])
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets(node.target)
                visit(node.body + node.orelse)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
                visit(node.body)
            elif isinstance(node, (ast.If, ast.While)):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody + [h for hd in node.handlers for h in hd.body])
    visit(tree.body)
    return names


def loaded_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def student_names(source_nb: nbformat.NotebookNode) -> set[str]:
    """Names the solution cells define (in the instructor's source: what a student defines)."""
    names: set[str] = set()
    for cell in source_nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            names |= bound_names(cell.source)
    return names


def cell_roles(nb: nbformat.NotebookNode, graded: list[GradedCell], students: set[str]) -> list[str]:
    graded_idx = {g.index for g in graded}
    roles = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code":
            roles.append("markdown")
        elif i in graded_idx:
            roles.append("test")
        elif meta.get("solution") or cell.metadata.get(STUDENT_CELL_KEY):
            roles.append("student")
        elif "setup" in tags or KERNEL_ONLY_TAG in tags or any(
                line.lstrip().startswith(("%", "!")) for line in cell.source.splitlines()):
            roles.append("kernel")
        elif loaded_names(cell.source) & students:
            roles.append("kernel")
        else:
            roles.append("both")
    return roles


# ---------------------------------------------------------------- the kernel side
MAX_MESSAGE_BYTES = 64 << 20  # one kernel message; a larger one drops the kernel's connection


class BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse messages over MAX_MESSAGE_BYTES (zmq's MAXMSGSIZE
    disconnects the sender), so that no single message from the kernel is held in full."""

    @default("context")
    def _context_default(self):
        self._created_context = True
        ctx = zmq.asyncio.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        return ctx


def _content_bytes(content) -> int:
    """About how many bytes an output message's content holds (text, data, tracebacks)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):
        return sum(len(str(k)) + _content_bytes(v) for k, v in content.items())
    if isinstance(content, (list, tuple)):
        return sum(_content_bytes(v) for v in content)
    return 8


ERROR_CHARS, ERROR_LINES = 1000, 3  # what is kept of an exception a cell raised past the output cap


class CappedClient(NotebookClient):
    """nbclient that keeps at most `cap_bytes` of output per cell and `total_cap_bytes` in the
    whole notebook (thousands of added cells, each printing up to the per-cell cap, must not
    make the grader hold gigabytes). Display updates and widget traffic are dropped: nothing a
    grade reads, and each could replace a small output by a huge one without being counted."""

    cap_bytes = 256 * 1024
    total_cap_bytes = 4 * 1024 * 1024

    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type", "")
        if kind == "update_display_data" or kind.startswith("comm"):
            return None
        content = msg.get("content")
        if isinstance(content, dict) and content.get("transient"):
            content["transient"] = None  # no display ids: nothing can be updated in place later
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        used = getattr(self, "_used", {})
        self._used = used
        total = sum(used.values())
        size = _content_bytes(msg.get("content", {}))
        if used.get(cell_index, 0) + size > self.cap_bytes or total + size > self.total_cap_bytes:
            if cell_index not in getattr(self, "_noted", set()):
                self._noted = getattr(self, "_noted", set()) | {cell_index}
                which = (f"{self.cap_bytes // 1024} KiB in this cell" if used.get(cell_index, 0) + size > self.cap_bytes
                         else f"{self.total_cap_bytes // 1024} KiB in the notebook")
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=f"[grader: output beyond {which} dropped]\n"))
            content = msg.get("content")
            if msg.get("msg_type") == "error" and isinstance(content, dict) and cell_index not in getattr(self, "_errored", set()):
                # the exception a cell raised is kept, cut short and once a cell (a kernel may send
                # any number): the diagnostics name it, where a cell that printed past the cap
                # would otherwise fail with no word of why
                self._errored = getattr(self, "_errored", set()) | {cell_index}
                tb = content.get("traceback")
                msg = {**msg, "content": {"ename": str(content.get("ename", ""))[:200],
                                          "evalue": str(content.get("evalue", ""))[:ERROR_CHARS],
                                          "traceback": [str(line)[:300] for line in
                                                        (tb[-ERROR_LINES:] if isinstance(tb, list) else [])]}}
                return super().output(outs, msg, display_id, cell_index)
            return None
        used[cell_index] = used.get(cell_index, 0) + size
        return super().output(outs, msg, display_id, cell_index)


def _error_message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip()
            return f"{out.get('ename', 'Error')}: {value}".rstrip(": ")[:1000]
    return ""


def _bootstrap(folder: Path) -> str:
    """Code the grader runs in the kernel before any other cell: install the agent."""
    return ("def _dlcourse_grader_boot():\n"
            "    ns = {}\n"
            f"    exec(compile({AGENT_SOURCE!r}, '<grader agent>', 'exec'), ns)\n"
            f"    return ns['install']({str(folder)!r}, get_ipython().user_ns, {WIRE_SOURCE!r})\n"
            "__dlcourse_grader__ = _dlcourse_grader_boot()\n"
            "del _dlcourse_grader_boot\n")


class DiskWatch(threading.Thread):
    """Where no tmpfs quota is possible: stop the kernel once its work directory is over quota."""

    def __init__(self, workdir: Path, limit_bytes: int, kill):
        super().__init__(daemon=True)
        self.workdir, self.limit, self.kill = workdir, limit_bytes, kill
        self.tripped = False
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.25):
            if directory_bytes(self.workdir) > self.limit:
                self.tripped = True
                self.kill()
                return


class CpuWatch(threading.Thread):
    """Time limits that do not depend on how busy the machine is: stop the kernel once the cell
    (or test) being run has used more CPU time than its limit, or has *waited* longer than
    `WALL_FACTOR` times its limit.

    A correct cell that needs 8 s of CPU needs 8 s whether the machine is quiet or busy with
    other gradings; on the wall clock it may take 30 s on a busy one. Waiting is what is left of
    the wall clock once the CPU time and the time spent ready to run but queued for a core are
    taken away (for the kernel's processes, and in a test also for the grader's own thread,
    which computes the references meanwhile): a `time.sleep` or a blocked read accrues it, a
    crowded machine does not.
    """

    def __init__(self, km, kill):
        super().__init__(daemon=True)
        self.km, self.kill = km, kill
        self.limit, self.wait_limit, self.label, self.tripped = math.inf, math.inf, "", ""
        self.base = (0.0, 0.0, 0.0, 0.0, 0.0)
        self.grader = False
        self.stopped = threading.Event()

    def sample(self) -> tuple[float, float, float, float, float]:
        """(wall clock, kernel CPU, kernel run-queue wait, grader run-queue wait, grader CPU), in seconds."""
        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        cpu, delay = process_tree_times(proc.pid) if proc is not None else (0.0, 0.0)
        return time.monotonic(), cpu, delay, own_run_delay(), time.process_time()

    def spent(self, now=None) -> tuple[float, float]:
        """(CPU seconds, seconds waited) since `begin`."""
        wall, cpu, delay, grader_delay, grader_cpu = now or self.sample()
        w0, c0, d0, gd0, gc0 = self.base
        # in a test the kernel also waits while the grader computes the references: not its waiting
        busy = (delay - d0) + ((grader_delay - gd0) + (grader_cpu - gc0) if self.grader else 0.0)
        return cpu - c0, max(0.0, (wall - w0) - (cpu - c0) - busy)

    def begin(self, label: str, limit: float, grader: bool = False) -> None:
        self.limit = math.inf  # (never judged against the previous cell's base)
        self.grader, self.label = grader, label
        self.base = self.sample()
        self.wait_limit = WALL_FACTOR * limit
        self.limit = limit

    def end(self) -> tuple[float, float]:
        """Stop judging; (CPU seconds, seconds waited) since `begin`."""
        limit, self.limit = self.limit, math.inf
        return self.spent() if limit != math.inf else (0.0, 0.0)

    def run(self):
        while not self.stopped.wait(0.5):  # (a /proc scan takes a few ms: twice a second is plenty)
            limit = self.limit
            if limit == math.inf:
                continue
            cpu, waited = self.spent()
            if self.limit == math.inf:
                continue
            if cpu > limit:
                self.tripped = f"{self.label} used more than {limit:.0f} s of CPU time (the time limit)"
            elif waited > self.wait_limit:
                self.tripped = (f"{self.label} waited more than {self.wait_limit:.0f} s without computing (the time "
                                f"limit for waiting: sleep, input or a blocked read)")
            else:
                continue
            self.kill()
            return


# ---------------------------------------------------------------- one submission
def execute(nb: nbformat.NotebookNode, graded: list[GradedCell], workdir: Path, *, limits: Limits,
            level: str, hide: list[Path], threads: int = 1, students: set[str] | None = None,
            library: Path | None = None, withheld: tuple[str, ...] = (), secret_seed: int = 0,
            prestart: bool = False) -> Execution:
    """Run `nb` (restored, parameters injected): student code in a sandboxed kernel, the
    graded cells in this process. Returns per-test results, diagnostics and review flags.

    `workdir` is a new, empty, private directory; the kernel runs in it, or in that of a spare
    kernel this worker started for it (`autograder.spare`). With `prestart`, the kernel for the
    worker's next notebook is started while this one runs."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    start = time.monotonic()
    students = students if students is not None else set()
    roles = cell_roles(nb, graded, students)
    by_index = {g.index: g for g in graded}
    tests = {g.grade_id: TestResult(g.grade_id, g.points, 0.0, "not run", "the notebook stopped before this test")
             for g in graded}
    diags: list[dict] = []
    # the submitted code, by grade_id (solution cells) or "your added cell N"
    sources = {(nbgrader_meta(c).get("grade_id") or _label(c, i)): c.source
               for i, c in enumerate(nb.cells) if roles[i] == "student"}
    # names the tests read from instructor cells (constants, data, helper classes): a student
    # cell that rebinds one is worth a look
    test_sources = [c.source for i, c in enumerate(nb.cells) if roles[i] == "test"]
    read_by_tests = set().union(set(), *map(loaded_names, test_sources)) - set().union(set(), *map(bound_names, test_sources))
    instructor_names = set().union(set(), *[bound_names(c.source) for i, c in enumerate(nb.cells)
                                            if roles[i] in ("both", "kernel") and "setup" not in c.metadata.get("tags", [])])
    flags = review(sources, withheld, (instructor_names & read_by_tests) - students)
    # what kernel-side instructor cells make for the tests (a probe model, a data helper): the
    # tests take it as it was when that cell ran, never as a later student cell rebound it
    pinned = (instructor_names & read_by_tests) - students
    hidden_text = set().union(set(), *map(testrun.hidden_lines, test_sources))

    taken = spares.take(level, limits, hide, threads, library)
    if taken is not None:  # a kernel started for this notebook while the previous one ran
        km, spare_dir, mounted = taken
        workdir.rmdir()
        workdir = spare_dir
    else:
        km, mounted = spares.new_manager(workdir, limits=limits, level=level, hide=hide, threads=threads,
                                         library=library)
    try:
        client = CappedClient(nb, km=km, timeout=limits.cell_timeout, allow_errors=True, record_timing=False,
                              startup_timeout=120, shell_timeout_interval=1, iopub_timeout=4, shutdown_kernel="immediate")
        client.cap_bytes = limits.output_kb * 1024
        client.total_cap_bytes = limits.total_output_kb * 1024
        channel = KernelChannel(client, workdir / ".grader")
    except BaseException:  # nothing may leave a kernel or a work directory (a tmpfs) behind
        _kill(km)
        release_workdir(workdir, mounted)
        raise
    ns = GraderNamespace(channel)
    ns["student"] = Student(channel, sources)
    ns["secret_seed"] = secret_seed
    watch = None
    if not mounted:
        watch = DiskWatch(workdir, limits.disk_mb * 1024 * 1024, lambda: _hard_kill(km))
    cpu = CpuWatch(km, lambda: _hard_kill(km))
    cpu_spent, waited = 0.0, 0.0  # the kernel's CPU seconds, and its waiting, in the notebook's cells and tests
    stopped, grader_error = "", ""
    idx, cell = -1, None
    try:
        with client.setup_kernel():
            if watch is not None:
                watch.start()
            cpu.start()
            # the agent first, before any student code: nothing depends on it staying intact. Its
            # time is the grader's, not the student's: it gets its own limit, never the cell limit
            # (importing torch in a new kernel on a loaded machine can take longer than a cell may)
            channel.deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
            client.timeout = BOOTSTRAP_TIMEOUT
            msg_id = client.kc.execute(_bootstrap(channel.folder), silent=True, store_history=False)
            try:
                client.wait_for_reply(msg_id, nbformat.v4.new_code_cell("# the grader's agent"))
            except CellTimeoutError:
                raise RuntimeError(f"the kernel did not load the grader's agent within {BOOTSTRAP_TIMEOUT} s") from None
            if prestart:
                spares.prestart(workdir.parent, limits=limits, level=level, hide=hide, threads=threads, library=library)
            for idx, cell in enumerate(nb.cells):
                role = roles[idx]
                if role == "markdown":
                    continue
                remaining = limits.notebook_timeout - cpu_spent
                wait_left = WALL_FACTOR * limits.notebook_timeout - waited
                hard_left = HARD_WALL_FACTOR * limits.notebook_timeout - (time.monotonic() - start)
                if remaining <= 0 or wait_left <= 0 or hard_left <= 0:
                    stopped = (f"the notebook used more than its time limit of {limits.notebook_timeout:.0f} s of CPU time"
                               if remaining <= 0 else f"the notebook waited more than {WALL_FACTOR * limits.notebook_timeout:.0f} s "
                               "without computing" if wait_left <= 0 else "the notebook ran longer than its last wall-clock "
                               f"limit of {HARD_WALL_FACTOR * limits.notebook_timeout:.0f} s") + f" before cell {idx}"
                    break
                budget = max(1.0, min(limits.cell_timeout, remaining))
                hard = max(1.0, min(HARD_WALL_FACTOR * budget, hard_left))  # a last bound (the watch enforces the rest)
                if role == "test":
                    g = by_index[idx]
                    channel.deadline = time.monotonic() + hard
                    t0 = time.monotonic()
                    cpu.begin(f"the test {g.grade_id!r}", budget, grader=True)
                    outcome = testrun.run_test(ns, cell.source, g.grade_id, channel, redact=hidden_text)
                    used, idle = cpu.end()
                    cpu_spent, waited = cpu_spent + used, waited + idle
                    took = time.monotonic() - t0
                    if cpu.tripped:
                        outcome.message = f"{outcome.message}: {cpu.tripped}; the kernel was stopped"
                    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=outcome.output)] if outcome.output else []
                    if outcome.passed:
                        tests[g.grade_id] = TestResult(g.grade_id, g.points, g.points, "passed", "", round(took, 3))
                    else:
                        tests[g.grade_id] = TestResult(g.grade_id, g.points, 0.0, "failed", outcome.message, round(took, 3))
                        cell.outputs.append(nbformat.v4.new_output("stream", name="stderr",
                                                                   text=f"[grader] failed: {outcome.message}\n"))
                    if outcome.kernel_dead:
                        stopped = f"the kernel stopped in {g.grade_id!r}: {outcome.message}"
                        break
                    continue
                channel.finish()  # the agent's request loop (if the last test left one) ends before a cell runs
                client.timeout = int(math.ceil(hard))
                cpu.begin(f"{_label(cell, idx)} (cell {idx})", budget)
                try:
                    client.execute_cell(cell, idx)
                finally:
                    used, idle = cpu.end()
                    cpu_spent, waited = cpu_spent + used, waited + idle
                ns.forget_fetched()
                if role == "kernel":
                    _pin_instructor_names(ns, channel, cell, pinned)
                err = _error_message(cell)
                if err:
                    diags.append({"cell": _label(cell, idx), "severity": "warning", "section": _section(nb, idx),
                                  "message": f"{_label(cell, idx)} (cell {idx}) raised {err}"})
                if role == "both":
                    try:
                        testrun.run_cell(ns, cell.source, f"<instructor cell {idx}>")
                    except Exception as exc:  # noqa: BLE001 - the instructor's cell: a grader problem
                        grader_error = f"instructor cell {idx} failed in the grader's process: {type(exc).__name__}: {exc}"
                        stopped = grader_error
                        break
    except CellTimeoutError:
        stopped = f"{_label(cell, idx)} (cell {idx}) ran longer than its last wall-clock limit of {client.timeout} s"
    except DeadKernelError:
        stopped = (f"{cpu.tripped}; the kernel was stopped" if cpu.tripped
                   else f"the kernel died in {_label(cell, idx)} (cell {idx}){_exit_code(km)}")
    except RuntimeError as exc:  # kernel failed to start, or died while starting
        tail = km.log_tail(600)
        stopped = f"the kernel could not run (cell {idx}): {exc}" + (f"; its last output: {tail}" if tail else "")
        if idx < 0:  # before any cell of the notebook: nothing the student wrote had run
            grader_error = stopped
    finally:
        cpu.stopped.set()
        if watch is not None:
            watch.stopped.set()
        _kill(km)
        channel.close()
        release_workdir(workdir, mounted)
    if watch is not None and watch.tripped:
        stopped = f"the notebook wrote more than {limits.disk_mb} MiB to disk (in {_label(cell, idx)}); the kernel was stopped"
    if stopped:
        diags.append({"cell": _label(cell, idx) if cell is not None else "-", "message": stopped, "severity": "error"})
        for t in tests.values():
            if t.status == "not run":
                t.message = "not run: " + stopped
    for i, cell in enumerate(nb.cells):
        if roles[i] == "test":  # the copy kept in the grading folder holds no hidden test
            cell.source = testrun.without_hidden(cell.source)
    for note in list(dict.fromkeys(channel.notes))[:10]:
        flags.append(note[len("test flag: "):] if note.startswith("test flag: ") else f"the kernel sent {note}")
    return Execution(list(tests.values()), diags, flags, time.monotonic() - start, nb, grader_error, channel.requests)


def _pin_instructor_names(ns: GraderNamespace, channel: KernelChannel, cell, wanted: set[str]) -> None:
    """After an instructor cell ran in the kernel: fetch the names it bound that tests read."""
    if "setup" in cell.metadata.get("tags", []):
        return
    channel.deadline = time.monotonic() + 30  # (the last test cell's deadline has passed)
    for name in sorted(bound_names(cell.source) & wanted):
        if name in ns and name not in ns.fetched:
            continue  # the grader's own value (an instructor cell it ran itself)
        try:
            ns.pin(name, channel.request("get", label=name, name=name))
        except Exception:  # noqa: BLE001 - not defined (the cell failed): the test will say so
            if channel.dead:
                return


def _section(nb, idx: int) -> str:
    """The heading the student sees above cell `idx` (the notebook's instructor headings), or ""."""
    from autograder.questions import HEADING, _plain

    for cell in reversed(nb.cells[:idx]):
        if cell.cell_type == "markdown" and not nbgrader_meta(cell).get("solution"):
            for line in reversed(cell.source.splitlines()):
                m = HEADING.match(line)
                if m:
                    return _plain(m.group(1))
    return ""


def _label(cell, idx: int) -> str:
    if cell is None:
        return "-"
    gid = nbgrader_meta(cell).get("grade_id")
    if gid:
        return f"cell {gid!r}"
    if cell.metadata.get(STUDENT_CELL_KEY):
        return f"your added cell {idx}"
    return f"cell {idx}"


def _exit_code(km) -> str:
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    code = proc.poll() if proc is not None else None
    if code is None:
        return ""
    if code < 0:
        code = 128 - code
    if code > 128:
        sig = code - 128
        return f" (killed by signal {sig}: {'segmentation fault' if sig == 11 else 'out of memory or killed' if sig == 9 else 'signal'})"
    return f" (the kernel process exited with status {code}: os._exit or exit() in student code)"


def _hard_kill(km) -> None:
    """SIGKILL the kernel's process tree from any thread (bubblewrap takes its children along)."""
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    if proc is not None:
        try:
            proc.kill()
        except OSError:
            pass


def _kill(km) -> None:
    try:
        if km.has_kernel:
            asyncio.get_event_loop().run_until_complete(km.shutdown_kernel(now=True))
    except Exception:
        pass
    km.release_cgroup()

