"""Config: defaults, the shipped configs, every class of bad input (ConfigError, exit 2, naming the
key), ``--set`` overrides reaching the model, and hypothesis fuzzing of the loader (every failure
is a ConfigError with a message). The ``config`` commands and bad configs given to ``run`` are in
test_cli_config.py."""

from __future__ import annotations

import datetime as dt
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import CONFIG_FILES, FUZZ, MULTI, SMOKE
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from stockrnn import tickers
from stockrnn.config import Config, apply_overrides, load_config
from stockrnn.errors import ConfigError


def config_error(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    assert info.value.exit_code == 2
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defaults and files


def test_defaults():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.data.source == "sample" and cfg.data.ticker == "GOOG"
    assert cfg.data.features == ("Close",) and cfg.data.target == "Close"
    assert (cfg.window.look_back, cfg.window.foresight, cfg.window.horizon) == (30, 0, 1)
    assert (cfg.split.train, cfg.split.val, cfg.split.test) == (0.70, 0.15, 0.15)
    assert cfg.scaling.scaler == "standard" and cfg.scaling.target_transform == "log_return"
    assert cfg.model.type == "lstm" and cfg.model.units == (32,)
    assert cfg.train.epochs == 100 and cfg.train.seed == 42
    assert cfg.train.early_stopping.patience == 10
    assert cfg.run_name == "lstm"  # defaults to the model type


def test_default_paths_follow_env(monkeypatch, tmp_path):
    monkeypatch.delenv("STOCKRNN_DATA_DIR", raising=False)
    monkeypatch.delenv("STOCKRNN_RUNS_DIR", raising=False)
    cfg = load_config(None)
    assert cfg.data_dir == Path("data") and cfg.runs_dir == Path("runs")
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(tmp_path / "r"))
    assert cfg.data_dir == tmp_path / "d" and cfg.runs_dir == tmp_path / "r"
    # an explicit paths.* setting wins over the environment
    cfg = load_config(None, [f"paths.runs_dir={tmp_path / 'x'}"])
    assert cfg.runs_dir == tmp_path / "x"


def test_config_is_frozen():
    cfg = load_config(None)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.window.look_back = 5  # type: ignore[misc]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert cfg.model.type == raw["model"]["type"]
    assert cfg.run_name == raw["paths"]["run_name"]
    # the resolved YAML is itself a valid config that loads back to the same thing
    assert Config.model_validate(yaml.safe_load(cfg.to_yaml())) == cfg


def test_shipped_configs_exist():
    names = {p.name for p in CONFIG_FILES}
    assert {"smoke.yaml", "lstm.yaml", "gru.yaml", "simple_rnn.yaml", "conv1d.yaml"} <= names


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing here\n")) == Config()


# --------------------------------------------------------------------------- bad input classes


def test_unknown_key_suggests_the_closest(tmp_path):
    msg = config_error(SMOKE, ["window.look_bak=5"])
    assert msg == f"{SMOKE}: window.look_bak: unknown key (did you mean look_back?)"
    path = write(tmp_path, "model:\n  type: gru\n  unitz: [4]\n")
    assert config_error(path) == f"{path}: model.unitz: unknown key (did you mean units?)"


def test_unknown_key_without_a_close_match_lists_the_valid_ones():
    msg = config_error(None, ["window.zzzzzz=1"])
    assert msg.startswith("<defaults>: window.zzzzzz: unknown key (valid: ")
    assert "look_back, foresight, horizon" in msg
    msg = config_error(None, ["bogus.x=1"])
    assert "bogus: unknown key" in msg and "data, window, split" in msg


@pytest.mark.parametrize("override, key", [
    ("window.look_back=abc", "window.look_back"),
    ("train.epochs=1.5", "train.epochs"),
    ("train.learning_rate=fast", "train.learning_rate"),
    ("model.bidirectional=maybe", "model.bidirectional"),
    ("model.units=eight", "model.units"),
    ("data.features=[Close, Price]", "data.features"),
    ("data.start=yesterday", "data.start"),
    ("model=3", "model"),
])
def test_wrong_type_names_the_key(override, key):
    msg = config_error(SMOKE, [override])
    assert msg.startswith(f"{SMOKE}: {key}: "), msg


