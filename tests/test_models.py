"""The model registry: every type builds with a ``horizon``-wide output, trains, survives a
``.keras`` save/load with identical predictions; stacked and bidirectional layers; bad types."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import config

from stockrnn.config import ModelConfig
from stockrnn.errors import ConfigError
from stockrnn.models import registry

LOOK_BACK, FEATURES, HORIZON = 8, 2, 3
TINY = {
    "simple_rnn": ModelConfig(type="simple_rnn", units=(4,)),
    "lstm": ModelConfig(type="lstm", units=(4,), dropout=0.1),
    "gru": ModelConfig(type="gru", units=(4,)),
    "conv1d": ModelConfig(type="conv1d", filters=4, kernel_size=3, pool_size=2, dense_units=(4,)),
}


@pytest.fixture(scope="module")
def keras():
    from stockrnn.backend import seed_everything, use

    k = use()
    seed_everything(0)
    return k


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, LOOK_BACK, FEATURES)).astype("float32")
    y = np.stack([x[:, -1, 0] * (k + 1) for k in range(HORIZON)], axis=1).astype("float32")
    return x, y


def test_registry_names_match_builders_and_config():
    from typing import get_args

    from stockrnn.config import ModelType

    assert registry.names() == ["simple_rnn", "lstm", "gru", "conv1d", "ensemble"]
    assert list(registry.BUILDERS) == registry.names()
    assert set(get_args(ModelType)) == set(registry.names())


@pytest.mark.parametrize("kind", list(TINY))
def test_build_train_save_load(kind, keras, tmp_path):
    from stockrnn.training import load_model

    model = registry.build_model(TINY[kind], (LOOK_BACK, FEATURES), HORIZON)
    assert model.name == kind
    assert model.input_shape == (None, LOOK_BACK, FEATURES)
    assert model.output_shape == (None, HORIZON)
    assert model.layers[-1].name == "forecast"
    assert model.layers[-1].activation.__name__ == "linear"

    x, y = data()
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mae")
    hist = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert np.isfinite(hist.history["loss"]).all()
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))

    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.name == kind
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x_new, _ = data(10, seed=1)
    p1 = model.predict(x_new, verbose=0)
    p2 = loaded.predict(x_new, verbose=0)
    assert p1.shape == (10, HORIZON)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("horizon", [1, 5])
@pytest.mark.parametrize("kind", list(TINY))
def test_output_width_is_the_horizon(kind, horizon, keras):
    model = registry.build_model(TINY[kind], (LOOK_BACK, 1), horizon)
    assert model.output_shape == (None, horizon)
    assert model.predict(np.zeros((2, LOOK_BACK, 1), "float32"), verbose=0).shape == (2, horizon)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_stacked_bidirectional(kind, keras):
    cfg = ModelConfig(type=kind, units=(6, 4, 3), bidirectional=True, dense_units=(5,))
    model = registry.build_model(cfg, (LOOK_BACK, FEATURES), HORIZON)
    names = [layer.name for layer in model.layers]
    assert names == ["window", f"bi_{kind}_0", f"bi_{kind}_1", f"bi_{kind}_2", "dense_0",
                     "forecast"]
    bis = [model.get_layer(f"bi_{kind}_{i}") for i in range(3)]
    assert all(isinstance(b, keras.layers.Bidirectional) for b in bis)
    assert [b.forward_layer.units for b in bis] == [6, 4, 3]
    assert [b.backward_layer.units for b in bis] == [6, 4, 3]
    # every layer but the last returns sequences; each direction doubles the width
    assert bis[0].output.shape == (None, LOOK_BACK, 12)
    assert bis[1].output.shape == (None, LOOK_BACK, 8)
    assert bis[2].output.shape == (None, 6)
    assert model.get_layer("dense_0").units == 5
    assert model.output_shape == (None, HORIZON)


def test_stacked_unidirectional_with_dropout(keras):
    cfg = ModelConfig(type="lstm", units=(5, 3), dropout=0.2, recurrent_dropout=0.1)
    model = registry.build_model(cfg, (LOOK_BACK, 1), 2)
    layers = [model.get_layer("lstm_0"), model.get_layer("lstm_1")]
    assert [la.units for la in layers] == [5, 3]
    assert [la.return_sequences for la in layers] == [True, False]
    assert all(la.dropout == 0.2 and la.recurrent_dropout == 0.1 for la in layers)
    assert not any(isinstance(la, keras.layers.Bidirectional) for la in model.layers)


def test_conv1d_blocks(keras):
    cfg = ModelConfig(type="conv1d", filters=6, kernel_size=3, pool_size=2, conv_layers=2,
                      dropout=0.1)
    model = registry.build_model(cfg, (LOOK_BACK, 1), 2)
    names = [layer.name for layer in model.layers]
    assert names == ["window", "conv_0", "pool_0", "conv_1", "pool_1", "dropout", "flatten",
                     "forecast"]
    assert model.get_layer("conv_0").filters == 6
    assert model.get_layer("conv_0").kernel_size == (3,)
    assert model.get_layer("conv_0").padding == "causal"
    assert model.get_layer("flatten").output.shape == (None, (LOOK_BACK // 4) * 6)
    no_pool = registry.build_model(ModelConfig(type="conv1d", filters=2, kernel_size=2,
                                               pool_size=1), (LOOK_BACK, 1), 1)
    assert not any("pool" in layer.name for layer in no_pool.layers)


def test_conv1d_is_causal(keras):
    """A causal convolution's first output steps cannot see later inputs of the window."""
    model = registry.build_model(ModelConfig(type="conv1d", filters=3, kernel_size=3,
                                             pool_size=1), (LOOK_BACK, 1), 1)
    conv = keras.Model(model.input, model.get_layer("conv_0").output)
    x = np.random.default_rng(0).normal(size=(1, LOOK_BACK, 1)).astype("float32")
    x2 = x.copy()
    x2[0, -1, 0] += 10.0
    a, b = conv.predict(x, verbose=0), conv.predict(x2, verbose=0)
    np.testing.assert_array_equal(a[0, :-1], b[0, :-1])
    assert not np.array_equal(a[0, -1], b[0, -1])


