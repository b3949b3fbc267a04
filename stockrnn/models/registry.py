"""Model registry: ``name -> builder(model_cfg, input_shape, horizon) -> keras.Model``."""

from __future__ import annotations

from collections.abc import Callable

from stockrnn.config import ModelConfig
from stockrnn.errors import ConfigError

Builder = Callable[[ModelConfig, tuple[int, int], int], object]


def _builders() -> dict[str, Builder]:
    from stockrnn.models import conv, recurrent

    return {"simple_rnn": recurrent.simple_rnn, "lstm": recurrent.lstm, "gru": recurrent.gru,
            "conv1d": conv.conv1d}


def names() -> list[str]:
    return ["simple_rnn", "lstm", "gru", "conv1d"]


def build_model(cfg: ModelConfig, input_shape: tuple[int, int], horizon: int):
    builders = _builders()
    if cfg.type not in builders:
        raise ConfigError(f"unknown model type {cfg.type!r}; valid: {', '.join(builders)}")
    return builders[cfg.type](cfg, input_shape, horizon)


def head(keras, x, cfg: ModelConfig, horizon: int):
    """Dense hidden layers then a linear output of ``horizon`` units, initialised at zero: an
    untrained model predicts 0, which under the log_return target is exactly the persistence
    forecast, so training starts from the baseline and has to earn every move away from it."""
    for i, units in enumerate(cfg.dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    return keras.layers.Dense(horizon, kernel_initializer="zeros", bias_initializer="zeros",
                              name="forecast")(x)