@pytest.mark.parametrize("value", ["0", "-3"])
def test_look_back_must_be_positive(value):
    msg = config_error(SMOKE, [f"window.look_back={value}"])
    assert msg == (f"{SMOKE}: window.look_back: Input should be greater than 0. "
                   f"Received: look_back={int(value)}")


@pytest.mark.parametrize("override, key", [
    ("window.horizon=0", "window.horizon"),
    ("window.foresight=-1", "window.foresight"),
    ("train.epochs=0", "train.epochs"),
    ("train.batch_size=-8", "train.batch_size"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.units=[8, 0]", "model"),
])
def test_out_of_range_values(override, key):
    msg = config_error(SMOKE, [override])
    assert msg.startswith(f"{SMOKE}: {key}: "), msg


def test_split_fractions_must_sum_to_one():
    msg = config_error(SMOKE, ["split.train=0.5"])
    assert msg == f"{SMOKE}: split: split fractions must sum to 1. Received: train+val+test=0.8"
    # a sum within float noise of 1 is fine
    cfg = load_config(SMOKE, ["split.train=0.6", "split.val=0.3", "split.test=0.1"])
    assert cfg.split.train + cfg.split.val + cfg.split.test == pytest.approx(1.0)


def test_unknown_model_type_lists_the_valid_ones():
    msg = config_error(SMOKE, ["model.type=transformer"])
    assert msg.startswith(f"{SMOKE}: model.type: ")
    for name in ("simple_rnn", "lstm", "gru", "conv1d"):
        assert name in msg
    assert "Received: type='transformer'" in msg


def test_conv1d_kernel_longer_than_look_back():
    msg = config_error(SMOKE, ["model.type=conv1d", "window.look_back=3"])
    assert msg == (f"{SMOKE}: model.kernel_size: model.kernel_size (5) must be <= "
                   "window.look_back (3)")
    # equal is fine, and other model types ignore kernel_size
    load_config(SMOKE, ["model.type=conv1d", "window.look_back=5", "model.pool_size=1"])
    load_config(SMOKE, ["model.type=lstm", "window.look_back=3"])


def test_conv1d_pooling_deeper_than_look_back():
    msg = config_error(SMOKE, ["model.type=conv1d", "window.look_back=7", "model.kernel_size=2",
                               "model.pool_size=2", "model.conv_layers=3"])
    assert msg.startswith(f"{SMOKE}: window.look_back: window.look_back (7) is too short for 3 ")


def test_data_cross_checks():
    msg = config_error(SMOKE, ["data.start=2020-01-01", "data.end=2019-01-01"])
    assert msg.startswith(f"{SMOKE}: data: ") and "data.start (2020-01-01)" in msg
    assert "lists a column twice" in config_error(SMOKE, ["data.features=[Close, Close]"])
    assert "data.path is required" in config_error(SMOKE, ["data.source=csv"])


def test_every_problem_gets_its_own_line():
    msg = config_error(SMOKE, ["window.look_back=0", "model.unitz=3", "train.epochs=x"])
    lines = msg.splitlines()
    assert len(lines) == 3
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"window.look_back", "model.unitz", "train.epochs"}
    assert all(line.startswith(f"{SMOKE}: ") for line in lines)


def test_yaml_syntax_error_has_the_line_number(tmp_path):
    path = write(tmp_path, "data:\n  ticker: GOOG\nwindow:\n  look_back: 10: 3\n")
    msg = config_error(path)
    assert msg.startswith(f"{path}: line 4: YAML syntax error: "), msg
    assert "mapping values are not allowed here" in msg
    path = write(tmp_path, "window:\n  look_back: 10\nmodel:\n\tunits: [3]\n", "tab.yaml")
    assert config_error(path).startswith(f"{path}: line 4: YAML syntax error: ")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"{path}: no such config file"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    msg = config_error(path)
    assert msg.startswith(f"{path}: top level must be a mapping of sections")
    assert "data, window, split, scaling, model, train, paths" in msg


