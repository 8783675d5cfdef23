"""`write_atomically`: whole or not at all, with the mode asked for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vdpa_operator.fileio import write_atomically


def test_the_mode_is_the_one_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "info.json"
    old = os.umask(0o077)
    try:
        write_atomically(target, b"{}", mode=0o444)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"{}" and stat.S_IMODE(target.stat().st_mode) == 0o444
    write_atomically(target, b"{1}", mode=0o644)  # a read-only file is replaced, not written into
    assert target.read_bytes() == b"{1}"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "shim"
    target.write_bytes(b"old")

    def full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"new", mode=0o755)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["shim"]
