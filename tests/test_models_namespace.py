"""`dlcourse.models`: every public name means the same object whatever was imported before.

Two submodules share their name with a builder they define (`alexnet`, `googlenet`). Python
binds a loaded submodule on its package, which used to shadow the package's lazy lookup:
after `import dlcourse.models.alexnet`, `from dlcourse.models import alexnet` returned the
module, and `alexnet()` raised "'module' object is not callable". Each check runs in a fresh
interpreter, because what was imported before is exactly what is under test.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dlcourse.models as models

ROOT = Path(__file__).resolve().parents[1]
SUBMODULES = sorted(models._EXPORTS)

# Prints, for each public name, (what `from dlcourse.models import NAME` gives) is (the object
# its defining module holds); run after FIRST (statements) has been executed.
CHECK = """
import importlib, json, types
{first}
import dlcourse.models as m
from dlcourse.models import *  # noqa: F401,F403 (binds every name in __all__)
report = {{}}
for module, names in m._EXPORTS.items():
    defining = importlib.import_module("dlcourse.models." + module)
    for name in names:
        got = getattr(m, name)
        ns = {{}}
        exec(f"from dlcourse.models import {{name}} as got", ns)
        report[name] = dict(
            module=module,
            attribute_is_definition=got is getattr(defining, name),
            from_import_is_definition=ns["got"] is getattr(defining, name),
            star_import_is_definition=globals()[name] is getattr(defining, name),
            is_module=isinstance(got, types.ModuleType),
        )
        if name == module:  # a builder named like its module: it must build (TypeError if it is the module)
            report[name]["built"] = type(got(num_classes=10, init_weights=False)).__name__
print(json.dumps(report))
"""


def _run(first: str) -> dict:
    env = {**os.environ, "DLCOURSE_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHECK.format(first=textwrap.dedent(first))], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_all_mean_their_definition(report: dict):
    assert sorted(report) == models.__all__  # every public name was checked
    wrong = {name: r for name, r in report.items()
             if r["is_module"] or not (r["attribute_is_definition"] and r["from_import_is_definition"]
                                       and r["star_import_is_definition"])}
    assert not wrong, wrong


@pytest.mark.parametrize("submodule", SUBMODULES)
def test_every_public_name_is_its_definition_after_a_submodule_was_imported(submodule):
    report = _run(f"import dlcourse.models.{submodule}")
    _assert_all_mean_their_definition(report)
    if submodule in report:  # the case that failed: the module's own name is the builder, and it builds
        assert report[submodule]["built"] == {"alexnet": "AlexNet", "googlenet": "GoogLeNet"}[submodule]


def test_every_public_name_is_its_definition_when_looked_up_before_and_after_the_submodules():
    # names first (the lazy lookup loads each module), then every submodule imported by path again
    first = "import dlcourse.models as _m\n_before = {n: getattr(_m, n) for n in _m.__all__}\n" + "".join(
        f"import dlcourse.models.{s}\n" for s in SUBMODULES)
    _assert_all_mean_their_definition(_run(first))


def test_the_module_is_still_reachable_by_its_path():
    # the book imports names from the module paths (`from dlcourse.models.alexnet import cfgs`)
    from dlcourse.models.alexnet import cfgs
    from dlcourse.models.googlenet import GOOGLENET_CFG
    import importlib
    assert importlib.import_module("dlcourse.models.alexnet").cfgs is cfgs
    assert importlib.import_module("dlcourse.models.googlenet").GOOGLENET_CFG is GOOGLENET_CFG


def test_withholding_a_module_whose_name_is_public_blocks_the_name():
    # dlcourse.answers.block must not itself trip over the lazy lookup (it used hasattr, which
    # imported the module it had just withheld and raised ImportError), and afterwards the
    # public name must fail with the withholding message rather than return a stale builder.
    code = textwrap.dedent("""
        import dlcourse.models
        from dlcourse.models import alexnet
        import dlcourse.models.alexnet
        from dlcourse.answers import block
        block("a04-alexnet")
        try:
            from dlcourse.models import alexnet
        except ImportError as e:
            print("BLOCKED", e)
        else:
            print("REACHABLE", alexnet)
    """)
    env = {k: v for k, v in os.environ.items() if k != "DLCOURSE_GRADER_PROCESS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DLCOURSE_THREADS": "1"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BLOCKED dlcourse.models.alexnet holds the course's reference answers for assignment a04-alexnet" \
        in out.stdout


def _sources():
    for top in ("book", "solutions", "assignments", "tests", "dlcourse", "autograder", "bench", "hub"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix == ".py":
                yield path, path.read_text()
            elif path.suffix == ".ipynb" and "_build" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                cells = json.loads(path.read_text())["cells"]
                for cell in cells:
                    if cell["cell_type"] == "code":
                        yield path, "".join(cell["source"])


def test_no_code_binds_a_public_name_by_importing_its_module_path():
    # `import dlcourse.models.alexnet as A` resolves `alexnet` as an attribute of the package,
    # which is the builder: A.cfgs would then fail. Use `from dlcourse.models.alexnet import ...`.
    shared = {m for m in SUBMODULES if m in models.__all__}
    assert shared == {"alexnet", "googlenet"}  # the modules that share a public name
    bad = []
    for path, source in _sources():
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue  # released notebooks with unfilled answers; their imports are in the solutions
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.rsplit(".", 1)[0] == "dlcourse.models" and alias.name.rsplit(".", 1)[1] in shared:
                        bad.append(f"{path.relative_to(ROOT)}: import {alias.name}")
    assert not bad, bad
