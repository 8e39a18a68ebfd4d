"""What in a submission's source an instructor should look at: flags, not penalties.

Grades never depend on this module. The hidden tests run in the grader's process and
check answers there, so a trick played inside the kernel (patching a comparison, an
object whose __eq__ lies, a thread, a rewritten cell transformer) cannot earn points; it
can only make the student's own answers wrong. But a submission that tries such a trick
deserves a human's look, and the report should say why it failed. So the grader reads the
submitted source (from the file, never from the kernel) and lists, per cell and line, the
constructs that honest solutions to these assignments do not need.
"""
from __future__ import annotations

import ast

# attribute or name -> why it is worth a look
SUSPICIOUS_NAMES = {
    "_getframe": "reads the interpreter's call stack", "currentframe": "reads the interpreter's call stack",
    "stack": None,  # inspect.stack only (checked with its owner below)
    "f_back": "reads a caller's frame", "f_locals": "reads a caller's variables", "f_globals": "reads a caller's globals",
    "__code__": "replaces or reads a function's code object", "__globals__": "reaches into a function's globals",
    "get_ipython": "reaches into the notebook's kernel", "InteractiveShell": "reaches into the notebook's kernel",
    "input_transformers_post": "rewrites how cells are run", "input_transformers_cleanup": "rewrites how cells are run",
    "ast_transformers": "rewrites how cells are run", "set_custom_exc": "hides errors",
    "excepthook": "hides errors", "displayhook": "changes how results are shown",
    "settrace": "traces the interpreter", "setprofile": "traces the interpreter",
    "get_referrers": "reaches objects through the garbage collector", "get_objects": "reaches objects through the garbage collector",
    "__dlcourse_grader__": "touches the grader's agent", "_dlcourse_grader_wire": "touches the grader's agent",
    "__torch_function__": "overrides how torch treats an object", "__instancecheck__": "fakes isinstance checks",
    "__subclasscheck__": "fakes isinstance checks",
}
SUSPICIOUS_MODULES = {
    "ctypes": "uses ctypes (raw memory access)", "threading": "starts threads", "_thread": "starts threads",
    "multiprocessing": "starts processes", "subprocess": "starts processes", "socket": "opens network connections",
    "urllib": "opens network connections", "http": "opens network connections", "requests": "opens network connections",
    "importlib": "imports modules by computed names", "builtins": "changes Python's builtins", "gc": "uses the garbage collector",
    "inspect": "inspects the interpreter", "IPython": "reaches into the notebook's kernel", "pickle": "loads pickled objects",
}
DUNDER_LIES = {"__eq__", "__ne__", "__bool__", "__lt__", "__le__", "__gt__", "__ge__", "__float__", "__int__",
               "__index__"}
# nn.Module methods through which the grader reads a model's weights and structure
READ_BY_GRADER = {"state_dict", "named_parameters", "parameters", "named_buffers", "named_modules",
                  "load_state_dict", "register_forward_hook", "__getattr__", "__getattribute__"}
DYNAMIC_CALLS = {"attrgetter": "looks up attributes by computed names", "methodcaller": "calls methods by computed names",
                 "eval": "runs code built at run time", "exec": "runs code built at run time",
                 "compile": "compiles code at run time", "__import__": "imports modules by computed names",
                 "globals": "reaches the notebook's global namespace", "vars": "reaches a namespace directly",
                 "setattr": None}  # setattr only on modules (below)


