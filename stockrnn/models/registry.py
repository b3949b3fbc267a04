"""Model registry: ``name -> builder(model_cfg, input_shape, horizon) -> keras.Model``, derived
from the builders themselves (a builder is named after its ``model.type``)."""

from __future__ import annotations

from collections.abc import Callable

from stockrnn.config import ModelConfig
from stockrnn.errors import ConfigError
from stockrnn.models import conv, recurrent
from stockrnn.models.ensemble import combine, members

Builder = Callable[[ModelConfig, tuple[int, int], int], object]


def ensemble(cfg: ModelConfig, input_shape, horizon: int):
    """The untrained ensemble of the config's members (named with seed 0), averaged (see
    ``models.ensemble``); each member's head starts at zero, so it predicts persistence too.
    Training fits each member on its own instead (``training.fit_ensemble``)."""
    return combine({m.name: build_model(m.model, input_shape, horizon)
                    for m in members(cfg, 0)}, input_shape)


BUILDERS: dict[str, Builder] = {b.__name__: b for b in (
    recurrent.simple_rnn, recurrent.lstm, recurrent.gru, conv.conv1d, ensemble)}


def names() -> list[str]:
    return list(BUILDERS)


def build_model(cfg: ModelConfig, input_shape: tuple[int, int], horizon: int):
    if cfg.type not in BUILDERS:
        raise ConfigError(f"unknown model type {cfg.type!r}; valid: {', '.join(BUILDERS)}")
    return BUILDERS[cfg.type](cfg, input_shape, horizon)
