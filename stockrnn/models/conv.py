"""Conv1D builder: causal convolution + max-pooling blocks, flattened into a Dense head."""

from __future__ import annotations

from stockrnn.backend import use
from stockrnn.config import ModelConfig
from stockrnn.models.head import head


def conv1d(cfg: ModelConfig, input_shape, horizon: int):
    keras = use()
    inputs = keras.Input(shape=input_shape, name="window")
    x = inputs
    for i in range(cfg.conv_layers):
        x = keras.layers.Conv1D(cfg.filters, cfg.kernel_size, padding="causal",
                                activation="relu", name=f"conv_{i}")(x)
        if cfg.pool_size > 1:
            x = keras.layers.MaxPooling1D(cfg.pool_size, padding="same", name=f"pool_{i}")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, head(keras, x, cfg, horizon), name="conv1d")
