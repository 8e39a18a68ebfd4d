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
