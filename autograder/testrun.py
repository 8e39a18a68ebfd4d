"""Run one graded test cell in the grader's process and say, in the student's terms, how it went.

A test cell (its visible asserts and its hidden tests together) is compiled and executed
here, in a `GraderNamespace`, never in the student's kernel. It passes when it runs to its
end without an exception. When it fails, the message names what failed without showing the
hidden test's source or an expected value:

  - an assertion with a message: the author's message (written for students), plus the
    student call it was checking when the message does not already name it;
  - a bare assertion: the line itself when it is one of the visible tests the student can
    read, otherwise "a hidden check failed" and the call being checked;
  - the student's code raised: which call, which exception, and the student's own line;
  - a call that did not finish, a kernel that died, an answer that is not plain data.
"""
from __future__ import annotations

import ast
import contextlib
import io
import traceback
from dataclasses import dataclass

from autograder.notebook_checks import BEGIN_HIDDEN, END_HIDDEN
from autograder.remote import (BadReply, KernelDied, KernelUnresponsive, NotPlainData, StudentCodeError)

OUTPUT_CAP = 64 * 1024


@dataclass
class Outcome:
    passed: bool
    message: str = ""
    output: str = ""
    kernel_dead: bool = False


def hidden_line_numbers(source: str) -> set[int]:
    """1-based numbers of the lines inside hidden-test blocks (markers included)."""
    hidden, inside = set(), False
    for no, line in enumerate(source.splitlines(), start=1):
        s = line.strip()
        if s.startswith(BEGIN_HIDDEN):
            inside = True
        if inside:
            hidden.add(no)
        if s.startswith(END_HIDDEN):
            inside = False
    return hidden


def without_hidden(source: str) -> str:
    """The cell as the student's release shows it: hidden-test blocks replaced by a marker
    (for the autograded copies an instructor might hand back)."""
    hidden = hidden_line_numbers(source)
    kept, marked = [], False
    for no, line in enumerate(source.splitlines(), start=1):
        if no in hidden:
            if not marked:
                kept.append(line[: len(line) - len(line.lstrip())] + "# (hidden tests removed)")
            marked = True
        else:
            kept.append(line)
            marked = False
    return "\n".join(kept)


def hidden_lines(source: str) -> set[str]:
    """The text of the hidden tests' own lines (for `_redact`, the last safety net)."""
    lines = source.splitlines()
    return {lines[no - 1].strip() for no in hidden_line_numbers(source)} - {""}


class _Capped(io.StringIO):
    def write(self, s):
        if self.tell() < OUTPUT_CAP:
            return super().write(s[: OUTPUT_CAP - self.tell()])
        return len(s)


def run_cell(ns: dict, source: str, filename: str) -> str:
    """Execute trusted code (an instructor cell) in `ns`; return what it printed. Raises on error."""
    out = _Capped()
    code = compile(source, filename, "exec")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(code, ns)  # noqa: S102 - the instructor's own cell, in the grader's process
    return out.getvalue()


def run_test(ns, source: str, grade_id: str, channel, redact: set[str] = frozenset()) -> Outcome:
    """Run a graded test cell; never raises for anything the student's code did."""
    filename = f"<test {grade_id}>"
    out = _Capped()
    channel.last_call, channel.last_call_line, channel.test_filename = "", None, filename
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:  # the instructor's test: a grader problem, reported as such
        raise RuntimeError(f"test cell {grade_id} does not compile: {exc}") from exc
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(code, ns)  # noqa: S102 - instructor test code, in the grader's process
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = describe_failure(exc, source, filename, channel)
        return Outcome(False, _redact(message, redact), out.getvalue(), kernel_dead=channel.dead)
    return Outcome(True, "", out.getvalue())


def _failing_line(exc: BaseException, filename: str) -> int | None:
    """The line of the test cell's own code (its outermost frame) where the failure surfaced."""
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            return lineno
    return None


def _related(source: str, failing: int | None, call: int | None) -> bool:
    """Whether the last call into the kernel belongs to the failing check: made in the same
    top-level statement (a loop, a helper call) or just before it (`got = f(x)`, then assert)."""
    if failing is None or call is None:
        return False
    if 0 <= failing - call <= 3:
        return True
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for stmt in tree.body:
        if stmt.lineno <= failing <= (stmt.end_lineno or stmt.lineno):
            return stmt.lineno <= call <= (stmt.end_lineno or stmt.lineno)
    return False


def describe_failure(exc: BaseException, source: str, filename: str, channel) -> str:
    lineno = _failing_line(exc, filename)
    call = channel.last_call if _related(source, lineno, channel.last_call_line) else ""
    context = f" (while checking {call})" if call else ""
    if isinstance(exc, StudentCodeError):
        return str(exc)
    if isinstance(exc, KernelUnresponsive):
        return f"{exc}"
    if isinstance(exc, KernelDied):
        return f"the kernel died{' while running ' + call if call else ''}: the student code crashed or was killed"
    if isinstance(exc, BadReply):
        return f"{exc}: the notebook's code may have changed how the kernel runs code"
    if isinstance(exc, NotPlainData):
        return f"{exc}{context}"
    if isinstance(exc, NameError):
        name = getattr(exc, "name", None) or str(exc)
        return f"{name!s} is not defined in your notebook (run the cell that defines it, and keep the name the task asks for)"
    hidden = hidden_line_numbers(source)
    text = str(exc).strip()
    if isinstance(exc, AssertionError):
        if not text:
            if lineno is not None and lineno not in hidden:
                line = source.splitlines()[lineno - 1].strip()
                return f"failed: {line}{context}"
            return f"a hidden check failed{context}"
        if call and call.split("(")[0] not in text:
            return f"{text}{context}"
        return text
    kind = type(exc).__name__
    # an error of the test's own computation (a reference model refusing the student's weights, a
    # shape mismatch): its first line says what; the rest (key lists, reprs of the grader's
    # objects) means nothing to the student
    text = (text.splitlines() or [""])[0]
    text = text if len(text) <= 300 else text[:297] + "..."
    where = ""
    if lineno is not None and lineno not in hidden:
        where = f" in: {source.splitlines()[lineno - 1].strip()}"
    return f"{kind}: {text}{where}{context}" if text else f"{kind}{where}{context}"


def _redact(message: str, lines: set[str]) -> str:
    """Safety net: never let a line that exists only in hidden tests reach feedback."""
    for line in lines:
        if len(line) >= 12 and line in message:
            message = message.replace(line, "[hidden test]")
    return message[:3000]
