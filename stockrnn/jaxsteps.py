"""JAX: ``steps_per_execution`` training steps per compiled call instead of one call each, and
predictions as model calls of ``ROWS`` windows in one compiled loop (``predict``, at the end).

On TensorFlow, Keras runs ``steps_per_execution`` steps inside one traced function. On JAX it
calls the compiled step once per batch from Python, and for stockrnn's small models that
per-call cost (slicing the batch, dispatching the step, the callbacks' bookkeeping) is most of
an epoch. ``install`` gives a compiled model train and test functions that take a batch of up
to ``batch_size * steps`` windows, cut it into batches of ``batch_size`` in order, and run the
full ones with ``lax.fori_loop`` over Keras' own ``train_step`` / ``test_step`` (padded to
``steps`` batches, so one compiled loop serves every epoch and every dataset of the same
window shape), then a smaller last one as a step of its own, as Keras runs it, in the same
compiled call (for the first size of last batch a model meets; another size, on other data,
runs in a call of its own). ``fit`` then hands Keras ``batch_size * steps`` as its batch size
(``keras_batch_size``): Keras shuffles every window once per epoch and slices its batches from
that one permutation, so the batches the loop cuts are the ones Keras would have made, trained
in the same order: the same numbers, in one or a few calls per epoch.
"""

from __future__ import annotations

import numpy as np

LOOP = "stockrnn_loop"  # attribute of the installed functions: their (batch_size, steps)


def install(model, batch_size: int, steps: int) -> bool:
    """Give a compiled Keras model on JAX looped train and test functions. Returns False,
    changing nothing, on another backend, for ``steps`` 1, or on an older Keras whose JAX
    trainer builds its functions another way. One Keras batch is then one call (the model's
    ``steps_per_execution`` becomes 1)."""
    from stockrnn.backend import use

    if use().backend.backend() != "jax" or steps <= 1 or not hasattr(model, "_make_function"):
        return False
    model.steps_per_execution = 1
    model.train_function = _looped(model.train_step, batch_size, steps)
    model.test_function = _looped(model.test_step, batch_size, steps)
    return True


def loop_of(model) -> tuple[int, int] | None:
    """(batch_size, steps) of ``model``'s installed train and test functions; None when they
    are not both this module's (never installed, or made again by Keras)."""
    loops = {getattr(getattr(model, name, None), LOOP, None)
             for name in ("train_function", "test_function")}
    return loops.pop() if len(loops) == 1 else None


def snapshot(model, variables) -> list:
    """The values of ``variables`` now, as they will stay while ``model`` trains on: on a model
    with this module's train and test functions, the arrays themselves (no copy: those functions
    leave the arrays they are given as they are, where Keras' own give them to XLA to reuse,
    which deletes them); else copies on the host (a model without them, or whose functions
    Keras made again). ``Variable.assign`` takes either back. (Keras' own predict function
    deletes them too: JAX predictions go through ``predict``, below.)"""
    if loop_of(model) is not None:
        return [v.value for v in variables]
    return [v.numpy() for v in variables]


def keras_batch_size(model, batch_size: int) -> int:
    """The batch size to give Keras' ``fit`` for training batches of ``batch_size``."""
    loop = loop_of(model)
    return batch_size * loop[1] if loop and loop[0] == batch_size else batch_size