def test_unknown_type_lists_the_valid_ones():
    cfg = ModelConfig.model_construct(type="transformer")
    with pytest.raises(ConfigError) as info:
        registry.build_model(cfg, (LOOK_BACK, 1), 1)
    assert info.value.exit_code == 2
    assert str(info.value) == ("unknown model type 'transformer'; valid: simple_rnn, lstm, gru, "
                               "conv1d, ensemble")


def test_ensemble_is_the_mean_of_its_member_networks(keras, tmp_path):
    """The registry's ensemble: one functional model, each member network nested under its
    name, an Average of their outputs; it survives a .keras save/load (on the other backend
    too: built-in layers only)."""
    from stockrnn.models.ensemble import networks
    from stockrnn.training import load_model

    cfg = ModelConfig(type="ensemble", units=(4,), filters=4, kernel_size=3,
                      members=("lstm", "conv1d"), seeds=(7,))
    model = registry.build_model(cfg, (LOOK_BACK, FEATURES), HORIZON)
    assert model.name == "ensemble" and model.output_shape == (None, HORIZON)
    assert list(networks(model)) == ["lstm_s7", "conv1d_s7"]
    assert networks(registry.build_model(TINY["lstm"], (LOOK_BACK, FEATURES), HORIZON)) == {}
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    x, _ = data(10)
    mean = np.mean([net.predict_on_batch(x) for net in networks(model).values()], axis=0)
    np.testing.assert_allclose(model.predict_on_batch(x), mean, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "ensemble.keras")
    loaded = load_model(tmp_path / "ensemble.keras")
    assert list(networks(loaded)) == ["lstm_s7", "conv1d_s7"]
    np.testing.assert_allclose(loaded.predict_on_batch(x), mean, rtol=1e-5, atol=1e-6)


