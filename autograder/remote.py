"""The grader's side of the channel to a student's kernel: requests, proxies, a namespace.

Hidden tests run in the grader's own process. In their namespace a name the grader does
not define itself (a student's function, class or variable) is looked up in the student's
kernel: plain data comes back as a copy (a real torch.Tensor, int, dict, ...), anything
else as a `Remote` proxy. Calling a proxy, reading its attributes, indexing it, taking
its len() or iterating it sends a request to the kernel and returns the answer the same
way. So a hidden test reads like ordinary asserts against the student's names, but every
comparison, count and reference computation happens here, where student code cannot
reach; the kernel can only ever send wrong data, or none.

    KernelChannel   - one request/reply at a time over files in a folder of the kernel's work
                      directory, reached only through a descriptor opened before the kernel
                      started (nothing the kernel plants there can redirect the grader);
                      the agent's loop runs as one cell execution and asks for each next
                      request on the kernel's stdin channel
    Remote          - a proxy for an object that stays in the kernel
    GraderNamespace - a test's globals: the grader's names first, then the kernel's
    Student         - helpers a test uses explicitly (`student.grad`, `student.loader`, ...)
"""
from __future__ import annotations

import builtins
import os
import secrets
import sys
import time
from pathlib import Path
from queue import Empty

from autograder import wire
from autograder.files import Missing, NotReadable, read_regular

MAX_REPLY_BYTES = 512 << 20  # 512 MiB, counted again after decoding: far above any fast-profile state dict
DRAIN_SECONDS = 2.0           # at most this long reading the kernel's broadcast output after a request
DRAIN_MESSAGES = 10_000       # ... and at most this many messages
FINISH_SECONDS = 5.0          # at most this long waiting for the agent's request loop to end
# how much of the student's own exception message reaches feedback: enough to read the error,
# too little to carry out the hidden inputs the kernel was sent
MAX_STUDENT_MESSAGE = 240


# ---------------------------------------------------------------- errors a test can meet
class StudentCodeError(Exception):
    """The student's code raised while the grader called it.

    `StudentCodeError.of(call, error)` also derives from the builtin exception the student's
    code raised (ValueError, IndexError, ...), so a test's `except ValueError:` works as it
    would in the notebook.
    """

    def __init__(self, call: str, error: dict):
        self.call, self.error = call, error
        frames = error.get("frames") or []
        where = f" (at: {frames[-1]['line']})" if frames and frames[-1].get("line") else ""
        super().__init__(f"{call} raised {error.get('type', 'an error')}: {error.get('message', '')}{where}")

    _kinds: dict = {}

    @classmethod
    def of(cls, call: str, error: dict) -> "StudentCodeError":
        name = error.get("type", "")
        base = getattr(builtins, name, None)
        if not (isinstance(base, type) and issubclass(base, Exception)) or issubclass(base, (StopIteration,)):
            return cls(call, error)
        kind = cls._kinds.get(name)
        if kind is None:
            try:
                kind = type(f"Student{name}", (cls, base), {"__init__": cls.__init__, "__str__": Exception.__str__})
            except TypeError:  # a builtin whose layout cannot be combined (OSError family)
                kind = cls
            cls._kinds[name] = kind
        return kind(call, error)


class KernelUnresponsive(Exception):
    """A request did not finish within the time left for the test."""


class KernelDied(Exception):
    """The kernel process is gone."""


class BadReply(Exception):
    """The kernel answered with something that is not a well-formed reply."""


class NotPlainData(TypeError):
    """A test tried to use an object from the kernel as if it were plain data."""


class ForbiddenUse(AssertionError):
    """The student's code did what the test forbids (`student.forbid`) while answering a call."""


