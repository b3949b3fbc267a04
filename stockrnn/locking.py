"""Inter-process locks so two cron jobs never interleave writes.

Built on ``filelock`` (an OS lock: it is released when the holding process dies, so a lock left
by a killed process is taken over safely). A small ``.info`` file beside it names the holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from stockrnn.errors import LockError


@contextlib.contextmanager
def hold(lock_path: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold ``lock_path`` for the block; wait up to ``wait`` seconds, then raise LockError."""
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    info_path = lock_path.with_name(lock_path.name + ".info")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=max(wait, 0.0), poll_interval=0.1)
    except Timeout:
        raise LockError(f"another stockrnn run holds {lock_path} ({_describe(info_path)}); "
                        "try again later or pass --wait SECONDS") from None
    try:
        with contextlib.suppress(OSError):
            info_path.write_text(json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }))
        yield
    finally:
        with contextlib.suppress(OSError):
            info_path.unlink()
        lock.release()


def _describe(info_path: Path) -> str:
    try:
        info = json.loads(info_path.read_text())
        return f"pid {info['pid']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
