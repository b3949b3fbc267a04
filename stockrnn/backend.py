"""Pick the Keras backend before keras is imported, and import keras quietly."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import sys
import tempfile

from stockrnn.errors import ConfigError

BACKENDS = ("tensorflow", "jax")


def resolve(backend: str | None = None) -> str:
    """The Keras backend to use: the config's value, else KERAS_BACKEND, else tensorflow."""
    backend = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown Keras backend {backend!r}; valid: {', '.join(BACKENDS)}")
    return backend


def use(backend: str | None = None):
    """Set KERAS_BACKEND (``resolve``) and return the keras module."""
    backend = resolve(backend)
    if "keras" in sys.modules:  # by an earlier call, or by TensorFlow (stockrnn.preload)
        import keras

        if keras.backend.backend() != backend:
            raise ConfigError(f"keras is already loaded with the {keras.backend.backend()} "
                              f"backend in this process; cannot switch to {backend}")
        _probe_devices()
        return keras
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with collector_paused():
        if backend == "jax":
            try:
                import jax  # noqa: F401
            except ImportError:
                raise ConfigError("train.backend is jax but jax is not installed: pip install "
                                  "'stockrnn[jax]' (or make demo BACKEND=jax)") from None
        hidden = _KERAS_EXTRAS + (("jax",) if backend == "tensorflow" else ())
        with _native_stderr_to_log(), _hidden(hidden):
            import keras
        # on JAX too, when installed: Keras imports it to save a model (its serialization asks
        # for tf.TensorShape), and its start-up lines would then reach the terminal
        import_tensorflow()
    _probe_devices()
    return keras


_probed = False


def _probe_devices() -> None:
    """TensorFlow's device probe (CUDA), once per process and now (not at the first op), its
    lines to the debug log; nothing where TensorFlow is not loaded."""
    global _probed
    if _probed or "tensorflow" not in sys.modules:
        return
    _probed = True
    import tensorflow as tf

    with _native_stderr_to_log():
        tf.config.list_physical_devices()


def import_tensorflow() -> None:
    """Import TensorFlow (when installed) as ``use`` does: its start-up lines to the debug log,
    without jax. Keras is not imported: its backend is chosen later, by ``use``."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with collector_paused(), _native_stderr_to_log(), _hidden(_KERAS_EXTRAS + ("jax",)):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while the block imports (TensorFlow, Keras, JAX;
    the fork server's preloads), then every object alive at the block's end frozen out of its
    later passes (``gc.freeze``). An import makes hundreds of thousands of long-lived objects
    and almost no garbage, and each of the collector's passes walks all it tracks: it ran about
    18% of TensorFlow's import, and every later full pass (tracing makes cyclic garbage) walked
    the whole framework again. What is frozen is never collected as a cycle: cyclic garbage
    pending at the freeze (little, just after imports) stays in memory, and objects frozen
    then are left to reference counting. For the imports of a process, on one thread: the
    collector is on or off for the whole process. Inside a block of its own, or where a caller
    has turned the collector off, it leaves the collector as it is and freezes nothing."""
    if not gc.isenabled():
        yield
        return
    try:
        gc.disable()
        yield
    finally:
        gc.enable()
        gc.freeze()


# Imported by Keras (which TensorFlow imports too) when installed, for what stockrnn never uses:
# scikit-learn for Keras' scikit-learn wrappers (keras.wrappers). Measured on 2 cores: a fresh
# `import keras` 4.1-5.6 s with it hidden against 5.5-6.8 s without.
_KERAS_EXTRAS = ("sklearn",)


@contextlib.contextmanager
def _hidden(names: tuple[str, ...]):
    """While Keras or TensorFlow loads, ``import <name>`` fails for each of ``names`` not
    imported yet: Keras' scikit-learn wrappers then load without scikit-learn, and TensorFlow's
    tf.lite without jax (for a JAX-to-TFLite converter, 0.5-0.8 s of the import). Afterwards
    both import as usual; only those modules, which checked once, stay without them (a process
    that imported scikit-learn before stockrnn imported Keras keeps Keras' wrappers)."""
    hide = [name for name in names if name not in sys.modules]
    for name in hide:
        sys.modules[name] = None  # the import system's "not importable" marker
    try:
        yield
    finally:
        for name in hide:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@contextlib.contextmanager
def _native_stderr_to_log():
    """TensorFlow's C++ start-up lines (oneDNN, CUDA probes) go to fd 2 no matter what
    TF_CPP_MIN_LOG_LEVEL says; keep them out of users' terminals and cron mail (debug log only)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            if text:
                logging.getLogger(__name__).debug("native start-up output:\n%s", text)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras; make TensorFlow ops deterministic.

    Keras seeds TensorFlow too (``tf.random.set_seed``, whichever the backend), and TensorFlow
    then empties its kernel cache, to restart the counters of its stateful random ops: every
    traced function then runs its first call as a new one (about 0.3 s for a model's training
    function), which a compiled model trained again in this process (``training._COMPILED``:
    the next ticker, fold or ensemble member) paid on every training. stockrnn's models draw
    their random numbers with Keras 3's stateless ops, so no stateful kernel needs the restart:
    TensorFlow's global seed (which the ``tf.data`` shuffle reads) is set here, as
    ``tf.random.set_seed`` sets it, without emptying the cache."""
    keras = use()
    tf = sys.modules.get("tensorflow")
    if tf is not None and _set_tf_seed_keeping_kernels(seed):
        from unittest import mock

        with mock.patch.object(tf.random, "set_seed", lambda _seed: None):
            keras.utils.set_random_seed(seed)
    else:
        keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()


def _set_tf_seed_keeping_kernels(seed: int) -> bool:
    """What ``tf.random.set_seed`` does in eager mode (the global seed, and the generator of
    the operation seeds of ops given none) but the kernel cache's emptying; False, changing
    nothing, where TensorFlow's eager context is not built that way (then Keras seeds it)."""
    import random

    try:
        from tensorflow.python.eager import context
    except ImportError:
        return False
    ctx = context.context()
    if not (context.executing_eagerly() and hasattr(ctx, "_seed") and hasattr(ctx, "_rng")):
        return False
    ctx._seed, ctx._rng = seed, random.Random(seed)
    return True
