"""The lectures' recipe, written out as the course does it, as the baseline for speed.

Python-loop windows over MinMax-scaled closing prices (scaler fitted on the training split),
a ``keras.Sequential`` with the same layers as stockrnn's model for the family, then
``model.compile("adam", "mae")`` and ``model.fit(X, y, validation_data=..., epochs=E,
batch_size=32, verbose=0)`` with default settings. The only addition is a callback that times
each epoch (the same span stockrnn's epoch log line measures: begin to end, validation included).
"""

from __future__ import annotations

import time

import numpy as np

RECURRENT = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def sample_close() -> np.ndarray:
    """The bundled GOOG sample's closing prices, as the course loads them: one column."""
    from stockrnn.data.sources import SampleSource

    frame = SampleSource().fetch("GOOG", None, None, "1d")
    return frame["Close"].to_numpy(dtype="float64").reshape(-1, 1)


def make_windows(data, look_back: int, foresight: int = 0):
    X, y = [], []
    for i in range(len(data) - look_back - foresight):
        X.append(data[i:i + look_back])
        y.append(data[i + look_back + foresight])
    return np.array(X), np.array(y)


def sequential(keras, model_cfg, look_back: int, n_features: int = 1, horizon: int = 1):
    """keras.Sequential with the layers stockrnn's builder makes for ``model_cfg``."""
    m = model_cfg
    layers = [keras.Input(shape=(look_back, n_features))]
    if m.type in RECURRENT:
        cls = getattr(keras.layers, RECURRENT[m.type])
        for i, units in enumerate(m.units):
            layer = cls(units, dropout=m.dropout, recurrent_dropout=m.recurrent_dropout,
                        return_sequences=i < len(m.units) - 1)
            layers.append(keras.layers.Bidirectional(layer) if m.bidirectional else layer)
    else:
        for _ in range(m.conv_layers):
            layers.append(keras.layers.Conv1D(m.filters, m.kernel_size, padding="causal",
                                              activation="relu"))
            if m.pool_size > 1:
                layers.append(keras.layers.MaxPooling1D(m.pool_size, padding="same"))
        if m.dropout:
            layers.append(keras.layers.Dropout(m.dropout))
        layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(u, activation="relu") for u in m.dense_units]
    layers.append(keras.layers.Dense(horizon))
    return keras.Sequential(layers)


def epoch_timer(keras):
    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.cpu_seconds: list[float] = []  # process CPU time (all threads)

        def on_epoch_begin(self, epoch, logs=None):
            self._t, self._cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t)
            self.cpu_seconds.append(time.process_time() - self._cpu)

    return EpochTimer()


def train(model_cfg, epochs: int, look_back: int = 7, batch_size: int = 32,
          split=(0.70, 0.15), seed: int = 42) -> dict:
    """Run the recipe once; timings and sizes (the model itself is not kept)."""
    from sklearn.preprocessing import MinMaxScaler

    from stockrnn.backend import use

    keras = use()
    started = time.perf_counter()
    data = sample_close()
    train_end = int(len(data) * split[0])
    val_end = int(len(data) * (split[0] + split[1]))
    scaler = MinMaxScaler().fit(data[:train_end])
    scaled = scaler.transform(data)
    X_train, y_train = make_windows(scaled[:train_end], look_back)
    X_val, y_val = make_windows(scaled[train_end:val_end], look_back)
    keras.utils.set_random_seed(seed)
    model = sequential(keras, model_cfg, look_back)
    model.compile("adam", "mae")
    timer = epoch_timer(keras)
    fit_started = time.perf_counter()
    model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=epochs,
              batch_size=batch_size, verbose=0, callbacks=[timer])
    done = time.perf_counter()
    return {"epoch_seconds": timer.seconds, "epoch_cpu_seconds": timer.cpu_seconds,
            "fit_seconds": done - fit_started,
            "total_seconds": done - started, "train_samples": len(X_train),
            "val_samples": len(X_val), "parameters": int(model.count_params())}
