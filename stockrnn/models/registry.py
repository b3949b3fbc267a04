"""Model registry: ``name -> builder(model_cfg, input_shape, horizon) -> keras.Model``, derived
from the builders themselves (a builder is named after its ``model.type``)."""

from __future__ import annotations

from collections.abc import Callable

from stockrnn.config import ModelConfig
from stockrnn.errors import ConfigError
from stockrnn.models import conv, ensemble, recurrent

Builder = Callable[[ModelConfig, tuple[int, int], int], object]
BUILDERS: dict[str, Builder] = {b.__name__: b for b in (
    recurrent.simple_rnn, recurrent.lstm, recurrent.gru, conv.conv1d, ensemble.ensemble)}


def names() -> list[str]:
    return list(BUILDERS)


def build_model(cfg: ModelConfig, input_shape: tuple[int, int], horizon: int):
    if cfg.type not in BUILDERS:
        raise ConfigError(f"unknown model type {cfg.type!r}; valid: {', '.join(BUILDERS)}")
    return BUILDERS[cfg.type](cfg, input_shape, horizon)
