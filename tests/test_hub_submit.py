"""The hub's submit step (autograder/hub_submit.py), run through nbgrader's own `submit`
command against a real exchange folder: the submission is its student's and the
instructors' group's only where `inbound/` is setgid, and stock nbgrader's where it is not.

The hub test (tests/hub/) shows the same as a student against another student's
submission; this runs without a hub, in seconds."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

GROUP = 65534  # any group this account is not in stands for the instructors' group
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs a group this account is not in (root makes it)")


def _exchange(tmp_path: Path, setgid: bool) -> tuple[Path, Path]:
    """(exchange root, the student's folder holding the fetched assignment `a`)."""
    root = tmp_path / "exchange"
    course = root / "course"
    (course / "outbound" / "a").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), course / "outbound" / "a" / "a.ipynb")
    inbound = course / "inbound"
    inbound.mkdir()
    os.chown(inbound, -1, GROUP)
    inbound.chmod(0o3733 if setgid else 0o1733)
    work = tmp_path / "home"
    (work / "a").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), work / "a" / "a.ipynb")
    return root, work


def _submit(root: Path, work: Path) -> subprocess.CompletedProcess:
    (work / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.Exchange.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'course'\n"
        "c.ExchangeFactory.submit = 'autograder.hub_submit.PrivateSubmit'\n")
    env = dict(os.environ, HOME=str(work), JUPYTER_CONFIG_DIR=str(work / ".jupyter"))
    return subprocess.run([sys.executable, "-m", "nbgrader", "submit", "a"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def _submitted(tmp_path: Path, setgid: bool) -> tuple[Path, str]:
    """(the submission folder in inbound/, what `nbgrader submit` logged)."""
    root, work = _exchange(tmp_path, setgid)
    done = _submit(root, work)
    assert done.returncode == 0, done.stderr
    (folder,) = list((root / "course" / "inbound").iterdir())
    return folder, done.stderr


def test_a_submission_is_closed_to_everyone_but_its_student_and_the_instructors(tmp_path):
    folder, _ = _submitted(tmp_path, setgid=True)
    paths = [folder, *folder.rglob("*")]
    assert {p.name for p in paths} >= {"a.ipynb", "submission_secret.txt", "timestamp.txt"}
    for p in paths:
        st = os.lstat(p)
        assert st.st_gid == GROUP, p  # the instructors' group, from the setgid inbound folder
        assert not st.st_mode & stat.S_IRWXO, (p, oct(st.st_mode))  # nothing for other students
        assert stat.S_IMODE(st.st_mode) & 0o777 == (0o770 if p.is_dir() else 0o640), (p, oct(st.st_mode))


def test_without_a_setgid_inbound_the_submission_keeps_nbgraders_modes_and_says_why(tmp_path):
    folder, log = _submitted(tmp_path, setgid=False)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777  # nbgrader's, so that the instructor can read it
    assert stat.S_IMODE((folder / "a.ipynb").stat().st_mode) == 0o644
    assert "is not setgid in the instructors' group" in log
