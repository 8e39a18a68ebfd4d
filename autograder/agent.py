"""The grader's agent inside the student's kernel: answers requests with plain data.

The grader (a trusted process) never sends test code into the kernel. It sends *requests*
(get this name, call this function with these tensors, read this attribute, ...) as
`autograder.wire` messages written into the kernel's work directory, then asks the kernel
to run `__dlcourse_grader__.serve_all(N)`. The agent does the one thing asked and writes the
answer back as plain data; objects that are not plain data (functions, classes, modules,
models, loaders) stay here and are named by a handle number. It then asks the grader, on the
kernel's stdin channel, for the next request (an input request, as `input()` makes), and goes
on until the grader names none: a test's many calls cost one cell execution, not one each
(ipykernel spends a few milliseconds of CPU on every execution, a third of that on an input
request). Where the kernel lacks what this needs, each request is one execution.

Nothing here is trusted. Student code can read, replace or break this agent: the worst it
can achieve is to send wrong data or none, which the grader's checks then reject. This
module needs only the standard library, torch and the wire module, whose source the
grader sends in (the sandbox does not mount the autograder package).
"""
import linecache
import os
import sys
import traceback

import torch


class Agent:
    """Serves the grader's requests against the notebook's namespace `ns`."""

    def __init__(self, folder, ns, wire):
        self.folder = folder
        self.ns = ns
        self.wire = wire
        self.objects = {}   # handle -> object (strong references keep ids stable)
        self.handles = {}   # id(object) -> handle
        self.notes = []
        self.kernel = None  # the ipykernel Kernel (set by `install`)

    # ------------------------------------------------------------ plumbing
    def _handle(self, obj):
        hid = self.handles.get(id(obj))
        if hid is None or self.objects.get(hid) is not obj:
            hid = len(self.objects) + 1
            self.objects[hid] = obj
            self.handles[id(obj)] = hid
        t = type(obj)
        return {"$": "handle", "id": hid, "type": f"{t.__module__}.{t.__qualname__}"}

    def _resolve(self, hid, tname):
        if hid not in self.objects:
            raise self.wire.WireError(f"no object with handle {hid}")
        return self.objects[hid]

    def serve(self, n):
        """Answer request `n` (read from req-N, written to rep-N; N is the grader's token)."""
        self.notes = []
        used = []
        path = os.path.join(self.folder, f"req-{n}")
        try:
            with open(path, "rb") as fh:
                request = self.wire.loads(fh.read(), make_handle=self._resolve)
            os.unlink(path)
            forbid = request["value"].get("forbid")
            if forbid:
                with _Recorder(forbid, used):
                    value = self._dispatch(request)
            else:
                value = self._dispatch(request)
            reply = {"status": "ok", "value": value, "used": used[:20]}
        except KeyboardInterrupt:
            reply = {"status": "error", "error": {"type": "KeyboardInterrupt", "message": "interrupted by the grader", "frames": []}}
        except BaseException as exc:  # noqa: BLE001 - every student error goes back as data
            reply = {"status": "error", "error": describe_error(exc)}
        self._write(n, reply)

    def serve_all(self, n):
        """Answer request `n`, then every next one the grader names on the kernel's stdin
        channel, until it names none (an empty reply). Student code called meanwhile still
        cannot read stdin: the kernel's flag that allows it stays off (it is the agent that
        asks, through the kernel's own request function)."""
        k, ask = self.kernel, getattr(self.kernel, "_input_request", None)
        try:
            if ask is None:
                raise AttributeError("_input_request")
            ident = k._get_shell_context_var(k._shell_parent_ident)
            parent = k.get_parent("shell")
            allowed, k._allow_stdin = k._allow_stdin, False
        except Exception:  # noqa: BLE001 - another ipykernel: one request per execution
            self.serve(n)
            return
        try:
            while n:
                self.serve(n)
                n = ask("", ident, parent)
        finally:
            k._allow_stdin = allowed

    def _note(self, text):
        if len(self.notes) < 20:
            self.notes.append(text)

    def _write(self, n, reply):
        tmp = os.path.join(self.folder, f"rep-{n}.part")
        try:
            # the notes list itself goes into the header: notes made while the value is encoded
            # (a subclass sent as its plain value) must reach the grader too
            data = self.wire.dumps(reply.pop("value", None), on_other=self._handle, on_note=self._note,
                                   extra={**reply, "notes": self.notes}, copy_generators=False)
        except BaseException as exc:  # noqa: BLE001 - e.g. a value that cannot be encoded
            data = self.wire.dumps(None, extra={"status": "error", "error": describe_error(exc), "notes": []})
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, os.path.join(self.folder, f"rep-{n}"))

    def _dispatch(self, req):
        value = req["value"]
        op = value.get("op")
        handler = getattr(self, "op_" + str(op), None)
        if handler is None:
            raise ValueError(f"unknown request {op!r}")
        return handler(**{k: v for k, v in value.items() if k not in ("op", "forbid")})

    # ------------------------------------------------------------ requests
    def op_get(self, name):
        if name not in self.ns:
            raise NameError(f"name {name!r} is not defined in the notebook")
        return self.ns[name]

    def op_call(self, target, args=(), kwargs=None, default_device=None, report_args=False):
        tracked = _tensor_args(args, kwargs or {}) if report_args else []
        if default_device is not None:  # the test called inside `with torch.device(...)`
            with torch.device(default_device):
                out = target(*args, **(kwargs or {}))
        else:
            out = target(*args, **(kwargs or {}))
        if not report_args:
            return out
        # what the call did to its tensor arguments (in-place changes bump a tensor's version):
        # the grader's own copies are brought to the same state, so its checks can see it
        changed = [[path, t] for path, t, version, before in tracked
                   if t._version != version or (before is not None and not torch.equal(before, t))]
        return {"value": out, "changed": changed}

    def op_map(self, target, calls):
        out = []
        for args, kwargs in calls:
            try:
                out.append({"ok": target(*args, **kwargs)})
            except Exception as exc:  # noqa: BLE001 - recorded per call
                out.append({"error": describe_error(exc)})
        return out

    def op_getattr(self, target, name):
        return getattr(target, name)

    def op_getitem(self, target, key):
        return target[key]

    def op_len(self, target):
        return len(target)

    def op_list(self, target, limit=100_000):
        out = []
        for item in target:
            out.append(item)
            if len(out) > limit:
                raise ValueError(f"more than {limit} items")
        return out

    def op_describe(self, target):
        t = type(target)
        return {"type": f"{t.__module__}.{t.__qualname__}",
                "mro": [f"{c.__module__}.{c.__qualname__}" for c in t.__mro__],
                "callable": callable(target)}

    def op_grad(self, target, args, kwargs=None, wrt=(0,), grad_output=None):
        """Autograd through target(*args): gradients of sum(output_k * grad_output_k) w.r.t. args[wrt].

        The output is a tensor or a tuple of tensors and tuples (a recurrent layer's (out, (h, c)));
        its tensors, in order, are weighted by the tensors of `grad_output` (a list; ones if None)."""
        def leaf(a):   # a tensor, or a tuple of tensors (an LSTM's state (h, c)), made leaves
            if isinstance(a, (tuple, list)):
                return tuple(leaf(v) for v in a)
            return a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a

        args = [leaf(a) if i in wrt else a for i, a in enumerate(args)]
        out = target(*args, **(kwargs or {}))
        outputs = _tensors_of(out)
        if not outputs:
            raise TypeError(f"the call returned {type(out).__name__}, not a tensor or a tuple of tensors")
        weights = [torch.ones_like(o) for o in outputs] if grad_output is None else \
            ([grad_output] if isinstance(grad_output, torch.Tensor) else list(grad_output))
        if len(weights) != len(outputs):
            raise TypeError(f"the call returned {len(outputs)} tensors where {len(weights)} were expected")
        total = sum((o * w).sum() for o, w in zip(outputs, weights) if o.requires_grad)
        inputs = [_tensors_of(args[i]) for i in wrt]     # one list per argument: a tuple's tensors
        flat = [t for ts in inputs for t in ts]
        if not isinstance(total, torch.Tensor):
            raise RuntimeError("nothing the call returned is connected to autograd's graph (was it detached?)")
        flat_grads = list(torch.autograd.grad(total, flat, allow_unused=True))
        grads, k = [], 0
        for i, ts in zip(wrt, inputs):   # a tensor argument gets a tensor, a tuple argument a tuple
            part, k = flat_grads[k:k + len(ts)], k + len(ts)
            grads.append(part[0] if isinstance(args[i], torch.Tensor) else tuple(part))
        return {"output": out, "grads": grads}

    def op_trace(self, target, args, names, kwargs=None):
        """Run a module, recording the output shape of each named submodule."""
        modules = dict(target.named_modules(remove_duplicate=False))  # a layer also held by a container
        shapes, hooks = {}, []
        for name in names:
            if name not in modules:
                shapes[name] = None
                continue

            def hook(mod, inputs, output, name=name):
                out = output[0] if isinstance(output, (tuple, list)) else output
                shapes[name] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            hooks.append(modules[name].register_forward_hook(hook))
        try:
            output = target(*args, **(kwargs or {}))
        finally:
            for h in hooks:
                h.remove()
        return {"output": output, "shapes": shapes}

    def op_loader(self, tensors, batch_size=64, shuffle=False, seed=0, drop_last=False):
        from torch.utils.data import DataLoader, TensorDataset

        gen = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=gen,
                          drop_last=drop_last)

    def op_generator(self, seed):
        return torch.Generator().manual_seed(seed)

    def op_seed(self, seed):
        import random

        random.seed(seed)
        torch.manual_seed(seed)
        try:
            import numpy as np
            np.random.seed(seed)
        except ImportError:
            pass
        return None


