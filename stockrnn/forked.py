"""Work started ahead of need in a forked child process, which runs it on another core while
this process goes on (``run`` fits the AutoARIMA and AutoETS baselines while it imports
TensorFlow and trains; ``run`` and ``predict`` build the forecast's exchange calendar).

Only where a fork is safe: on POSIX, in a process with one thread, before TensorFlow or JAX
are loaded (their runtimes and thread pools do not survive a fork). The child closes every file
it inherited but its pipe and the standard streams (so it holds none of the parent's locks),
logs nothing, sends back the pickled result and exits. ``result`` takes it; when the child
failed it gives None and the caller does the work itself, logging as usual. A child whose
result was never asked for is ended when this process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

#: Loaded, these make a fork unsafe.
UNSAFE = ("tensorflow", "jax", "torch")
_pending: dict[str, tuple[int, int]] = {}   # key -> (child pid, read end of its pipe)


def can_fork() -> bool:
    return (hasattr(os, "fork") and threading.active_count() == 1
            and not any(name in sys.modules for name in UNSAFE))


def start(key: str, fn: Callable[..., Any], *args) -> bool:
    """Run ``fn(*args)`` in a forked child, its result to be taken by ``result(key)``. False
    (nothing started) where a fork is not safe."""
    if key in _pending:
        return True
    if not can_fork():
        return False
    try:
        read, write = os.pipe()
    except OSError:  # out of file descriptors: the caller does the work itself
        return False
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of the math library's idle threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:  # out of processes or memory
        os.close(read)
        os.close(write)
        return False
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(read)
            os.closerange(3, write)
            os.closerange(write + 1, 1 << 16)
            logging.disable(logging.CRITICAL)
            data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
            with open(write, "wb") as fh:
                fh.write(data)
            code = 0
        except BaseException:  # the parent does the work itself
            pass
        finally:
            os._exit(code)
    os.close(write)
    _pending[key] = (pid, read)
    return True


def result(key: str, timeout: float | None = None) -> Any | None:
    """What the child started for ``key`` returned (waiting for it, at most ``timeout``
    seconds when given), or None: nothing was started for it, the child failed, or it took
    longer (it is then ended)."""
    job = _pending.pop(key, None)
    if job is None:
        return None
    pid, read = job
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] | None = []
    try:
        while True:
            if deadline is not None and not select.select(
                    [read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunks = None  # too slow (or hung): the caller does the work itself
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    data = b"".join(chunks) if chunks is not None else b""
    if status != 0 or not data:
        return None
    try:
        return pickle.loads(data)
    except Exception:
        return None


@atexit.register
def _end_all() -> None:
    while _pending:
        _, (pid, read) = _pending.popitem()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        try:
            os.close(read)
        except OSError:
            pass
