"""Ensembles: the members of ``model.type: ensemble`` and the one Keras model that averages them.

An ensemble is ``model.members`` (each a complete model config, see
``ModelConfig.member_configs``) times ``model.seeds``. Training fits each member on its own
(``training.fit_ensemble``); this module names them, and combines their networks into one
functional model whose output is the mean of theirs (a Keras ``Average`` layer over the member
networks, each a nested model named after its member). The run saves that one model, so
evaluate, predict, export, compare and backtest treat it like any other, and its conformal
intervals come from its own validation residuals. Under the log_return target the mean of the
outputs is the mean forecast log return.
"""

from __future__ import annotations

import collections
import dataclasses

from stockrnn.backend import use
from stockrnn.config import ModelConfig

AVERAGE = "mean"   # the Average layer's name


@dataclasses.dataclass(frozen=True)
class Member:
    name: str           # lstm_s42, or lstm_2_s42 when two members are LSTMs
    model: ModelConfig  # a complete, non-ensemble model config
    seed: int


def members(cfg: ModelConfig, seed: int) -> list[Member]:
    """The ensemble's members in training order: each of ``model.members`` once per seed of
    ``model.seeds`` (default: ``seed``, the run's train.seed)."""
    configs = cfg.member_configs()
    count = collections.Counter(m.type for m in configs)
    seen: collections.Counter = collections.Counter()
    out = []
    for m in configs:
        seen[m.type] += 1
        label = m.type if count[m.type] == 1 else f"{m.type}_{seen[m.type]}"
        out += [Member(f"{label}_s{s}", m, s) for s in (cfg.seeds or (seed,))]
    return out


def combine(networks: dict[str, object], input_shape, name: str = "ensemble"):
    """One functional model whose output is the mean of ``networks``' outputs (name -> model,
    each taking ``input_shape`` windows), each network nested under its name."""
    keras = use()
    inputs = keras.Input(shape=tuple(input_shape), name="window")
    outputs = [_renamed(keras, net, key)(inputs) for key, net in networks.items()]
    return keras.Model(inputs, keras.layers.Average(name=AVERAGE)(outputs), name=name)


def _renamed(keras, net, name: str):
    """``net`` (a functional model) under another name, sharing its layers and weights."""
    return keras.Model(net.input, net.output, name=name)


def networks(model) -> dict[str, object]:
    """The member networks of an ensemble model (name -> nested model), in order; {} for a
    model that is not an ensemble."""
    names = [layer.name for layer in model.layers]
    if AVERAGE not in names or model.name != "ensemble":
        return {}
    return {layer.name: layer for layer in model.layers if hasattr(layer, "layers")}
