"""Helpers for hidden tests. They run in the grader's process on plain data.

    count_params(state_dict)          parameters counted from the tensors the grader received
    map_state_dict(sd, mapping)       rename a student's state dict for a reference model
    forbidden_uses(sources, ...)      where the submitted code names functions it may not use
                                      (with `student.forbid(ops)`, which sees what it runs)
    function_source(sources, name)    the source of one function the student wrote
    relabel(labels, permutation)      class labels under a permutation only the grader knows
    accuracy(model, x, y)             the grader's own evaluation of a reference model

A hidden test imports what it needs: `from autograder.testkit import count_params`.
"""
from __future__ import annotations

import ast
import re

import torch

__all__ = ["count_params", "map_state_dict", "forbidden_uses", "function_source", "relabel", "derangement",
           "first_difference", "Difference", "layer_pairs",
           "accuracy", "DYNAMIC_LOOKUPS"]

# Constructs that look up code by a name computed at run time, as the notebooks that forbid them
# state the rule ("`eval`, `exec`, `getattr` with a name you build, `importlib`, `torch.ops`,
# `torch._C`"): `forbidden_uses(..., dynamic=True)` fails on exactly these. Everything else of
# the kind (`__dict__`, `vars`, `globals`, `__import__`, ...) is a review flag, never a failure.
DYNAMIC_LOOKUPS = {"eval", "exec", "importlib"}
DYNAMIC_ATTRIBUTES = {"torch.ops", "torch._C"}  # dotted prefixes


def count_params(state_dict: dict) -> int:
    """Number of parameters in a state dict received from the kernel (buffers excluded by
    name: running statistics and counters of batch norm are not parameters)."""
    total = 0
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state dict entry {name!r} is not a tensor")
        if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        total += t.numel()
    return total


def map_state_dict(state_dict: dict, mapping: dict[str, str]) -> dict:
    """Rename keys by prefix (student attribute -> reference module path), keeping only the
    keys a mapping covers, so that extra submodules in a student's model do no harm.

    mapping {"c1": "features.C1"} turns "c1.weight" into "features.C1.weight". A student key
    like "body.c1.weight" (the same layer also held by a container) is ignored when
    "c1.weight" is present.
    """
    out = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        if head in mapping and rest:
            out[f"{mapping[head]}.{rest}"] = value
    return out


def units(model: torch.nn.Module, split: tuple[str, ...] = ()) -> dict[str, torch.nn.Module]:
    """The blocks of a reference `model` for `match_units`, named from the model's root: each child
    that holds tensors, with the children named in `split` (a ModuleList of blocks, a Sequential of
    layers) replaced by their entries ("down.0", "down.1", ...). `units(unet, split=("down", "up",
    "decode"))` gives a U-Net's blocks, `units(dcgan, split=("net",))` every layer of its Sequential."""
    out = {}
    for name, child in model.named_children():
        parts = child.named_children() if name in split else [(None, child)]
        for sub, module in parts:
            if len(module.state_dict()):
                out[name if sub is None else f"{name}.{sub}"] = module
    return out


def random_state(state_dict: dict, generator: torch.Generator, weight_scale: float = 0.3, scale: float = 0.2) -> dict:
    """Random values for a reference's state dict, to load into the reference and (renamed) into a
    student's model before comparing them: convolution weights (4-D) ~ N(0, weight_scale), other
    parameters and running means ~ N(0, scale), running variances in [0.5, 1.5) (so that evaluation
    mode really differs from training mode), integer counters kept."""
    new = {}
    for name, value in state_dict.items():
        if value.dtype == torch.long:
            new[name] = value
        elif name.endswith("running_var"):
            new[name] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            std = weight_scale if name.endswith("weight") and value.dim() == 4 else scale
            new[name] = torch.randn(value.shape, generator=generator) * std
    return new


