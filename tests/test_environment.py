"""nbgrader's gradebook needs `alembic` on PATH; the grader must work without an activated venv."""
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
