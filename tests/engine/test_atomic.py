"""Atomic writes: all or nothing, and the file modes any other program would give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dune_gui.engine.atomic import atomic_write
from tests.conftest import new_file_mode


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_new_file_gets_the_umask_mode_not_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    with atomic_write(path) as fh:
        fh.write(b"data")
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == new_file_mode()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path, "w") as fh:
        fh.write("new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write(b"half")
        raise RuntimeError("disk gone")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]