def match_units(state_dict: dict, units: dict[str, torch.nn.Module]) -> dict[str, str]:
    """{student key: reference key} for a student's state dict whose blocks may come in any order.

    `units` names the reference's blocks ({"down.0": ref.down[0], "bottom": ref.bottom, ...}),
    each a run of state-dict entries that a student registers together (a block's conv, batch
    norm, conv, batch norm). Going through the student's entries in order, each run is matched to
    the unused unit whose entries have the same shapes (the first such unit in `units`' order), so
    a U-Net written as "all encoders, all up-convolutions, all decoders" and one written level by
    level both load into the reference. Raises AssertionError naming the first student entry that
    starts no unit, with what the task's blocks would need there."""
    keys = list(state_dict)
    shapes = [tuple(state_dict[k].shape) for k in keys]
    signature = {name: [(suffix, tuple(t.shape)) for suffix, t in unit.state_dict().items()] for name, unit in units.items()}
    mapping, unused, p = {}, list(units), 0
    while p < len(keys):
        for name in unused:
            sig = signature[name]
            if [s for _, s in sig] == shapes[p:p + len(sig)]:
                mapping.update({keys[p + i]: f"{name}.{suffix}" for i, (suffix, _) in enumerate(sig)})
                unused.remove(name)
                p += len(sig)
                break
        else:
            starts = sorted({str(signature[n][0][1]) for n in unused})
            raise AssertionError(f"the grader cannot place {keys[p]} (shape {shapes[p]}) in a block of the task: "
                                 f"a block of the task that is still missing starts with an entry of shape "
                                 f"{' or '.join(starts) if starts else '(none: every block is already found)'}")
    if unused:
        raise AssertionError(f"blocks of the task not found among your layers: {', '.join(unused)}")
    return mapping


def _call_name(node: ast.AST) -> str:
    """Dotted text of an attribute chain: torch.nn.functional.conv2d -> "torch.nn.functional.conv2d"."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def forbidden_uses(sources: dict[str, str], names: set[str], module_attrs: set[str] = frozenset(),
                   modules: set[str] = frozenset({"F", "functional", "torch", "nn"}), dynamic: bool = False,
                   whole_modules: set[str] = frozenset()) -> list[str]:
    """Where the submitted code names a forbidden function, as "cell 'x', line N: name".

    Names are only what the code spells: a function reached through a computed lookup
    escapes this check. What a graded check decides on is what the code *does*, seen in the
    kernel's dispatcher while the test calls it (`student.forbid`); this check adds the
    explicit names, and computed lookups are review flags (`autograder.review`), which the
    student's feedback lists. `dynamic=True` reports those lookups here as well, for a test
    whose notebook states that rule.

    names:         attribute or imported names that are forbidden wherever they appear
                   (`F.conv2d`, `torch.conv2d`, `from torch.nn.functional import conv2d`,
                   `nn.Conv2d`); a function the student defines under such a name is fine
    module_attrs:  names forbidden only as an attribute of one of `modules` (`F.unfold` is
                   forbidden, the tensor method `x.unfold` is not)
    dynamic:       also report run-time lookups (eval, exec, getattr with a computed name,
                   importlib, torch.ops, ...), which could hide a forbidden call
    whole_modules: modules none of whose attributes may be used ({"F", "functional"}: any
                   `F.x` or `torch.nn.functional.x`), and imports from them
    """
    found = []
    for label, src in sources.items():
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue

        def hit(node, what):
            found.append(f"{label}, line {getattr(node, 'lineno', '?')}: {what}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if node.attr in names:
                    hit(node, _call_name(node))
                elif node.attr in module_attrs and _call_name(node.value).split(".")[-1] in modules:
                    hit(node, _call_name(node))
                elif _call_name(node.value).split(".")[-1] in whole_modules and _call_name(node.value):
                    hit(node, _call_name(node))
                elif dynamic and (node.attr in DYNAMIC_ATTRIBUTES or _call_name(node) in DYNAMIC_ATTRIBUTES):
                    hit(node, _call_name(node))
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name in names or a.name in module_attrs or (node.module or "").split(".")[-1] in whole_modules \
                            or a.name in whole_modules:
                        hit(node, f"from {node.module} import {a.name}")
                if dynamic and (node.module or "").split(".")[0] in DYNAMIC_LOOKUPS:
                    hit(node, f"from {node.module} import ...")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if dynamic and a.name.split(".")[0] in DYNAMIC_LOOKUPS:
                        hit(node, f"import {a.name}")
            elif dynamic and isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in DYNAMIC_LOOKUPS:
                    hit(node, f"{node.func.id}(...)")
                elif node.func.id == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
                    hit(node, f"{node.func.id} with a computed name")
                elif node.func.id == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                        and node.args[1].value in names:
                    hit(node, f"getattr(..., {node.args[1].value!r})")
    return list(dict.fromkeys(found))


def function_source(sources: dict[str, str], name: str) -> str:
    """The source of the top-level function or class `name` the student defined ('' if none)."""
    for src in sources.values():
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return ast.get_source_segment(src, node) or ""
    return ""


def derangement(n: int, seed: int) -> torch.Tensor:
    """A permutation of range(n) that moves every element (no class keeps its label)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        if not bool((perm == torch.arange(n)).any()):
            return perm


