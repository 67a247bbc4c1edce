"""Removing a call's temp dir never fails in a way that could end the template: no recursion, no path too long,
no symlink followed, and a directory it cannot enter is reported, not raised."""

from __future__ import annotations

import os
from pathlib import Path

from runner._tmpdirs import make_call_dir, remove_tree


def _deep(root: Path, depth: int, name: str = "d") -> None:
    """A chain of ``depth`` nested directories made through directory fds: deeper than PATH_MAX allows."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir(name, 0o700, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            if level % 100 == 0:
                os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=inner))
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def test_call_dirs_have_random_names(tmp_path: Path) -> None:
    first, second = make_call_dir(str(tmp_path)), make_call_dir(str(tmp_path))
    assert first is not None and second is not None and first != second
    assert len(os.path.basename(first)) == 32
    assert (os.stat(first).st_mode & 0o777) == 0o700


def test_a_call_dir_that_cannot_be_made_is_none(tmp_path: Path) -> None:
    assert make_call_dir(str(tmp_path / "missing")) is None


def test_removes_a_tree_deeper_than_recursion_and_path_max(tmp_path: Path) -> None:
    call = tmp_path / "call"
    call.mkdir()
    _deep(call, 5000, name="n" * 40)  # 5000 levels, 205,000 characters of path
    assert remove_tree(str(call)) is True
    assert not call.exists()


def test_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep me")
    call = tmp_path / "call"
    call.mkdir()
    (call / "link").symlink_to(outside)
    (call / "sub").mkdir()
    (call / "sub" / "link").symlink_to(outside / "keep")
    assert remove_tree(str(call)) is True
    assert (outside / "keep").read_text() == "keep me"


def test_a_missing_tree_is_already_removed(tmp_path: Path) -> None:
    assert remove_tree(str(tmp_path / "gone")) is True


def test_a_directory_it_cannot_enter_is_reported_not_raised(tmp_path: Path) -> None:
    call = tmp_path / "call"
    (call / "locked").mkdir(parents=True)
    (call / "locked" / "f").write_text("x")
    (call / "locked").chmod(0o000)  # what the child's seccomp filter now refuses to let a hook make
    try:
        assert remove_tree(str(call)) is False
    finally:
        (call / "locked").chmod(0o700)
