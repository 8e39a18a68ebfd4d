"""autograder.safefs: paths in student-writable folders opened without being redirected.

Each test plants what a student could plant in the exchange (a symbolic link at a folder
on the way, at the file, at a temporary name; a FIFO; a file of another owner) and checks
that the privileged side refuses it or writes around it, never through it. The race test
swaps a subfolder for a link in a loop while a copy runs, as the attack on `watch` did.
"""
from __future__ import annotations

import os
import stat
import threading

import pytest

from autograder import safefs

SECRET = "the instructor's solution"


@pytest.fixture
def tree(tmp_path):
    """A student folder `inbound/sub/` with a notebook, and a private file outside it."""
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "private" / "solution.ipynb").write_text(SECRET)
    sub = tmp_path / "inbound" / "sub"
    sub.mkdir(parents=True)
    (sub / "nb.ipynb").write_text("student work")
    return tmp_path


def _open(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_open_dir_walks_real_folders_and_refuses_a_link_at_any_component(tree):
    fd = safefs.open_dir(tree, "inbound", "sub")
    assert safefs.read_file(fd, "nb.ipynb", 100) == b"student work"
    os.close(fd)
    # a link in place of the last folder, then in place of one on the way
    os.rename(tree / "inbound" / "sub", tree / "inbound" / "real")
    (tree / "inbound" / "sub").symlink_to(tree / "private")
    with pytest.raises(safefs.Unsafe, match="inbound/sub is a symbolic link"):
        safefs.open_dir(tree, "inbound", "sub")
    os.rename(tree / "inbound", tree / "elsewhere")
    (tree / "inbound").symlink_to(tree / "elsewhere")
    with pytest.raises(safefs.Unsafe, match="inbound is a symbolic link"):
        safefs.open_dir(tree, "inbound", "real")
    for bad in ("..", ".", "a/b", ""):
        with pytest.raises(safefs.Unsafe, match="not a plain file name"):
            safefs.open_dir(tree, bad)


def test_read_file_refuses_links_fifos_other_owners_and_oversize(tree):
    sub = tree / "inbound" / "sub"
    (sub / "link").symlink_to(tree / "private" / "solution.ipynb")
    os.mkfifo(sub / "pipe")
    fd = safefs.open_dir(sub)
    try:
        with pytest.raises(safefs.Unsafe, match="link is a symbolic link"):
            safefs.read_file(fd, "link", 100)
        with pytest.raises(safefs.Unsafe, match="pipe is not a regular file"):  # and it did not block
            safefs.read_file(fd, "pipe", 100)
        with pytest.raises(safefs.Unsafe, match="larger than 5 bytes"):
            safefs.read_file(fd, "nb.ipynb", 5)
        with pytest.raises(safefs.Unsafe, match="belongs to uid"):
            safefs.read_file(fd, "nb.ipynb", 100, owner_uid=os.geteuid() + 1)
        assert safefs.read_file(fd, "nb.ipynb", 100, owner_uid=os.geteuid()) == b"student work"
    finally:
        os.close(fd)


def test_write_file_never_writes_through_a_planted_link(tree):
    target = tree / "private" / "solution.ipynb"
    before = target.stat()
    out = tree / "inbound" / "out"
    out.mkdir()
    (out / "page.html").symlink_to(target)  # a link at the final name
    fd = safefs.open_dir(out)
    try:
        safefs.write_file(fd, "page.html", "<p>feedback</p>", mode=0o644)
    finally:
        os.close(fd)
    assert not (out / "page.html").is_symlink() and (out / "page.html").read_text() == "<p>feedback</p>"
    assert stat.S_IMODE((out / "page.html").stat().st_mode) == 0o644
    after = target.stat()
    assert target.read_text() == SECRET and stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)
    assert [p.name for p in out.iterdir()] == ["page.html"]  # no temporary file left behind


def test_write_file_mode_is_exact_whatever_the_umask(tree):
    old = os.umask(0)
    try:
        fd = safefs.open_dir(tree)
        safefs.write_file(fd, "state.json", "{}")
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tree / "state.json").stat().st_mode) == 0o600


def test_make_dir_refuses_a_link_or_a_folder_someone_else_made_and_tightens_modes(tree):
    fd = safefs.open_dir(tree)
    try:
        (tree / "linked").symlink_to(tree / "private")
        with pytest.raises(safefs.Unsafe, match="linked is a symbolic link"):
            safefs.make_dir(fd, "linked")
        (tree / "wide").mkdir(mode=0o777)
        os.chmod(tree / "wide", 0o777)
        os.close(safefs.make_dir(fd, "wide"))
        assert stat.S_IMODE((tree / "wide").stat().st_mode) == 0o700
        with pytest.raises(safefs.Unsafe, match="belongs to uid"):
            safefs.make_dir(fd, "wide", owner_uid=os.geteuid() + 1)
    finally:
        os.close(fd)
    inner = safefs.make_dirs(tree, "a", "b", "c")
    os.close(inner)
    assert stat.S_IMODE((tree / "a" / "b" / "c").stat().st_mode) == 0o700