def relabel(labels: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Class c becomes permutation[c]."""
    return permutation[labels]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of `x` that `model` (a reference model in the grader's process) classifies as `y`."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(dim=1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


def words(text: str) -> str:
    """Collapse whitespace (for messages built from source snippets)."""
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------- where a model first differs
class Difference:
    """Where a student's model first computes something other than the reference (see
    `first_difference`). `mine` is the student's module name ("" for the whole model), `theirs` the
    reference module it stands for; `kind` is "layer" (a layer gives another output from the same
    input), "block" (a container whose parts each agree: the difference is in how it combines them),
    "sequence" (`layer`, inside the nn.Sequential `mine`, is the first whose output differs, although
    it agrees from its own input) or "model" (every part agrees: the model's own forward connects
    them differently). `x`, `got`, `want`: the input given to `mine` and the two outputs."""

    def __init__(self, mine, theirs, kind, x=None, got=None, want=None, layer="", layer_theirs=""):
        self.mine, self.theirs, self.kind = mine, theirs, kind
        self.x, self.got, self.want = x, got, want
        self.layer, self.layer_theirs = layer, layer_theirs

    def sentence(self, place=None, whole: str = "your model") -> str:
        """One sentence for the student (no final stop), in the student's module names;
        `place(reference name)` says where a reference module sits in the instructions' words;
        `whole` names the module tested ("your BasicBlock")."""
        def where(name):
            text = place(name) if place and name else ""
            return f" ({text})" if text else ""

        def named(name):   # a part of a container without attribute names: model[3]
            head, _, rest = name.partition(".")
            return f"{whole}[{head}]{'.' + rest if rest else ''}" if head.isdigit() else name
        if self.kind == "layer":
            return (f"the first part of {whole} whose output differs is the layer {named(self.mine)}{where(self.theirs)}: given "
                    "the input the instructions' network gives that layer, it computes something else (look at its kernel "
                    "size, stride, padding and other settings)")
        if self.kind == "sequence":
            mine = named(self.mine) if self.mine else whole
            return (f"the first part of {mine} whose output differs is {named(self.layer)}{where(self.layer_theirs)}: "
                    f"from its own input it computes what it should, so what reaches it differs: look at what comes before "
                    f"it in {mine} (an activation, a pooling, their order)")
        if self.kind == "block":
            return (f"the first part of {whole} whose output differs is {named(self.mine)}{where(self.theirs)}: each of its "
                    f"layers computes what it should from its own input, so the difference is in how {named(self.mine)} connects "
                    "them (an activation, a pooling, their order, how branches are combined)")
        return (f"each part of {whole} computes what it should from its own input, so the difference is in how its "
                "forward connects them (an activation, a pooling, a reshape, their order)")


def _is_close(got, want, rtol, atol_scale):
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
        return False
    scale = float(want.abs().max()) if want.numel() else 1.0
    return bool(torch.allclose(got.to(want.dtype), want, rtol=rtol, atol=atol_scale * (scale or 1.0)))


def first_difference(net, ref: torch.nn.Module, x: torch.Tensor, pairs, student=None, rtol: float = 1e-6,
                     atol_scale: float = 1e-9, budget: float = 15.0):
    """Where the student's model `net` (a handle) first computes something other than `ref` (the
    grader's reference, holding the student's weights), on the input `x`; None if nothing is found.

    `pairs`: [(student layer name, reference layer name)] in the order the student's forward calls
    them (how the test mapped the weights). Each of the student's containers that holds exactly the
    layers of one reference module is run, in the kernel, on the input that reference module gets
    here, and its output compared with the reference's: the search goes down into the first part
    (in call order) that differs, until a layer differs by itself or every part of a container
    agrees; an nn.Sequential whose parts all agree is then run part by part to find the first whose
    output differs. Both models must be in the same mode and dtype (the test's comparison). Costs a
    few calls into the kernel; meant for a failure message, after the comparison failed. Returns a
    `Difference` (its `sentence()` says it in the student's module names), or None when `budget`
    seconds pass first (the test's own time limit is left for what follows)."""
    import time

    from autograder.remote import StudentCodeError

    class OutOfTime(Exception):
        pass

    deadline = time.monotonic() + budget
    pairs = [(m, t) for m, t in pairs]
    layer_of = dict(pairs)
    index = {m: i for i, (m, _) in enumerate(pairs)}
    ref_layers = {t for _, t in pairs}
    paths = set()
    for m, _ in pairs:
        parts = m.split(".")
        paths.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))

    def under(p, names):
        return frozenset(n for n in names if not p or n == p or n.startswith(p + "."))

    def mine_set(p):
        return frozenset(layer_of[m] for m in under(p, layer_of))

    by_set: dict = {}
    modules = dict(ref.named_modules())
    for q in modules:
        if q:
            s = under(q, ref_layers)
            if s:
                by_set.setdefault(s, []).append(q)

    def first(p):
        return min(index[m] for m in under(p, layer_of))

    def children(p):
        depth = len(p.split(".")) if p else 0
        kids = {".".join(c.split(".")[:depth + 1]) for c in paths if (not p or c.startswith(p + ".")) and c != p}
        return sorted(kids, key=first)

    def blocks(p):
        out = []
        for c in children(p):
            qs = by_set.get(mine_set(c), [])
            out += [(c, qs)] if qs else blocks(c)
        return out

    seen: dict = {}

    def capture(names):
        names = [q for q in names if q not in seen and q in modules]
        hooks = []
        for q in names:
            def pre(mod, args, q=q):
                if q not in seen and len(args) == 1 and isinstance(args[0], torch.Tensor):
                    seen[q] = [args[0].detach().clone(), None]
            def post(mod, args, out, q=q):
                if q in seen and seen[q][1] is None and isinstance(out, torch.Tensor):
                    seen[q][1] = out.detach().clone()
            hooks += [modules[q].register_forward_pre_hook(pre), modules[q].register_forward_hook(post)]
        try:
            with torch.no_grad():
                ref(x)
        finally:
            for h in hooks:
                h.remove()

    def module(p):
        return net.get_submodule(p) if p else net

    def run(p, xin):
        if time.monotonic() > deadline:
            raise OutOfTime
        try:
            return module(p)(xin)
        except StudentCodeError:
            return None

    def compare(p, qs):
        # True: agrees with one of the reference modules that hold the same layers; False: differs from
        # every one it could be compared with; None: could not be compared
        found = None
        for q in qs:
            xin, want = seen.get(q, (None, None))
            if xin is None or want is None:
                continue
            got = run(p, xin)
            if got is None:          # it raised (a container without forward, another kind of input)
                continue
            if _is_close(got, want, rtol, atol_scale):
                return True, None
            if found is None:
                found = (q, xin, got, want)
        return (False, found) if found else (None, None)

    def sequence(p, q, xin):
        # p differs but its parts agree: if p is an nn.Sequential, run its children one by one
        if student is None or not student.isinstance(module(p), "torch.nn.modules.container.Sequential"):
            return None
        try:
            kids = [name for name, _ in module(p).named_children()]
        except (StudentCodeError, TypeError, ValueError):
            return None
        names = [f"{p}.{c}" if p else c for c in kids]
        capture([t for n in names if n in paths for t in by_set.get(mine_set(n), [])])
        value = xin
        for name in names:
            value = run(name, value)
            if not isinstance(value, torch.Tensor):
                return None
            if name in paths:
                qs = [t for t in by_set.get(mine_set(name), []) if seen.get(t, [None, None])[1] is not None]
                if qs and not any(_is_close(value, seen[t][1], rtol, atol_scale) for t in qs):
                    return Difference(p, q, "sequence", xin, None, None, layer=name, layer_theirs=qs[-1])
        return None

    def locate(p):
        level = blocks(p)
        capture([q for _, qs in level for q in qs])
        for c, qs in level:
            verdict, found = compare(c, qs)
            if verdict is None and c not in layer_of:   # not comparable as a whole (a ModuleDict): its parts are
                inner = locate(c)
                if inner:
                    return inner
            elif verdict is False:
                q, xin, got, want = found
                if c in layer_of:
                    return Difference(c, q, "layer", xin, got, want)
                return locate(c) or sequence(c, q, xin) or Difference(c, q, "block", xin, got, want)
        return None

    with torch.no_grad():
        try:
            found = locate("") or sequence("", "", x) or Difference("", "", "model", x)
            if found.x is not None:
                run(found.mine, found.x)   # the last call is the part reported (a message's context names it)
        except OutOfTime:
            return None
        return found


def layer_pairs(student, net, x, ref: torch.nn.Module, rename) -> list:
    """[(student layer, reference layer)] for `first_difference` where the task gives the layers'
    names: the student's convolutions, batch norms and linear layers (found by their tensors) in the
    order its forward calls them on `x` (`student.trace`), each with `rename(name)`, the reference
    module of that name (layers without one are left out)."""
    tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    names = [k.rpartition(".")[0] for k, v in tensors.items()
             if (k.endswith("weight") and v.dim() in (2, 4)) or k.endswith("running_mean")]
    names = list(dict.fromkeys(n for n in names if n))
    _, shapes = student.trace(net, x, names=names)
    modules = dict(ref.named_modules())
    return [(n, rename(n)) for n, s in shapes.items() if s is not None and rename(n) in modules]
