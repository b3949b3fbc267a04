"""SimpleRNN, LSTM and GRU builders (stacked, optional dropout and bidirectional wrapping)."""

from __future__ import annotations

from stockrnn.backend import use
from stockrnn.config import ModelConfig
from stockrnn.models.registry import head


def _recurrent(layer_name: str, cfg: ModelConfig, input_shape, horizon: int):
    keras = use()
    layer_cls = getattr(keras.layers, layer_name)
    inputs = keras.Input(shape=input_shape, name="window")
    x = inputs
    for i, units in enumerate(cfg.units):
        layer = layer_cls(units, dropout=cfg.dropout, recurrent_dropout=cfg.recurrent_dropout,
                          return_sequences=i < len(cfg.units) - 1, name=f"{cfg.type}_{i}")
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{cfg.type}_{i}")
        x = layer(x)
    return keras.Model(inputs, head(keras, x, cfg, horizon), name=cfg.type)


def simple_rnn(cfg: ModelConfig, input_shape, horizon: int):
    return _recurrent("SimpleRNN", cfg, input_shape, horizon)


def lstm(cfg: ModelConfig, input_shape, horizon: int):
    return _recurrent("LSTM", cfg, input_shape, horizon)


def gru(cfg: ModelConfig, input_shape, horizon: int):
    return _recurrent("GRU", cfg, input_shape, horizon)