def _looped(step, batch_size: int, steps: int):
    import jax

    one = jax.jit(step)  # no donated inputs: ``snapshot`` keeps them
    fused = None  # the size of the smaller last batch the loop runs in its call: the first met

    def loop(state, data, n, rest):
        """``n`` full batches of ``data`` (on its first axis), then ``rest`` (a smaller last
        batch, or None), one step each, in order; the last step's logs."""
        first = jax.tree.map(lambda a: a[0], data)
        logs = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype),
                            jax.eval_shape(step, state, first)[0])

        def body(i, carry):
            batch = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, False), data)
            return step(carry[1], batch)

        logs, state = jax.lax.fori_loop(0, n, body, (logs, state))
        return (logs, state) if rest is None else step(state, rest)

    many = jax.jit(loop)

    def function(state, iterator):
        nonlocal fused
        data = next(iterator)
        leaves, tree = jax.tree.flatten(data)
        size = len(leaves[0])
        full, left = divmod(size, batch_size)
        rest = (jax.tree.unflatten(tree, [np.asarray(a)[full * batch_size:] for a in leaves])
                if left else None)  # the smaller last batch
        if rest is not None and full and fused is None:
            fused = left
        # Another size of last batch (a reused model on other data: a backtest's next fold)
        # runs alone: it compiles one step, not the loop again.
        in_loop = rest is not None and full > 0 and fused == left
        for start in range(0, full, steps):  # runs of up to `steps` full batches
            n = min(steps, full - start)
            part = [_batches(a, start * batch_size, n, batch_size, steps) for a in leaves]
            last = in_loop and start + steps >= full
            logs, state = many(state, jax.tree.unflatten(tree, part), n, rest if last else None)
        if rest is not None and not in_loop:
            logs, state = one(state, rest)
        return logs, state

    setattr(function, LOOP, (batch_size, steps))
    return function


def _batches(array, start: int, n: int, batch_size: int, steps: int) -> np.ndarray:
    """``n`` batches of ``array`` from ``start`` on a new first axis, padded with zeros to
    ``steps`` batches (the padding is never read: the loop runs over the ``n`` only)."""
    a = np.asarray(array)
    out = np.zeros((steps, batch_size, *a.shape[1:]), dtype=a.dtype)
    out[:n] = a[start:start + n * batch_size].reshape(n, batch_size, *a.shape[1:])
    return out


# --------------------------------------------------------------------------- predictions

ROWS, STEPS = 32, 16  # windows per model call; model calls per compiled call (512 windows)
_PREDICT = "_stockrnn_predict"  # model attribute: its compiled prediction loop


def predict(model, x: np.ndarray) -> np.ndarray:
    """``model``'s outputs for the windows ``x`` (float32), on JAX: calls of ``ROWS`` windows
    in a compiled loop of up to ``STEPS`` of them per call, which runs only the calls that hold
    windows (the input is padded with zeros to ``STEPS`` calls, so one compiled loop serves
    every number of windows: a forecast's one, a split's few hundred). A call of 256 padded
    rows computes every row; this computes at most ``ROWS - 1`` rows more than there are
    windows. The non-trainable state (a recurrent layer's dropout seed, which Keras advances
    in every call) is carried from call to call and stored back, as Keras' own loop does."""
    run = getattr(model, _PREDICT, None)
    if run is None:
        run = _prediction_loop(model)
        setattr(model, _PREDICT, run)
    trainable = [v.value for v in model.trainable_variables]
    state = [v.value for v in model.non_trainable_variables]
    size, parts = ROWS * STEPS, []
    for start in range(0, len(x), size):
        part = x[start:start + size]
        padded = np.zeros((size, *x.shape[1:]), "float32")
        padded[:len(part)] = part
        out, state = run(trainable, state, padded.reshape(STEPS, ROWS, *x.shape[1:]),
                         calls(len(part)))
        parts.append(np.asarray(out).reshape(size, -1)[:len(part)])
    for var, value in zip(model.non_trainable_variables, state, strict=True):
        var.assign(value)
    return np.concatenate(parts)


def calls(n: int) -> int:
    """The model calls ``predict`` makes for ``n`` windows."""
    return -(-n // ROWS)


def _prediction_loop(model):
    import jax

    width = model.output_shape[-1]

    def run(trainable, state, xs, n):
        def body(i, carry):
            out, state = carry
            y, state = model.stateless_call(trainable, state, xs[i], training=False)
            return jax.lax.dynamic_update_index_in_dim(out, y, i, 0), state

        out = jax.numpy.zeros((xs.shape[0], xs.shape[1], width), "float32")
        return jax.lax.fori_loop(0, n, body, (out, state))

    return jax.jit(run)