def test_copy_tree_copies_regular_files_privately(tree):
    sub = tree / "inbound" / "sub"
    (sub / "data").mkdir()
    (sub / "data" / "x.txt").write_text("x")
    (sub / ".ipynb_checkpoints").mkdir()
    (tree / "dest").mkdir()
    src, dest = safefs.open_dir(sub), safefs.open_dir(tree / "dest")
    try:
        n = safefs.copy_tree(src, dest, limit=1000, owner_uid=os.geteuid(), skip=frozenset({".ipynb_checkpoints"}))
    finally:
        os.close(src), os.close(dest)
    assert n == len("student work") + 1
    assert sorted(str(p.relative_to(tree / "dest")) for p in (tree / "dest").rglob("*")) == \
        ["data", "data/x.txt", "nb.ipynb"]
    assert stat.S_IMODE((tree / "dest" / "nb.ipynb").stat().st_mode) == 0o600
    assert stat.S_IMODE((tree / "dest" / "data").stat().st_mode) == 0o700


@pytest.mark.parametrize("plant", ["file link", "folder link", "fifo", "too big", "too many", "other owner"])
def test_copy_tree_refuses_anything_but_the_students_regular_files(tree, plant):
    sub = tree / "inbound" / "sub"
    (sub / "deep").mkdir()
    if plant == "file link":
        (sub / "deep" / "answer.ipynb").symlink_to(tree / "private" / "solution.ipynb")
        match = "deep/answer.ipynb is a symbolic link"
    elif plant == "folder link":
        (sub / "deep" / "inner").symlink_to(tree / "private")
        match = "deep/inner is a symbolic link"
    elif plant == "fifo":
        os.mkfifo(sub / "deep" / "pipe")
        match = "deep/pipe is not a regular file"
    elif plant == "too big":
        (sub / "deep" / "big").write_bytes(b"0" * 2000)
        match = "more than"
    elif plant == "too many":
        for i in range(20):
            (sub / "deep" / f"f{i}").write_text("")
        match = "more than 10 files"
    else:
        match = "belongs to uid"
    (tree / "dest").mkdir()
    src, dest = safefs.open_dir(sub), safefs.open_dir(tree / "dest")
    owner = os.geteuid() + (1 if plant == "other owner" else 0)
    try:
        with pytest.raises(safefs.Unsafe, match=match):
            safefs.copy_tree(src, dest, limit=1000, owner_uid=owner, max_entries=10)
    finally:
        os.close(src), os.close(dest)
    assert not any(p.is_file() and p.read_text() == SECRET for p in (tree / "dest").rglob("*"))


def test_copy_tree_race_swapping_a_subfolder_for_a_link_never_copies_what_it_points_to(tree):
    """The attack on `watch`: a loop renames a subfolder away and puts a link in its place
    while the privileged side copies. Every copy holds the student's file or is refused."""
    sub = tree / "inbound" / "sub"
    (sub / "work").mkdir()
    (sub / "work" / "solution.ipynb").write_text("student work")
    stop = threading.Event()

    def swap():
        real, link, parked = sub / "work", sub / "work-link", sub / "work-real"
        link.symlink_to(tree / "private")
        while not stop.is_set():
            os.rename(real, parked)
            os.rename(link, real)      # `work` is now a link to the private folder
            os.rename(real, link)
            os.rename(parked, real)    # and a folder again

    swapper = threading.Thread(target=swap)
    swapper.start()
    copied = refused = 0
    try:
        for i in range(300):
            dest_path = tree / f"dest{i}"
            dest_path.mkdir()
            src, dest = safefs.open_dir(sub), safefs.open_dir(dest_path)
            try:
                safefs.copy_tree(src, dest, limit=10_000, skip=frozenset({"work-link", "work-real"}))
                copied += 1
            except (safefs.Unsafe, FileNotFoundError):
                refused += 1
            finally:
                os.close(src), os.close(dest)
            for p in dest_path.rglob("*"):
                assert not p.is_symlink()
                assert not (p.is_file() and p.read_text() == SECRET), f"copy {i} read through the link"
    finally:
        stop.set()
        swapper.join()
    assert copied + refused == 300
    print(f"copied {copied}, refused {refused}")


def test_remove_tree_does_not_follow_links_out(tree):
    victim = tree / "inbound" / "sub"
    (victim / "escape").symlink_to(tree / "private")
    fd = safefs.open_dir(tree / "inbound")
    try:
        safefs.remove_tree(fd, "sub")
    finally:
        os.close(fd)
    assert not victim.exists() and (tree / "private" / "solution.ipynb").read_text() == SECRET


def test_copy_tree_without_a_destination_checks_by_the_same_rules(tree):
    sub = tree / "inbound" / "sub"
    src = safefs.open_dir(sub)
    try:
        assert safefs.copy_tree(src, None, limit=1000) == len("student work")
        (sub / "link").symlink_to(tree / "private")
        with pytest.raises(safefs.Unsafe, match="link is a symbolic link"):
            safefs.copy_tree(src, None, limit=1000)
    finally:
        os.close(src)
