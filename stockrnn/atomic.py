"""Atomic file writes: write a temp file in the target folder, fsync, then ``os.replace``.

A reader sees the old file or the new one, never half of either; a failed write leaves the old
file byte-for-byte unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from stockrnn.errors import StockRNNError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success move it over ``target``.

    ``suffix`` lets writers that insist on an extension (Keras wants ``.keras``) use the temp path.
    """
    target = Path(target)
    tmp = _stage(target, suffix)
    try:
        try:
            yield tmp
        except OSError as exc:  # the writer's own failure (disk full) names the target too
            _raise_cannot_write(target, exc)
        _commit(tmp, target)
    except BaseException:
        _cleanup(tmp)
        raise


def _stage(target: Path, suffix: str) -> Path:
    """An empty temp file beside ``target``."""
    try:  # a read-only or full folder: name the file being written, not the temp file
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix,
                                   dir=target.parent)
    except OSError as exc:
        _raise_cannot_write(target, exc)
    os.close(fd)
    return Path(tmp)


def _sync(tmp: Path, target: Path) -> None:
    try:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0o600 files
    except OSError as exc:
        _raise_cannot_write(target, exc)


def _commit(tmp: Path, target: Path) -> None:
    _sync(tmp, target)
    try:
        os.replace(tmp, target)
    except OSError as exc:
        _raise_cannot_write(target, exc)


def _raise_cannot_write(target: Path, exc: OSError):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        raise StockRNNError(f"cannot write {target}: {exc.strerror}") from exc
    raise exc


def _mode_for(target: Path) -> int:
    """The target's current permissions, or what ``open()`` would give a new file (umask)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _cleanup(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: object) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_with(target: str | os.PathLike, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and move the result over ``target`` atomically."""
    write_all([(target, writer)], suffix=suffix)


def write_all(pairs: list[tuple[str | os.PathLike, Callable[[Path], None]]],
              suffix: str = "") -> None:
    """Write every ``(target, writer)`` pair to its temp file first, then move them into place
    in the order given. A failed write (disk full) changes none of the targets; only a kill
    between two renames can leave the earlier targets new and the later ones old."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, writer in pairs:
            target = Path(target)
            staged.append((_stage(target, suffix), target))
            try:
                writer(staged[-1][0])
            except OSError as exc:
                _raise_cannot_write(target, exc)
        for tmp, target in staged:
            _sync(tmp, target)
        for tmp, target in staged:
            _commit(tmp, target)
    finally:
        for tmp, _ in staged:
            _cleanup(tmp)  # nothing left behind on failure; a no-op for the renamed ones
