"""SimpleRNN, LSTM and GRU builders (stacked, optional dropout and bidirectional wrapping)."""

from __future__ import annotations

from stockrnn.backend import use
from stockrnn.config import ModelConfig
from stockrnn.models.head import head

# The longest window ``model.unroll: auto`` unrolls, per family, on TensorFlow. Unrolled,
# TensorFlow runs a SimpleRNN stack 1.7-2.4x faster per epoch at look_back 7-30 for 0.4-3.3 s
# more tracing. LSTM and GRU (configs/lstm.yaml, gru.yaml on the sample, 25 epochs, 2 cores):
# faster epochs at look_back 3-7 (LSTM 56-72 -> 51-53 ms at 3, 94 -> 72 ms at 7; GRU 63 -> 36
# ms at 3, 106 -> 58 ms at 7) for about the same first epoch; from 10 steps on, the first
# epoch grows (GRU +0.9 s at 10, LSTM +1.9 s at 30). On JAX (whose scan is compiled by XLA)
# unrolling is slower.
AUTO_UNROLL_MAX_STEPS = {"simple_rnn": 32, "lstm": 7, "gru": 7}
# LSTM and GRU are unrolled only for a training of at least this many batches (epochs x batches
# per epoch, before early stopping): a few epochs save little against tracing the larger graph
# (the test suite, whose trainings are tiny, took 244.9 s with them unrolled, 233.8 s without,
# in one A/B pair on a noisy machine); configs/lstm.yaml's 100 epochs of 33 batches qualify.
AUTO_UNROLL_MIN_BATCHES = {"lstm": 1000, "gru": 1000}


def unrolled(cfg: ModelConfig, steps: int, backend: str) -> bool:
    """Whether to unroll the recurrent layers (``model.unroll``; ``auto``: see above)."""
    if cfg.unroll != "auto":
        return cfg.unroll
    return backend == "tensorflow" and steps <= AUTO_UNROLL_MAX_STEPS.get(cfg.type, 0)


def for_training(cfg: ModelConfig, batches: int) -> ModelConfig:
    """``cfg`` for a training of ``batches`` batches: ``unroll: auto`` of an LSTM or GRU
    becomes ``false`` when the training is shorter than ``AUTO_UNROLL_MIN_BATCHES``."""
    if cfg.unroll == "auto" and batches < AUTO_UNROLL_MIN_BATCHES.get(cfg.type, 0):
        return cfg.model_copy(update={"unroll": False})
    return cfg


def _recurrent(layer_name: str, cfg: ModelConfig, input_shape, horizon: int):
    keras = use()
    layer_cls = getattr(keras.layers, layer_name)
    unroll = unrolled(cfg, input_shape[0], keras.backend.backend())
    inputs = keras.Input(shape=input_shape, name="window")
    x = inputs
    for i, units in enumerate(cfg.units):
        layer = layer_cls(units, dropout=cfg.dropout, recurrent_dropout=cfg.recurrent_dropout,
                          return_sequences=i < len(cfg.units) - 1, unroll=unroll,
                          name=f"{cfg.type}_{i}")
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
