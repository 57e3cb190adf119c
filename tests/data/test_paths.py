"""Cache folder, file resolution order and atomic writes."""

from __future__ import annotations

import os
import stat

import pytest

from comam_env.data.errors import DataNotFoundError
from comam_env.data.paths import (
    atomic_write_bytes, atomic_write_text, atomic_writer, cache_dir, resolve_files, search_dirs,
)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("COMAM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "comam-env"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "comam-env"


def test_search_order_and_first_complete_folder_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COMAM_DATA_DIR", str(tmp_path / "env"))
    dirs = search_dirs(tmp_path / "x", "locomo")
    assert dirs == [tmp_path / "x", tmp_path / "x" / "locomo", tmp_path / "env" / "locomo", tmp_path / "env",
                    tmp_path / "cache" / "locomo"]
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.txt").write_text("1")  # incomplete: b.txt missing
    (tmp_path / "env").mkdir()
    for n in ("a.txt", "b.txt"):
        (tmp_path / "env" / n).write_text("2")
    found = resolve_files(["a.txt", "b.txt"], tmp_path / "x", subdir="locomo")
    assert found == {"a.txt": tmp_path / "env" / "a.txt", "b.txt": tmp_path / "env" / "b.txt"}
    with pytest.raises(DataNotFoundError) as exc:
        resolve_files(["a.txt", "c.txt"], tmp_path / "x", subdir="locomo", download_command="get-it")
    assert exc.value.missing == ("c.txt",) and "get-it" in str(exc.value)
    assert exc.value.searched == tuple(str(d) for d in dirs)


def test_atomic_writes(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "héllo\r\n")
    assert p.read_bytes() == "héllo\r\n".encode()  # no newline translation
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600
    os.chmod(p, 0o640)
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01" and stat.S_IMODE(p.stat().st_mode) == 0o640  # mode kept
    with pytest.raises(RuntimeError):
        with atomic_writer(p) as f:
            f.write("half written")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(p.parent)) == ["f.txt"]  # temp file removed
    with pytest.raises(ValueError):
        with atomic_writer(p, "a"):
            pass


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m