@pytest.mark.parametrize("item", ["look_back", "=3", " =3"])
def test_malformed_set(item):
    assert "expected section.key=value" in config_error(None, [item])


def test_set_into_a_scalar_is_an_error():
    assert "look_back is not a section" in config_error(SMOKE, ["window.look_back.x=3"])


# --------------------------------------------------------------------------- --set overrides


def test_set_parses_yaml_scalars_and_lists():
    cfg = load_config(SMOKE, [
        "model.units=[16,8]", "window.look_back=12", "model.dropout=0.25",
        "model.bidirectional=true", "train.learning_rate=0.01", "data.start=2010-01-04",
        "data.features=[Close, Volume]", "paths.run_name=exp-1",
    ])
    assert cfg.model.units == (16, 8)
    assert cfg.window.look_back == 12
    assert cfg.model.dropout == 0.25
    assert cfg.model.bidirectional is True
    assert cfg.train.learning_rate == 0.01
    assert cfg.data.start == dt.date(2010, 1, 4)
    assert cfg.data.features == ("Close", "Volume")
    assert cfg.run_name == "exp-1"
    # untouched keys keep the file's values
    assert cfg.train.epochs == 2 and cfg.model.type == "lstm"


def test_set_creates_missing_sections_and_keeps_the_file_unchanged(tmp_path):
    path = write(tmp_path, "model:\n  type: gru\n")
    raw = yaml.safe_load(path.read_text())
    out = apply_overrides(raw, ["train.early_stopping.patience=3"], str(path))
    assert out == {"model": {"type": "gru"}, "train": {"early_stopping": {"patience": 3}}}
    assert raw == {"model": {"type": "gru"}}  # a copy, not the caller's dict
    cfg = load_config(path, ["train.early_stopping.patience=3"])
    assert cfg.train.early_stopping.patience == 3 and cfg.model.type == "gru"


def test_set_later_override_wins():
    cfg = load_config(SMOKE, ["window.look_back=5", "window.look_back=7"])
    assert cfg.window.look_back == 7


@pytest.mark.parametrize("ticker", ["ON", "YES", "7203", "1e3"])
def test_set_string_keys_take_the_text_verbatim(ticker):
    """YAML 1.1 would read ON as true and 7203 as a number; a ticker is always text."""
    cfg = load_config(SMOKE, [f"data.ticker={ticker}"])
    assert cfg.data.ticker == ticker


def test_set_reaches_the_model():
    from stockrnn.models.registry import build_model

    cfg = load_config(SMOKE, ["model.units=[16,8]", "window.horizon=3", "window.look_back=6"])
    model = build_model(cfg.model, (cfg.window.look_back, len(cfg.data.features)),
                        cfg.window.horizon)
    recurrent = [layer for layer in model.layers if layer.name.startswith("lstm_")]
    assert [layer.units for layer in recurrent] == [16, 8]
    assert [layer.return_sequences for layer in recurrent] == [True, False]
    assert model.input_shape == (None, 6, 1)
    assert model.output_shape == (None, 3)


def test_dataset_hash_tracks_only_dataset_keys():
    base = load_config(SMOKE).dataset_hash()
    assert load_config(SMOKE, ["model.units=[3]", "train.epochs=9"]).dataset_hash() == base
    for over in (["window.look_back=11"], ["window.horizon=2"], ["scaling.scaler=minmax"],
                 ["split.train=0.6", "split.val=0.25"], ["data.features=[Close, Open]"]):
        assert load_config(SMOKE, over).dataset_hash() != base, over


# --------------------------------------------------------------------------- multi-ticker configs


