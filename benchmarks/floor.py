"""The compute floor of an epoch on JAX: the benchmark's recurrent network trained by hand.

A diagnostic beside the per-epoch targets: the same network as configs/<family>.yaml builds
(LSTM or GRU(32) with Keras' gate equations, Dense(32, relu), Dense(1)), the same numbers of
training and validation windows and the same batch, trained with Huber loss and Adam written
directly in JAX. A whole epoch (every training batch, then the validation forward pass) is one
compiled call: no Keras, no callbacks, no Python between batches. Its steady-state ms/epoch is
what XLA on this CPU needs for the arithmetic alone, so "floor / plain Keras" is about the
lowest ratio an implementation of this model in XLA could reach here.
"""

from __future__ import annotations

import statistics
import time

FAMILIES = ("lstm", "gru")
UNITS = DENSE = 32


def _init(jax, family: str, features: int):
    """Small random kernels and zero biases (the timing does not depend on the values)."""
    gates = 4 if family == "lstm" else 3
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    normal, zeros = jax.random.normal, jax.numpy.zeros
    return {"W": normal(keys[0], (features, gates * UNITS)) * 0.1,
            "U": normal(keys[1], (UNITS, gates * UNITS)) * 0.1, "b": zeros((2, gates * UNITS)),
            "D1": normal(keys[2], (UNITS, DENSE)) * 0.1, "d1": zeros((DENSE,)),
            "D2": normal(keys[3], (DENSE, 1)) * 0.1, "d2": zeros((1,))}


def _forward(jax, family: str):
    jnp = jax.numpy

    def lstm(p, h, c, x):  # keras.layers.LSTMCell
        z = x @ p["W"] + h @ p["U"] + p["b"][0]
        i, f, g, o = jnp.split(z, 4, -1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    def gru(p, h, c, x):  # keras.layers.GRUCell, reset_after=True
        xz, xr, xh = jnp.split(x @ p["W"] + p["b"][0], 3, -1)
        hz, hr, hh = jnp.split(h @ p["U"] + p["b"][1], 3, -1)
        z, r = jax.nn.sigmoid(xz + hz), jax.nn.sigmoid(xr + hr)
        return z * h + (1 - z) * jnp.tanh(xh + r * hh), c

    cell = lstm if family == "lstm" else gru

    def forward(p, x):
        zeros = jnp.zeros((x.shape[0], UNITS), x.dtype)

        def step(carry, xt):
            return cell(p, *carry, xt), None

        (h, _), _ = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(x, 0, 1))
        return jax.nn.relu(h @ p["D1"] + p["d1"]) @ p["D2"] + p["d2"]

    return forward


def epoch_function(family: str, train_batches: int):
    """A jitted ``epoch(state, x, y, xv, yv) -> (state, val_loss)``: ``train_batches`` Adam
    steps over ``x``, ``y`` (batches on the first axis), then the mean Huber loss of the
    validation batches ``xv``, ``yv``. ``state``: (params, Adam's m, v, step count).
    ``b`` holds the input bias and, for the GRU, the recurrent one (Keras' reset_after)."""
    import jax

    jnp = jax.numpy
    forward = _forward(jax, family)

    def huber(pred, y):
        err = jnp.abs(pred - y)
        return jnp.mean(jnp.where(err <= 1.0, 0.5 * err ** 2, err - 0.5))

    def adam_step(p, m, v, t, x, y):
        g = jax.grad(lambda q: huber(forward(q, x), y))(p)
        t = t + 1
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        lr = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = jax.tree.map(lambda a, b, c: a - lr * b / (jnp.sqrt(c) + 1e-7), p, m, v)
        return p, m, v, t

    def epoch(state, x, y, xv, yv):
        state = jax.lax.fori_loop(0, train_batches, lambda i, s: adam_step(*s, x[i], y[i]),
                                  state)
        val = jax.lax.fori_loop(0, xv.shape[0], lambda i, a: a + huber(
            forward(state[0], xv[i]), yv[i]), 0.0)
        return state, val / xv.shape[0]

    return jax.jit(epoch, donate_argnums=0)


def measure(family: str, train_samples: int, val_samples: int, look_back: int, batch: int,
            epochs: int, warmup: int) -> dict:
    """Steady-state ms/epoch (median after ``warmup`` epochs) of the hand-written training on
    windows of the given shapes (random values: the arithmetic does not depend on them). Full
    batches only (a smaller last batch is left out), so it is a lower bound."""
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    n, nv = train_samples // batch, max(1, val_samples // batch)
    x = rng.normal(size=(n, batch, look_back, 1)).astype("float32")
    y = rng.normal(size=(n, batch, 1)).astype("float32")
    xv = rng.normal(size=(nv, batch, look_back, 1)).astype("float32")
    yv = rng.normal(size=(nv, batch, 1)).astype("float32")
    epoch = epoch_function(family, n)
    params = _init(jax, family, 1)
    zeros = jax.tree.map(jax.numpy.zeros_like, params)
    state = (params, zeros, jax.tree.map(jax.numpy.zeros_like, params), jax.numpy.float32(0))
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        state, val = epoch(state, x, y, xv, yv)
        float(val)  # waits for the epoch, as an epoch's end waits for its validation loss
        seconds.append(time.perf_counter() - started)
    tail = seconds[warmup:] or seconds
    return {"steady_ms_per_epoch": 1000 * statistics.median(tail), "train_batches": n,
            "val_batches": nv}
