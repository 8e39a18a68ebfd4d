"""nbgrader's gradebook: created without an activated venv, and stamped with the schema head nbgrader reads."""
import os
import subprocess
import sys

from autograder.environment import path_with_interpreter_bin


def test_interpreter_bin_comes_first_exactly_once():
    bindir = os.path.dirname(sys.executable)
    out = path_with_interpreter_bin(os.pathsep.join(["/usr/bin", bindir, "/bin"])).split(os.pathsep)
    assert out == [bindir, "/usr/bin", "/bin"]


def test_gradebook_is_created_when_the_venv_is_not_on_path(tmp_path):
    # Python started by full path with a PATH that lacks the venv: without the fix
    # nbgrader fails with FileNotFoundError: 'alembic'.
    code = ("import sys; from pathlib import Path; from autograder.gradebook import GradeWriter; "
            "w = GradeWriter(f'sqlite:///{sys.argv[1]}/gb.db', Path(sys.argv[1]) / 'journal.jsonl'); "
            "w.register_assignment('a', 'a', [('t', 1.0)]); w.close(); print('ok')")
    env = dict(os.environ, PATH="/usr/bin:/bin")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    assert (tmp_path / "gb.db").stat().st_size > 0


def test_gradebook_is_stamped_with_the_schema_head_nbgrader_itself_reads(tmp_path, monkeypatch):
    # nbgrader's own way (the `alembic heads` subprocess) is the reference for the in-process read
    import sqlite3

    import nbgrader.api

    from autograder.environment import gradebook_schema_in_process
    from autograder.gradebook import GradeWriter

    gradebook_schema_in_process()
    assert nbgrader.api.get_alembic_version.in_process
    monkeypatch.setenv("PATH", path_with_interpreter_bin())
    expected = nbgrader.api.get_alembic_version.by_subprocess()
    assert len(expected) == 12 and int(expected, 16) >= 0, expected  # an alembic revision id
    writer = GradeWriter(f"sqlite:///{tmp_path}/gb.db", tmp_path / "journal.jsonl")
    writer.close()
    with sqlite3.connect(tmp_path / "gb.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(expected,)]
