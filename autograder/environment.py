"""What nbgrader needs of this process to create a gradebook.

Left alone, nbgrader's gradebook stamps a new database by running the `alembic` script found on PATH.
When Python was started by full path (`.venv/bin/python -m autograder`) without the venv
activated, that script is not on PATH and nbgrader fails with FileNotFoundError. Both
the release (temporary gradebook) and the grader (real gradebook) need the same fix.

The script's only use is to read the head of nbgrader's schema migrations when a new
gradebook is stamped, and a new Python process for that costs 2.4 s of CPU here (0.1 s
in this one): `gradebook_schema_in_process` reads the same head in this process.
"""
from __future__ import annotations

import os
import sys


def gradebook_schema_in_process() -> None:
    """Make nbgrader stamp new gradebooks with its schema head read here, not by a subprocess.

    nbgrader.api.Gradebook calls the module's `get_alembic_version` when it creates a
    database; it is replaced by a function that asks alembic's ScriptDirectory for the head
    of nbgrader's own migration scripts, the answer `alembic heads` prints. Where there is
    not exactly one head, nbgrader's own function answers. Idempotent.
    """
    import nbgrader.api
    from nbgrader import dbutil

    if getattr(nbgrader.api.get_alembic_version, "in_process", False):
        return
    by_subprocess = nbgrader.api.get_alembic_version

    def head() -> str:
        from alembic.script import ScriptDirectory

        heads = ScriptDirectory(dbutil.ALEMBIC_DIR).get_heads()
        return heads[0] if len(heads) == 1 else by_subprocess()

    head.in_process = True
    head.by_subprocess = by_subprocess
    nbgrader.api.get_alembic_version = head


def path_with_interpreter_bin(path: str | None = None) -> str:
    """`path` (default: the current PATH) with this interpreter's bin folder first, once."""
    bindir = os.path.dirname(sys.executable)
    parts = [p for p in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep) if p]
    return os.pathsep.join([bindir] + [p for p in parts if p != bindir])
