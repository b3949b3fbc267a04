"""atomic: every file stockrnn writes appears whole under its final name or not at all; a failing
writer or a full disk leaves the old file and no temp file; modes are kept."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import pytest

from stockrnn import atomic
from stockrnn.errors import StockRNNError


def test_atomic_write_helpers(tmp_path):
    target = tmp_path / "sub" / "f.json"
    atomic.write_json(target, {"a": 1, "when": dt.date(2020, 1, 2)})
    assert json.loads(target.read_text()) == {"a": 1, "when": "2020-01-02"}
    atomic.write_text(target, "héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic.write_with(target, lambda tmp: tmp.write_text("via writer"))
    assert target.read_text() == "via writer"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_atomic_write_with_failing_writer_keeps_old_file(tmp_path):
    target = tmp_path / "GOOG_1d.csv"
    target.write_text("old content\n")

    def writer(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise RuntimeError("writer crashed")

    with pytest.raises(RuntimeError, match="writer crashed"):
        atomic.write_with(target, writer)
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["GOOG_1d.csv"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_atomic_write_disk_full_is_stockrnn_error(tmp_path, code):
    target = tmp_path / "GOOG_1d.json"
    target.write_text('{"old": true}\n')

    def writer(tmp: Path) -> None:
        with open(tmp, "w") as fh:
            fh.write("{\"new\": ")
        raise OSError(code, os.strerror(code))

    with pytest.raises(StockRNNError) as err:
        atomic.write_with(target, writer)
    assert str(target) in str(err.value) and os.strerror(code) in str(err.value)
    assert isinstance(err.value.__cause__, OSError)
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["GOOG_1d.json"]


def test_atomic_write_other_os_error_propagates(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def writer(tmp: Path) -> None:
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError) as err:
        atomic.write_with(target, writer)
    assert not isinstance(err.value, StockRNNError) and err.value.errno == errno.EIO
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_file_mode(tmp_path):
    old_umask = os.umask(0o022)
    try:
        new = tmp_path / "new.csv"
        atomic.write_text(new, "x")
        assert new.stat().st_mode & 0o777 == 0o644  # like open(): 0o666 minus the umask
        kept = tmp_path / "kept.csv"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic.write_text(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640  # rewriting keeps the file's mode
    finally:
        os.umask(old_umask)




def test_write_all_replaces_every_file_or_none(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "a.json"
    a.write_text("old a")
    b.write_text("old b")

    def broken(tmp: Path) -> None:
        raise RuntimeError("second writer crashed")

    with pytest.raises(RuntimeError, match="second writer crashed"):
        atomic.write_all([(a, lambda tmp: tmp.write_text("new a")), (b, broken)])
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.npz"]
    atomic.write_all([(a, lambda tmp: tmp.write_text("new a")),
                      (b, lambda tmp: tmp.write_text("new b"))])
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
