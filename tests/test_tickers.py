"""tickers: a symbol is validated once, before it can become part of a file or folder name;
``file_part`` / ``run_part`` turn it into one; ``listed`` reads a multi-ticker config."""

from __future__ import annotations

import pytest
from helpers import invoke

from stockrnn import tickers
from stockrnn.config import load_config
from stockrnn.errors import ConfigError

GOOD = {"GOOG": "GOOG", "goog": "GOOG", "^GSPC": "^GSPC", "BRK-B": "BRK-B", "brk.b": "BRK.B",
        "EURUSD=X": "EURUSD=X", "7203.T": "7203.T", "RW_1": "RW_1", "A" * 32: "A" * 32}
BAD = ["", "../../evil", "..", ".", "...", "a/b", "a\\b", "A B", " GOOG", "A" * 33,
       "$AAPL", "ÄPPLE", "a:b", "*"]


@pytest.mark.parametrize("symbol", list(GOOD))
def test_check_accepts_symbols_and_upper_cases_them(symbol):
    assert tickers.check(symbol) == GOOD[symbol]


@pytest.mark.parametrize("symbol", BAD)
def test_check_refuses_what_is_not_a_symbol(symbol):
    with pytest.raises(ValueError) as info:
        tickers.check(symbol, "data.ticker")
    assert str(info.value) == f"data.ticker: {symbol!r} is not a ticker symbol ({tickers.ALLOWED})"


def test_check_refuses_non_strings():
    for value in (None, 7203, ["GOOG"]):
        with pytest.raises(ValueError, match="is not a ticker symbol"):
            tickers.check(value)


def test_check_all_keeps_the_order_and_refuses_duplicates():
    assert tickers.check_all(["msft", "GOOG", "^VIX"], "TICKER") == ["msft", "GOOG", "^VIX"]
    with pytest.raises(ValueError, match="TICKER: goog is listed twice"):
        tickers.check_all(["GOOG", "goog"], "TICKER")
    with pytest.raises(ValueError, match="TICKER: 'a/b' is not a ticker symbol"):
        tickers.check_all(["GOOG", "a/b"], "TICKER")


def test_name_parts():
    assert tickers.file_part("goog") == "GOOG"
    assert tickers.file_part("^GSPC") == "^GSPC"
    assert tickers.run_part("^VIX") == "_VIX"
    assert tickers.run_part("EURUSD=X") == "EURUSD_X"
    assert tickers.run_part("brk-b") == "BRK-B"
    assert tickers.run_part("7203.T") == "7203.T"
    for bad in ("../../evil", "a/b", ""):
        with pytest.raises(ValueError):
            tickers.file_part(bad)
        with pytest.raises(ValueError):
            tickers.run_part(bad)


def test_fetch_of_a_path_exits_2_and_writes_nothing(work):
    """A ticker argument is never a path: nothing is written, not even ``data/.._.._EVIL...``."""
    for args in (["../../evil"], ["GOOG", "../../evil"], ["a/b"]):
        result = invoke("fetch", *args, "--source", "sample", code=2)
        assert result.stderr.startswith("Error: TICKER: ") and "is not a ticker symbol" in \
            result.stderr, result.stderr
        assert list(work.rglob("*")) == []
    # nor from a config
    result = invoke("fetch", "--set", "data.ticker=../../evil", "--set", "data.source=sample",
                    code=2)
    assert "data.ticker" in result.stderr
    assert list(work.rglob("*")) == []


# --------------------------------------------------------------------------- listed


def test_tickers_file_with_comments(work):
    f = work / "watch.txt"
    f.write_text("# my watch list\nRW1\n\n  AR2   # trending\nmsft\n")
    cfg = load_config(None, [f"data.tickers_file={f}"])
    assert cfg.is_batch and tickers.listed(cfg) == ["RW1", "AR2", "msft"]
    sub = cfg.for_ticker("AR2")
    assert sub.data.ticker == "AR2" and not sub.is_batch and sub.run_name == "lstm-AR2"
    assert load_config(None, ["data.tickers=[RW1, AR2]"]).for_ticker("^VIX").run_name == \
        "lstm-_VIX"
    assert tickers.listed(load_config(None, ["data.tickers=[b, A]"])) == ["b", "A"]


def test_tickers_file_problems_are_config_errors(work):
    (work / "dup.txt").write_text("RW1\nrw1\n")
    (work / "empty.txt").write_text("# nothing\n")
    (work / "evil.txt").write_text("RW1\n../../evil\n")
    for name, message in (("dup.txt", "listed twice"), ("empty.txt", "lists no tickers"),
                          ("missing.txt", "cannot read"), ("evil.txt", "not a ticker symbol")):
        cfg = load_config(None, [f"data.tickers_file={work / name}"])
        with pytest.raises(ConfigError, match=message) as info:
            tickers.listed(cfg)
        assert info.value.exit_code == 2
    result = invoke("run", "--set", f"data.tickers_file={work / 'missing.txt'}", code=2)
    assert "data.tickers_file" in result.stderr