# names the notebooks bind to library modules; a student cell that assigns to one replaces
# the library under the notebook's feet
LIBRARY_ALIASES = {"torch", "np", "numpy", "F", "nn", "math", "dlcourse", "datasets"}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def review_source(label: str, source: str, modules: set[str], withheld: tuple[str, ...] = ()) -> list[str]:
    """Flags for one cell. `modules`: names bound to imported modules anywhere in the submission."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"{label}: line {exc.lineno}: the cell is not valid Python"]
    flags = []

    def flag(node, why):
        flags.append(f"{label}: line {getattr(node, 'lineno', '?')}: {why}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in SUSPICIOUS_MODULES:
                    flag(node, SUSPICIOUS_MODULES[top])
                for w in withheld:
                    full = [name] if isinstance(node, ast.Import) else [name] + [f"{name}.{a.name}" for a in node.names]
                    # the module itself, something inside it, or a package that re-exports it
                    if any(f == w or f.startswith(w + ".") or (w.startswith(f + ".") and "." in f) for f in full):
                        flag(node, f"imports from {name}, which holds this assignment's reference answers ({w})")
        elif isinstance(node, ast.Attribute):
            why = SUSPICIOUS_NAMES.get(node.attr)
            if node.attr == "stack" and _root_name(node) == "inspect":
                why = "reads the interpreter's call stack"
            if node.attr == "modules" and _root_name(node) == "sys":
                why = "changes or reads sys.modules"
            if node.attr in ("ops", "_C") and _root_name(node) == "torch":
                why = f"reaches PyTorch's operators directly (torch.{node.attr})"
            if node.attr in ("attrgetter", "methodcaller") or (node.attr == "getattr" and _root_name(node) == "builtins"):
                why = "looks up attributes by computed names"
            if why:
                flag(node, why)
            if isinstance(node.ctx, ast.Store) and _root_name(node) in modules:
                flag(node, f"replaces {ast.unparse(node)} (a library attribute) at run time")
        elif isinstance(node, ast.Name):
            why = SUSPICIOUS_NAMES.get(node.id)
            if why and node.id != "stack":
                flag(node, why)
            if isinstance(node.ctx, ast.Store) and node.id in LIBRARY_ALIASES:
                flag(node, f"rebinds the name {node.id} (a library module) to something else")
            if node.id == "__builtins__":
                flag(node, "changes Python's builtins")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name == "setattr" and node.args and _root_name(node.args[0]) in modules:
                flag(node, f"replaces an attribute of {ast.unparse(node.args[0])} (a library module) at run time")
            elif name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
                flag(node, "looks up attributes by computed names")
            elif DYNAMIC_CALLS.get(name):
                flag(node, DYNAMIC_CALLS[name])
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in DUNDER_LIES:
                    flag(item, f"class {node.name} defines {item.name} (its objects can answer comparisons or "
                               f"conversions as they like)")
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in READ_BY_GRADER:
                    flag(item, f"class {node.name} overrides {item.name}, which the grader reads")
    return flags


def _top_level_bindings(source: str) -> set[str]:
    """Every global name the cell can bind: assignments of any shape (tuples, starred, walrus,
    loops, with, except, imports, defs, classes) outside function bodies, and names a
    function declares `global`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Global):
                names.update(child.names)
            elif top and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)
            elif top and isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                names.add(child.id)
            elif top and isinstance(child, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in child.names)
            elif top and isinstance(child, ast.ExceptHandler) and child.name:
                names.add(child.name)
            # a function's or class's own body binds locals, except what it declares global
            visit(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                        ast.Lambda)))
    visit(tree, True)
    return names


def imported_module_names(sources: list[str]) -> set[str]:
    """Names bound to modules by `import x` / `import x as y` / `from x import submodule`-like lines."""
    names = {"torch", "np", "numpy", "F", "nn", "math", "sys", "os", "builtins", "dlcourse"}
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    names.add((a.asname or a.name).split(".")[0])
    return names


def review(sources: dict[str, str], withheld: tuple[str, ...] = (), instructor_names: set[str] = frozenset()) -> list[str]:
    """Flags for a whole submission ({cell label: source}), at most a few per cell.

    `instructor_names`: names the notebook's instructor cells define (constants, data,
    helper classes the tests use); a student cell that rebinds one is flagged."""
    modules = imported_module_names(list(sources.values()))
    flags: list[str] = []
    for label, src in sources.items():
        found = review_source(label, src, modules, withheld)
        for name in sorted(_top_level_bindings(src) & set(instructor_names)):
            found.append(f"{label}: redefines {name}, which an instructor cell of the notebook defines")
        unique = list(dict.fromkeys(found))
        flags += unique[:5] + ([f"{label}: {len(unique) - 5} more"] if len(unique) > 5 else [])
    return flags