class _Recorder:
    """While the grader's request runs: note every use of what a test forbids, by what the code
    does rather than the names it spells. PyTorch operators are seen at the dispatcher (however
    they were reached: `F.conv2d`, a saved reference, `operator.attrgetter`, `torch.ops.aten`),
    autograd's entry points (`backward`, `torch.autograd.grad`) as torch functions."""

    def __init__(self, forbid, used):
        from torch.overrides import TorchFunctionMode
        from torch.utils._python_dispatch import TorchDispatchMode

        ops = set(forbid.get("ops") or ())
        entry_points = {torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward} if forbid.get("autograd") else set()

        def note(what):
            if what not in used:
                used.append(what)

        class Calls(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func in entry_points:
                    note(f"autograd ({getattr(func, '__name__', 'backward')})")
                return func(*args, **(kwargs or {}))

        class Ops(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls):  # (else the first use imports torch._dynamo: a second or more)
                return False

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func._schema.name.split("::")[-1]
                if name in ops:
                    note(f"PyTorch's {name}")
                return func(*args, **(kwargs or {}))

        self.modes = [Calls(), Ops()] if entry_points else [Ops()]

    def __enter__(self):
        for mode in self.modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self.modes):
            mode.__exit__(*exc)
        return False


def _tensors_of(value, depth: int = 0) -> list:
    """The tensors of a tensor or a (nested, up to three levels) tuple or list, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)) and depth < 3:
        return [t for v in value for t in _tensors_of(v, depth + 1)]
    return []


SNAPSHOT_BYTES = 16 << 20  # arguments up to this size are also compared by value after the call


def _tensor_args(args, kwargs):
    """[(path, tensor, version, copy or None)] for the tensors among the arguments, one level into
    lists, tuples and dicts; a path is ["args", i] or ["kwargs", name], then an index or key.
    An in-place operation bumps a tensor's version; a write that does not (through `.data` or
    NumPy) shows in the copy kept of every argument that is not too large."""
    found = []

    def track(path, t):
        small = t.device.type != "meta" and t.numel() * t.element_size() <= SNAPSHOT_BYTES
        found.append((path, t, t._version, t.detach().clone() if small else None))

    for root, items in (("args", list(enumerate(args))), ("kwargs", list(kwargs.items()))):
        for key, value in items:
            if isinstance(value, torch.Tensor):
                track([root, key], value)
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    if isinstance(v, torch.Tensor):
                        track([root, key, i], v)
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, torch.Tensor) and isinstance(k, (str, int)):
                        track([root, key, k], v)
    return found


def describe_error(exc):
    """An exception as data: type, message and the frames of notebook code it passed through."""
    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        name = fs.filename or ""
        # the notebook's own cells (ipykernel names them /tmp/ipykernel_*/NNN.py or <ipython-input-...>)
        if "ipykernel_" in name or name.startswith("<ipython-input") or name.startswith("<cell"):
            line = fs.line or linecache.getline(name, fs.lineno or 0).strip()
            frames.append({"function": fs.name, "line": (line or "")[:300], "lineno": fs.lineno or 0})
    t = type(exc)
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        message = "(message could not be read)"
    return {"type": t.__qualname__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__qualname__}",
            "message": message[:2000], "frames": frames[-5:]}


def install(folder, ns, wire_source):
    """Create the agent (called by the grader's bootstrap code in the kernel)."""
    import types

    wire = types.ModuleType("_dlcourse_grader_wire")
    exec(compile(wire_source, "<grader wire>", "exec"), wire.__dict__)
    sys.modules.setdefault("_dlcourse_grader_wire", wire)
    agent = Agent(folder, ns, wire)
    try:  # the kernel, taken before any student code runs (serve_all asks it for the next request)
        from IPython import get_ipython

        agent.kernel = get_ipython().kernel
    except Exception:  # noqa: BLE001 - not an ipykernel: one request per execution
        pass
    return agent