# ---------------------------------------------------------------- describing calls for feedback
def summarize(value, depth: int = 0) -> str:
    """A short, student-readable description of an argument: shapes and dtypes, small values."""
    import torch

    if isinstance(value, torch.Tensor):
        dt = str(value.dtype).replace("torch.", "")
        return f"{dt}[{', '.join(str(s) for s in value.shape)}]" if value.dim() else f"{dt} scalar {value.item()!r}"
    if isinstance(value, Remote):
        return value._label
    if isinstance(value, (list, tuple)):
        if depth > 0 or len(value) > 6:
            return f"{type(value).__name__} of {len(value)}"
        inner = ", ".join(summarize(v, depth + 1) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return f"dict of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def call_label(fn_label: str, args, kwargs) -> str:
    parts = [summarize(a) for a in args] + [f"{k}={summarize(v)}" for k, v in kwargs.items()]
    return f"{fn_label}({', '.join(parts)})"


# ---------------------------------------------------------------- the channel
class KernelChannel:
    """Requests to the agent in one kernel, one at a time.

    `client` is the nbclient NotebookClient that runs the notebook (its kernel client is
    reused); `folder` is a directory both sides can reach (inside the kernel's work
    directory), which must exist and must not yet have been reachable by student code:
    it is opened here, once, and every later read, write and removal goes through that
    descriptor. The kernel may rename the folder, replace it by a link or plant links in
    it: the grader still writes only into the directory it opened, creates each request
    exclusively under a fresh unguessable name, and reads regular files only.
    `deadline` (time.monotonic() value) bounds every request; the executor sets it per
    test cell, and calls `finish` before it runs a cell in the kernel.
    """

    def __init__(self, client, folder: Path):
        self.client = client
        self.folder = Path(folder)
        self.dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.count = 0
        self.deadline = float("inf")
        self.last_call = ""
        self.notes: list[str] = []
        self.dead = False
        self.requests = 0
        self.test_filename = ""            # the test cell being run (set by autograder.testrun)
        self.forbid: dict | None = None    # what calls may not use (set by `student.forbid`)
        self.last_call_line: int | None = None  # its line that made the last labelled request
        self.loop: str | None = None       # the msg_id of the agent's running request loop, if any

    # -- one round trip
    def request(self, op: str, label: str = "", **fields):
        if self.dead:
            raise KernelDied("the kernel is no longer running")
        if label:
            self.last_call = label
            self.last_call_line = self._test_line()
        self.count += 1
        self.requests += 1
        n = secrets.token_hex(8)  # unguessable: nothing can be planted at the name beforehand
        if self.forbid:
            fields["forbid"] = self.forbid
        data = wire.dumps({"op": op, **fields}, on_other=self._encode_other)
        self._write_request(n, data, label or op)
        reply = self._run(n, label or op)
        header = self._read_reply(n, reply, label or op)
        for note in header.get("notes", [])[:20]:
            if isinstance(note, str):
                self.notes.append(f"{label or op}: {note[:200]}")
        if header.get("status") == "error":
            error = header.get("error") if isinstance(header.get("error"), dict) else {}
            raise StudentCodeError.of(label or op, _clean_error(error))
        if header.get("status") != "ok":
            raise BadReply(f"the kernel sent a malformed reply to {label or op}")
        if self.forbid:
            used = header.get("used")
            if type(used) is not list:  # an agent that does not report cannot be believed
                raise BadReply(f"the kernel did not report what {label or op} used")
            if used:
                raise ForbiddenUse(f"{label or op} used {', '.join(str(u)[:60] for u in used[:5])}, "
                                   "which this task forbids")
        return header["value"]

    def _write_request(self, n: str, data: bytes, what: str) -> None:
        """Create req-N in the opened folder: a new file or nothing (never through a link)."""
        try:
            fd = os.open(f"req-{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self.dir_fd)
        except OSError as exc:  # the kernel removed or filled its folder: its own loss
            raise BadReply(f"the grader could not hand the request for {what} to the kernel "
                           f"({exc.strerror}): the notebook's code changed the grader's folder") from None
        try:
            os.fchmod(fd, 0o644)  # the kernel may run as another user
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the folder's descriptor (after the kernel is gone)."""
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _test_line(self) -> int | None:
        """The line of the test cell (its outermost frame) that is making this request."""
        line, frame = None, sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == self.test_filename:
                line = frame.f_lineno
            frame = frame.f_back
        return line

    def _encode_other(self, obj):
        if isinstance(obj, Remote):
            if obj._channel is not self:
                raise NotPlainData("an object from another kernel cannot be sent here")
            return {"$": "handle", "id": obj._id, "type": obj._type}
        raise NotPlainData(f"cannot send a {type(obj).__name__} to the student's kernel: "
                           "send tensors, numbers, strings, lists or dicts, or objects that came from the kernel")

    def _run(self, n: str, what: str) -> dict:
        """Hand request `n` to the kernel and wait for its answer, until the deadline.

        The first request after a cell starts the agent's loop (`serve_all`: one execution of
        an expression after an empty cell, which does not pass through the input transformers,
        history or cell events that the notebook's code may have changed); each next request
        answers the input request by which the agent asks for more. Returns the loop's execute
        reply where the loop ended with this request, else {}."""
        from jupyter_core.utils import run_sync

        kc = self.client.kc
        allowed = max(0.0, self.deadline - time.monotonic())
        if self.loop is None:
            self.loop = kc.execute("", silent=True, store_history=False, allow_stdin=True, stop_on_error=False,
                                   user_expressions={"r": f"__dlcourse_grader__.serve_all({n!r})"})
        else:
            kc.input(n)
        try:
            got = run_sync(self._next)(what)
        except KernelDied:
            self.dead = True
            raise
        if got is None:
            # interrupt (message mode: a signal would not cross bubblewrap) and give it a moment
            try:
                run_sync(self.client.km.interrupt_kernel)()
                self.deadline = time.monotonic() + 5
                if run_sync(self._next)(what) == "asks":
                    self.finish()
                got = None if self.loop is not None else {}
            except Exception:  # noqa: BLE001 - any failure here means the kernel is unusable
                got = None
            if got is None:
                self.dead = True
            raise KernelUnresponsive(f"{what} did not finish within {allowed:.0f} s of wall-clock time, the time left "
                                     "for this test (it waited rather than computed)"
                                     + ("; the kernel was stopped" if self.dead else ""))
        run_sync(self._drain)()
        return {} if got == "asks" else got

    async def _next(self, what: str):
        """Wait for the agent's loop to move on: "asks" (it answered and asks for the next
        request), the loop's execute reply (it ended), or None at the deadline."""
        import zmq
        import zmq.asyncio
        from jupyter_core.utils import ensure_async

        kc = self.client.kc
        poller = zmq.asyncio.Poller()
        poller.register(kc.stdin_channel.socket, zmq.POLLIN)
        poller.register(kc.shell_channel.socket, zmq.POLLIN)
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None
            ready = dict(await poller.poll(int(1000 * min(0.5, left)) + 1))
            if not ready:
                if not await ensure_async(kc.is_alive()):
                    raise KernelDied(f"the kernel died while running {what}")
                continue
            if kc.stdin_channel.socket in ready:
                msg = await kc.stdin_channel.get_msg(timeout=0)
                if msg.get("msg_type") == "input_request" and msg.get("parent_header", {}).get("msg_id") == self.loop:
                    return "asks"
            if kc.shell_channel.socket in ready:
                msg = await kc.shell_channel.get_msg(timeout=0)
                if msg.get("parent_header", {}).get("msg_id") == self.loop:
                    self.loop = None
                    return msg

    async def _drain(self):
        # what the kernel broadcast meanwhile is nobody's: drop it, within a bound of time and
        # count (a kernel thread that publishes without end must not keep the grader here)
        from jupyter_core.utils import ensure_async

        kc = self.client.kc
        stop = time.monotonic() + DRAIN_SECONDS
        for _ in range(DRAIN_MESSAGES):
            if time.monotonic() > stop:
                return
            try:
                await ensure_async(kc.iopub_channel.get_msg(timeout=0))
            except Empty:
                return

    def finish(self) -> None:
        """End the agent's loop, if one runs (before a cell runs in the kernel): name no
        request and wait for the loop's execute reply; a loop that asks on regardless, or
        stays silent, is interrupted. Each wait is bounded (FINISH_SECONDS): a kernel that
        never ends its loop only delays, or stops, its own next cell."""
        from jupyter_core.utils import run_sync

        if self.loop is None or self.dead:
            self.loop = None
            return
        try:
            self.client.kc.input("")
            self.deadline = time.monotonic() + FINISH_SECONDS
            if run_sync(self._next)("the end of the grader's requests") is not None and self.loop is None:
                return
            run_sync(self.client.km.interrupt_kernel)()
            self.deadline = time.monotonic() + FINISH_SECONDS
            while self.loop is not None and run_sync(self._next)("the end of the grader's requests") == "asks":
                self.client.kc.input("")
        except KernelDied:
            self.dead = True
        except Exception:  # noqa: BLE001 - an interrupt that failed: the next cell meets the kernel as it is
            pass
        self.loop = None

    def _read_reply(self, n: str, reply: dict, what: str) -> dict:
        content = reply.get("content", {})
        expr = (content.get("user_expressions") or {}).get("r") or {}
        name = f"rep-{n}"
        try:  # a regular file only: the kernel owns this folder and could plant a link or a FIFO
            data = read_regular(name, MAX_REPLY_BYTES, dir_fd=self.dir_fd)
        except Missing:
            if isinstance(expr, dict) and expr.get("status") == "error":
                raise BadReply(f"the kernel could not run the grader's request for {what} "
                               f"({str(expr.get('ename', 'error'))[:80]})") from None
            raise BadReply(f"the kernel did not answer the grader's request for {what}") from None
        except NotReadable as exc:
            raise BadReply(f"the kernel's answer for {what} {exc}") from None
        for stale in (name, f"req-{n}"):
            try:  # the entries themselves (a link is removed, never followed)
                os.unlink(stale, dir_fd=self.dir_fd)
            except OSError:
                pass
        try:
            return wire.loads(data, make_handle=lambda hid, tname: Remote(self, hid, tname, _short(tname)),
                              max_bytes=MAX_REPLY_BYTES)
        except wire.WireError as exc:
            raise BadReply(f"the kernel's answer for {what} is not plain data ({exc})") from None


def _short(type_name: str) -> str:
    return f"<{type_name.rsplit('.', 1)[-1]} object>"


def _clean_error(error: dict) -> dict:
    """Keep only well-typed, bounded fields of an error the kernel reported."""
    frames = []
    for f in error.get("frames", [])[:5] if isinstance(error.get("frames"), list) else []:
        if isinstance(f, dict):
            frames.append({"function": str(f.get("function", ""))[:80], "line": str(f.get("line", ""))[:300]})
    return {"type": str(error.get("type", "Error"))[:120], "message": str(error.get("message", ""))[:MAX_STUDENT_MESSAGE], "frames": frames}


# ---------------------------------------------------------------- proxies
def _mirror_changes(args, kwargs, changed: list, label: str) -> None:
    """Bring the grader's own argument tensors to the state the call left the kernel's copies
    in (in-place changes), so that a check like `x0 = x.clone(); f(x); assert torch.equal(x, x0)`
    sees what the student's function did. Paths come from the kernel: checked, never trusted."""
    import torch

    roots = {"args": dict(enumerate(args)), "kwargs": kwargs}
    for item in changed[:1000]:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not list or not isinstance(item[1], torch.Tensor):
            raise BadReply(f"the kernel sent a malformed answer to {label}")
        path, after = item
        if not 2 <= len(path) <= 3 or path[0] not in roots:
            raise BadReply(f"the kernel sent a malformed answer to {label}")
        target = roots[path[0]]
        try:
            for key in path[1:]:
                target = target[key]
        except (KeyError, IndexError, TypeError):
            raise BadReply(f"the kernel sent a malformed answer to {label}") from None
        if not isinstance(target, torch.Tensor) or target.device.type == "meta":
            continue
        with torch.no_grad():
            if target.shape == after.shape and target.dtype == after.dtype:
                target.copy_(after)
            else:  # resized in place (a leaf that requires grad cannot follow: its values still differ)
                try:
                    target.set_(after.to(device=target.device, dtype=target.dtype).clone())
                except RuntimeError:
                    pass



def _default_device() -> str | None:
    """The device a `with torch.device(...)` block in the test has made the default, if any."""
    import torch

    device = torch.get_default_device()
    return None if device.type == "cpu" else str(device)


class Remote:
    """An object that lives in the student's kernel. Using it sends requests there."""

    __slots__ = ("_channel", "_id", "_type", "_label")

    def __init__(self, channel: KernelChannel, hid: int, type_name: str, label: str):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_label", label)

    def _relabel(self, value, label):
        if isinstance(value, Remote) and value._label.startswith("<"):
            object.__setattr__(value, "_label", label)
        return value

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__") and name not in ("__name__", "__qualname__", "__doc__"):
            raise AttributeError(name)
        label = f"{self._label}.{name}"
        return self._relabel(self._channel.request("getattr", label=label, target=self, name=name), label)

    def __setattr__(self, name, value):
        raise NotPlainData(f"cannot set attributes of {self._label} from the grader "
                           "(use its methods, e.g. load_state_dict)")

    def __call__(self, *args, **kwargs):
        label = call_label(self._label, args, kwargs)
        fields = {}
        device = _default_device()
        if device is not None:  # `with torch.device("meta"): AlexNet()` builds on meta in the kernel too
            fields["default_device"] = device
        reply = self._channel.request("call", label=label, target=self, args=list(args), kwargs=kwargs,
                                      report_args=True, **fields)
        if type(reply) is not dict or set(reply) != {"value", "changed"} or type(reply["changed"]) is not list:
            raise BadReply(f"the kernel sent a malformed answer to {label}")
        _mirror_changes(args, kwargs, reply["changed"], label)
        return self._relabel(reply["value"], label)

    def __getitem__(self, key):
        label = f"{self._label}[{summarize(key)}]"
        return self._relabel(self._channel.request("getitem", label=label, target=self, key=key), label)

    def __len__(self):
        n = self._channel.request("len", label=f"len({self._label})", target=self)
        if type(n) is not int or n < 0:
            raise NotPlainData(f"len({self._label}) is not a non-negative integer")
        return n

    def __iter__(self):
        items = self._channel.request("list", label=f"iterating {self._label}", target=self)
        if type(items) is not list:
            raise NotPlainData(f"iterating {self._label} did not give a list of items")
        return iter(items)

    def __repr__(self):
        return f"<{self._type} in the student's kernel: {self._label}>"

    def _refuse(self, *args):
        raise NotPlainData(f"{self._label} is a {self._type.rsplit('.', 1)[-1]} object, not plain data "
                           "(a number, string, tensor, list or dict); the grader cannot compare or convert it")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __bool__ = __int__ = __float__ = __index__ = __complex__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __matmul__ = _refuse
    __hash__ = object.__hash__


# ---------------------------------------------------------------- a test's namespace
class GraderNamespace(dict):
    """Globals of the grader's test code: its own names first, then the student's kernel.

    Builtins always win (a student's `sum` never replaces the grader's). A kernel value is
    fetched when first read and kept until the kernel runs another cell (`forget_fetched`).
    """

    def __init__(self, channel: KernelChannel, **initial):
        super().__init__(**initial)
        self.channel = channel
        self.fetched: set[str] = set()
        self.missing: set[str] = set()

    def __missing__(self, name):
        if name in builtins.__dict__ or name.startswith("__") or name in self.missing:
            raise KeyError(name)
        try:
            value = self.channel.request("get", label=name, name=name)
        except StudentCodeError as exc:
            if exc.error.get("type") == "NameError":
                self.missing.add(name)
                raise KeyError(name) from None
            raise
        if isinstance(value, Remote):
            object.__setattr__(value, "_label", name)
        dict.__setitem__(self, name, value)
        self.fetched.add(name)
        return value

    def __setitem__(self, name, value):
        self.fetched.discard(name)
        dict.__setitem__(self, name, value)

    def pin(self, name: str, value) -> None:
        """Keep `value` for `name` whatever the kernel binds to the name later: what an
        instructor cell made in the kernel, fetched right after it ran (before any later
        student cell could rebind the name)."""
        self.fetched.discard(name)
        if isinstance(value, Remote):
            object.__setattr__(value, "_label", name)
        dict.__setitem__(self, name, value)

    def forget_fetched(self) -> None:
        """The kernel ran code: values fetched before may be stale."""
        for name in self.fetched:
            self.pop(name, None)
        self.fetched.clear()
        self.missing.clear()


class Student:
    """What a hidden test can ask of the student's kernel beyond calling their names.

    Available in every test cell as `student`. Also there: `secret_seed`, an integer the
    student cannot know (it comes from the grading run's secret and the student's id), for
    data the student's code must not be able to anticipate.
    """

    def __init__(self, channel: KernelChannel, sources: dict[str, str]):
        self._channel = channel
        self._sources = sources

    def source(self) -> dict[str, str]:
        """The submitted code, as the file holds it: {cell label: source} for every solution
        cell and every cell the student added (read by the grader, not by the kernel)."""
        return dict(self._sources)

    def get(self, name: str):
        """The kernel's value of `name` (even where the grader has a name of its own)."""
        return self._channel.request("get", label=name, name=name)

    def loader(self, *tensors, batch_size: int = 64, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        """A torch DataLoader over `tensors`, built in the kernel (for the student's training code)."""
        return self._channel.request("loader", label=f"a DataLoader of {len(tensors[0])} examples",
                                     tensors=list(tensors), batch_size=batch_size, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)

    def generator(self, seed: int):
        """A torch.Generator made in the kernel (a handle: calls that share it share its state)."""
        return self._channel.request("generator", label=f"torch.Generator().manual_seed({seed})", seed=seed)

    def forbid(self, ops=(), autograd: bool = False):
        """A context: calls made inside it fail the test (with `ForbiddenUse`, an AssertionError)
        if the student's code used one of the PyTorch operators `ops` (names as the dispatcher
        knows them: "convolution", "im2col", "max_pool2d_with_indices", "native_batch_norm", ...)
        or, with `autograd=True`, autograd's backward or grad. Decided by what the code did
        during the call, however the operator was reached."""
        import contextlib

        channel = self._channel

        @contextlib.contextmanager
        def context():
            previous = channel.forbid
            channel.forbid = {"ops": sorted(set(ops)), "autograd": bool(autograd)}
            try:
                yield
            finally:
                channel.forbid = previous
        return context()

    def flag(self, message: str) -> None:
        """Report something about this submission for an instructor's look (it does not change
        the score; the test's own assertion does that)."""
        self._channel.notes.append(f"test flag: {message}")

    def seed(self, seed: int) -> None:
        """Seed the kernel's random generators (Python, NumPy, torch)."""
        self._channel.request("seed", label=f"seeding with {seed}", seed=seed)

    def grad(self, fn, *args, wrt=(0,), grad_output=None, **kwargs):
        """Run fn(*args) in the kernel with autograd; return (output, [d sum(output*grad_output) / d args[i]])."""
        label = call_label(getattr(fn, "_label", "function"), args, kwargs)
        out = self._channel.request("grad", label=f"autograd through {label}", target=fn, args=list(args),
                                    kwargs=kwargs, wrt=list(wrt), grad_output=grad_output)
        if not isinstance(out, dict) or "output" not in out or not isinstance(out.get("grads"), list):
            raise NotPlainData(f"autograd through {label} gave no gradients")
        return out["output"], out["grads"]

    def trace(self, module, *args, names=(), **kwargs):
        """Run module(*args) in the kernel; return (output, {submodule name: output shape or None})."""
        label = call_label(getattr(module, "_label", "model"), args, kwargs)
        out = self._channel.request("trace", label=label, target=module, args=list(args), kwargs=kwargs,
                                    names=list(names))
        if not isinstance(out, dict) or not isinstance(out.get("shapes"), dict):
            raise NotPlainData(f"{label} did not report its layer shapes")
        return out["output"], out["shapes"]

    def map(self, fn, calls):
        """Call fn once per (args, kwargs) in `calls`, in one round trip. Returns one
        ("ok", value) or ("error", exception type name) per call."""
        label = f"{getattr(fn, '_label', 'function')} on {len(calls)} inputs"
        out = self._channel.request("map", label=label, target=fn, calls=[[list(a), dict(k)] for a, k in calls])
        if type(out) is not list or len(out) != len(calls):
            raise NotPlainData(f"{label}: wrong number of answers")
        results = []
        for item in out:
            if isinstance(item, dict) and "ok" in item:
                results.append(("ok", item["ok"]))
            elif isinstance(item, dict) and isinstance(item.get("error"), dict):
                results.append(("error", str(item["error"].get("type", "Error"))))
            else:
                raise NotPlainData(f"{label}: malformed answer")
        return results

    def isinstance(self, obj, class_name: str) -> bool:
        """Whether a kernel object's class has `class_name` (e.g. "torch.nn.modules.module.Module")
        among its bases, as the kernel reports it."""
        if not isinstance(obj, Remote):
            return False
        info = self._channel.request("describe", label=f"type of {obj._label}", target=obj)
        return isinstance(info, dict) and class_name in (info.get("mro") or [])
