"""gates: the quality gate on one evaluation (``--max-mase``), the batch exit rule (failures
beyond ``--allow-failures`` -> exit 1, else an ok ticker above ``--max-mase`` -> exit 3) and the
backtest gate on pooled MASE."""

from __future__ import annotations

import math

import pytest

from stockrnn import gates
from stockrnn.errors import QualityGateError, StockRNNError


def result(mase: float) -> dict:
    return {"model": {"mase": mase}, "split": "test", "run": "runs/x/20240101T000000Z"}


def test_check_mase_passes_at_or_below_the_gate_and_without_one():
    gates.check_mase(result(0.99), 1.0)
    gates.check_mase(result(1.0), 1.0)  # at the gate passes
    gates.check_mase(result(5.0), None)
    gates.check_mase(result(math.nan), None)  # no gate, nothing to check


def test_check_mase_fails_above_the_gate_with_exit_3_and_the_numbers():
    with pytest.raises(QualityGateError) as info:
        gates.check_mase(result(1.23456), 1.05)
    assert info.value.exit_code == 3
    msg = str(info.value)
    assert "model MASE 1.2346 > --max-mase 1.05 on the test split" in msg
    assert "runs/x/20240101T000000Z/metrics_test.json" in msg  # where the metrics were written


def test_check_mase_a_mase_that_is_not_a_number_fails_the_gate():
    with pytest.raises(QualityGateError):
        gates.check_mase(result(math.nan), 10.0)


def row(ticker: str, status: str = "ok", mase: float | None = 1.0) -> dict:
    return {"ticker": ticker, "status": status, "mase": mase if status == "ok" else None}


def summary(*rows: dict) -> dict:
    return {"tickers": list(rows), "failed": [r["ticker"] for r in rows if r["status"] != "ok"],
            "batch_dir": "runs/b/batch-20240101T000000Z"}


def test_batch_outcome_all_ok_is_none():
    s = summary(row("A", mase=0.9), row("B", mase=1.1))
    assert gates.batch_outcome(s, 0, None) is None
    assert gates.batch_outcome(s, 0, 1.1) is None  # at the gate passes


def test_batch_outcome_more_failures_than_allowed_is_exit_1():
    s = summary(row("A"), row("B", "failed"), row("C", "failed"))
    err = gates.batch_outcome(s, 1, None)
    assert type(err) is StockRNNError and err.exit_code == 1
    assert str(err).startswith("2 of 3 tickers failed: B, C (--allow-failures 1)")
    assert "runs/b/batch-20240101T000000Z/summary.json" in str(err)
    # failures beyond the allowance win over the quality gate
    s = summary(row("A", mase=9.0), row("B", "failed"))
    assert gates.batch_outcome(s, 0, 1.0).exit_code == 1


def test_batch_outcome_allowed_failures_then_the_gate_on_the_ok_tickers():
    s = summary(row("A", mase=0.9), row("B", "failed"), row("C", mase=1.2), row("D", mase=1.3))
    assert gates.batch_outcome(s, 1, None) is None  # tolerated, no gate
    assert gates.batch_outcome(s, 1, 1.5) is None   # tolerated, every ok ticker passes
    err = gates.batch_outcome(s, 1, 1.0)
    assert isinstance(err, QualityGateError) and err.exit_code == 3
    assert "test MASE above --max-mase 1 for C, D" in str(err)  # only the ok tickers above it
    assert "B" not in str(err).split(" for ")[1].split(" (")[0]
    # a ticker with a MASE that is not a number fails the gate too
    s = summary(row("A", mase=math.nan))
    assert gates.batch_outcome(s, 0, 1.0).exit_code == 3


def test_check_backtest_gate_on_pooled_mase():
    gates.check_backtest({"A": 2.0}, None, "bt")
    gates.check_backtest({"A": 0.99, "B": 1.0}, 1.0, "bt")
    with pytest.raises(QualityGateError) as info:
        gates.check_backtest({"A": 0.99, "B": 1.04321, "C": math.nan}, 1.0, "runs/x/bt")
    assert info.value.exit_code == 3
    assert "B 1.0432" in str(info.value) and "C nan" in str(info.value)
    assert "A 0.99" not in str(info.value) and "runs/x/bt/summary.json" in str(info.value)
