"""The output head every model family shares."""

from __future__ import annotations

from stockrnn.config import ModelConfig


def head(keras, x, cfg: ModelConfig, horizon: int):
    """Dense hidden layers then a linear output of ``horizon`` units, initialised at zero: an
    untrained model predicts 0, which under the log_return target is exactly the persistence
    forecast, so training starts from the baseline and has to earn every move away from it."""
    for i, units in enumerate(cfg.dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    return keras.layers.Dense(horizon, kernel_initializer="zeros", bias_initializer="zeros",
                              name="forecast")(x)