def test_unknown_type_is_rejected_by_the_config():
    with pytest.raises(ConfigError) as info:
        config("model.type=transformer")
    for name in registry.names():
        assert f"'{name}'" in str(info.value)


def test_parameter_count_grows_with_units(keras):
    small = registry.build_model(ModelConfig(type="gru", units=(4,)), (LOOK_BACK, 1), 1)
    big = registry.build_model(ModelConfig(type="gru", units=(8,)), (LOOK_BACK, 1), 1)
    assert big.count_params() > small.count_params()


def test_unroll_auto_unrolls_short_windows_on_tensorflow(keras):
    """model.unroll: auto unrolls recurrent stacks on TensorFlow up to a window length per
    family (SimpleRNN 32, LSTM and GRU 7: faster), not longer windows, and LSTM/GRU only in
    trainings of 1,000 batches or more; true/false are obeyed; unrolled and looped give the same
    outputs with the same weights. On JAX auto never unrolls."""
    from stockrnn.models.recurrent import AUTO_UNROLL_MAX_STEPS, unrolled

    def unroll_flags(cfg, steps):
        model = registry.build_model(cfg, (steps, FEATURES), HORIZON)
        return {layer.unroll for layer in model.layers if hasattr(layer, "unroll")}

    assert keras.backend.backend() == "tensorflow"
    rnn = ModelConfig(type="simple_rnn", units=(4, 4))
    assert AUTO_UNROLL_MAX_STEPS == {"simple_rnn": 32, "lstm": 7, "gru": 7}
    for cfg in (rnn, TINY["lstm"], TINY["gru"]):
        longest = AUTO_UNROLL_MAX_STEPS[cfg.type]
        assert unroll_flags(cfg, min(LOOK_BACK, longest)) == {True}, cfg.type
        assert unroll_flags(cfg, longest) == {True}, cfg.type
        assert unroll_flags(cfg, longest + 1) == {False}, cfg.type
        assert not unrolled(cfg, 3, "jax")
    assert unroll_flags(TINY["gru"].model_copy(update={"unroll": True}), 40) == {True}
    assert unroll_flags(rnn.model_copy(update={"unroll": False}), LOOK_BACK) == {False}

    # a training too short to gain from it keeps LSTM/GRU looped (trainings are compiled by
    # training.compiled_model, which is told their length); SimpleRNN and explicit values stay
    from stockrnn import training
    from stockrnn.config import TrainConfig
    from stockrnn.models.recurrent import AUTO_UNROLL_MIN_BATCHES, for_training

    assert AUTO_UNROLL_MIN_BATCHES == {"lstm": 1000, "gru": 1000}
    for cfg in (TINY["lstm"], TINY["gru"]):
        assert for_training(cfg, 999).unroll is False
        assert for_training(cfg, 1000) == cfg
        assert for_training(cfg.model_copy(update={"unroll": True}), 10).unroll is True
        for batches, flag in ((10, False), (5000, True)):
            model = training.compiled_model(cfg, TrainConfig(), (LOOK_BACK - 1, FEATURES),
                                            HORIZON, 1, batches=batches)
            assert {layer.unroll for layer in model.layers if hasattr(layer, "unroll")} \
                == {flag}, (cfg.type, batches)
    assert for_training(rnn, 10) == rnn

    x, _ = data()
    rng = np.random.default_rng(1)
    for cfg in (rnn, TINY["lstm"], TINY["gru"]):
        looped = registry.build_model(cfg.model_copy(update={"unroll": False}),
                                      (LOOK_BACK, FEATURES), HORIZON)
        rolled_out = registry.build_model(cfg, (LOOK_BACK, FEATURES), HORIZON)
        looped.set_weights([rng.normal(size=w.shape).astype("float32")
                            for w in looped.get_weights()])
        rolled_out.set_weights(looped.get_weights())
        np.testing.assert_allclose(rolled_out.predict_on_batch(x), looped.predict_on_batch(x),
                                   rtol=1e-5, atol=1e-6, err_msg=cfg.type)