def test_per_ticker_source_and_bundled_multi_config():
    cfg = load_config(MULTI)
    assert tickers.listed(cfg) == ["GOOG", "RW1", "RW2", "AR1"]
    assert cfg.for_ticker("GOOG").data.source == "sample"
    assert cfg.for_ticker("RW1").data.source == "synthetic"
    assert cfg.for_ticker("RW1").run_name == "multi-RW1"


# --------------------------------------------------------------------------- fuzzing

FIELDS = sorted({name for model in [Config, *[f.annotation for f in Config.model_fields.values()]]
                 for name in model.model_fields} | {"patience", "min_delta"})
WORD = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10)
# keys: field names or words
KEY = st.one_of(st.sampled_from(FIELDS), WORD,
                st.sampled_from(["1", "null", "true", "-", "~", "2020-01-01", "? [a]"]))
SCALAR = st.one_of(
    st.sampled_from(["", "~", "null", "true", "no", "1", "-3", "0.5", "1e400", ".nan", "-.inf",
                     "2020-01-01", "[]", "{}", "[1, 2", "{a: 1", "'", '"', "|", ">",
                     "&a 1", "*a", "*zz", "!!python/name:os.system", "!!binary AAA", "!!set {a}",
                     "@", "`", "%YAML", "[10, 20]", "{type: gru}", "lstm",
                     "sample", "yahoo", "csv", "- 1", "0x1F", "0o17", "1_000", "9" * 40,
                     "2020-02-30", "2020-13-45", "!!int abc", "!!bool maybe", "!!timestamp x",
                     "&r [*r]"]),
    WORD, st.integers(), st.floats().map(repr))


@st.composite
def yamlish(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        indent = "  " * draw(st.integers(0, 2))
        sep = draw(st.sampled_from([": ", ":", " : ", ": ", "\t: ", "= "]))
        lines.append(f"{indent}{draw(KEY)}{sep}{draw(SCALAR)}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n---\n", "\n...\n"]))


VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
              st.dates().map(str)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(KEY, inner, max_size=4)),
    max_leaves=12)
CONFIG_DICT = st.dictionaries(
    st.one_of(st.sampled_from(list(Config.model_fields)), WORD),
    st.one_of(st.dictionaries(KEY, VALUE, max_size=5), VALUE), max_size=5)


def load_config_bytes(blob: bytes) -> None:
    """load_config on a file holding ``blob``: a Config, or a ConfigError with a message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(blob)
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            assert str(exc).strip(), "empty message"
            assert all(line.startswith(str(path)) for line in str(exc).splitlines()), str(exc)
        else:
            assert isinstance(cfg, Config)


@FUZZ
@given(text=st.one_of(yamlish(), st.text(max_size=200)))
@example(text="window: [1, 2]\n")
@example(text="- a\n- b\n")
@example(text="data:\n  source: sample\n  start: 2020-01-01\n  end: 2019-01-01\n")
def test_fuzz_load_config_text(text):
    load_config_bytes(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(blob=st.binary(max_size=300))
@example(blob=b"\xff\xfe\x00w\x00i")
@example(blob=b"window:\x00 1")
def test_fuzz_load_config_bytes(blob):
    load_config_bytes(blob)


@FUZZ
@given(raw=CONFIG_DICT)
@example(raw={"window": {"look_back": 10 ** 30}})
@example(raw={"model": {"units": [0, -1]}})
@example(raw={"paths": {"run_name": "../x"}})
@example(raw={"model": {"type": "conv1d", "kernel_size": 50}})
def test_fuzz_load_config_dicts(raw):
    load_config_bytes(yaml.safe_dump(raw).encode())


@FUZZ
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}",
              st.lists(KEY, min_size=1, max_size=3).map(".".join), SCALAR),
    st.text(max_size=20)), max_size=4))
def test_fuzz_set_overrides(overrides):
    try:
        load_config(SMOKE, overrides)
    except ConfigError as exc:
        assert str(exc).strip()


def test_fuzz_target_accepts_a_good_config():
    """The fuzzed loader accepts good input (so the fuzzing tells good from bad)."""
    assert load_config(SMOKE).window.look_back == 10
