"""options.RunOptions: one typed, frozen object of command options; picklable, because it
travels to worker processes (``run --jobs``) and Ray tasks."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from stockrnn.options import DEFAULT, RunOptions


def test_defaults():
    assert DEFAULT == RunOptions()
    assert (DEFAULT.resume, DEFAULT.allow_stale, DEFAULT.steps, DEFAULT.keep, DEFAULT.max_mase,
            DEFAULT.wait, DEFAULT.progress, DEFAULT.threads, DEFAULT.jobs, DEFAULT.executor,
            DEFAULT.ray_address, DEFAULT.allow_failures) == (
        False, False, None, None, None, 0.0, "lines", None, 1, "local", None, 0)


def test_frozen():
    opts = RunOptions(jobs=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.jobs = 3
    assert opts.jobs == 2


def test_replace_returns_a_new_object():
    opts = RunOptions(max_mase=1.05, keep=7)
    other = opts.replace(progress="none", threads=1)
    assert (other.progress, other.threads, other.max_mase, other.keep) == ("none", 1, 1.05, 7)
    assert (opts.progress, opts.threads) == ("lines", None)
    with pytest.raises(TypeError):
        opts.replace(no_such_option=1)


def test_picklable_and_hashable():
    opts = RunOptions(resume=True, allow_stale=True, steps=3, keep=2, max_mase=1.1, wait=5.0,
                      progress="none", threads=2, jobs=4, executor="ray",
                      ray_address="ray://head:10001", allow_failures=1)
    back = pickle.loads(pickle.dumps(opts))
    assert back == opts and back is not opts
    assert hash(back) == hash(opts)
