"""The process environment nbgrader needs: this interpreter's bin folder on PATH.

nbgrader's gradebook creates its schema by running the `alembic` script found on PATH.
When Python was started by full path (`.venv/bin/python -m autograder`) without the venv
activated, that script is not on PATH and nbgrader fails with FileNotFoundError. Both
the release (temporary gradebook) and the grader (real gradebook) need the same fix.
"""
from __future__ import annotations

import os
import sys


def path_with_interpreter_bin(path: str | None = None) -> str:
    """`path` (default: the current PATH) with this interpreter's bin folder first, once."""
    bindir = os.path.dirname(sys.executable)
    parts = [p for p in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep) if p]
    return os.pathsep.join([bindir] + [p for p in parts if p != bindir])
