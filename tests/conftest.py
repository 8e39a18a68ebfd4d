"""The suite's root conftest. Its presence makes pytest put tests/ on sys.path (rootdir-style
"prepend" imports), so test modules in every folder, tests/browser/ and tests/hub/ included,
can `import suite_helpers` (skips that fail in CI, the loopback server, Chromium).

It also makes `--dist loadgroup` group again. pytest-xdist marks a test's group by appending
`@group` to `item._nodeid`, which pytest 9 no longer reads (the id lives in `item._id`), so
every `xdist_group` was silently ignored: a session fixture such as test_grade's graded batch
was built once on each worker. The hook below sets the id where pytest 9 reads it."""
import pytest


def _group(item) -> str:
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "_".join(sorted(names))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        group = _group(item)
        if not group or item.nodeid.endswith("@" + group):  # none, or xdist's own suffix took effect
            continue
        suffixed = f"{item.nodeid}@{group}"
        if hasattr(item, "_id"):
            from _pytest.nodeid import NodeId
            item._id = NodeId.parse(suffixed)
        else:
            item._nodeid = suffixed
