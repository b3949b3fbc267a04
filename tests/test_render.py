"""render: every table, CSV and JSON, with one rule for missing values: ``-`` in a table, an
empty field in CSV, ``null`` in JSON."""

from __future__ import annotations

import csv
import io
import json

from stockrnn import render


def test_cell_and_percent():
    assert render.MISSING == "-"
    assert render.cell(None) == "-" and render.cell(None, ".4f") == "-"
    assert render.cell(1.234567, ".4f") == "1.2346" and render.cell(3, "d") == "3"
    assert render.cell(0.0, ".2f") == "0.00"  # zero is a value, not a missing one
    assert render.percent(None) == "-" and render.percent(0.537) == "53.7%"


def test_csv_and_json_of_missing_values():
    rows = [{"a": 1.5, "b": None, "c": "x"}, {"a": None, "b": 0, "c": None}]
    text = render.to_csv(rows, ["a", "b", "c"])
    assert text == "a,b,c\n1.5,,x\n,0,\n"
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[1] == {"a": "", "b": "0", "c": ""}
    assert json.loads(render.to_json(rows)) == rows
    assert '"b": null' in render.to_json(rows[0])


LEADER = {"run": "runs/lstm/20240101T000000Z", "model": "lstm", "ticker": "GOOG",
          "look_back": 30, "epochs": 12, "test_mae": 6.5, "mase": 0.9984,
          "directional_accuracy": 0.537, "train_seconds": 6.5}
UNSCORED = {**LEADER, "run": "runs/lstm/20240102T000000Z", "test_mae": None, "mase": None,
            "directional_accuracy": None, "model": None}


def test_leaderboard_missing_values_in_each_format():
    table = render.leaderboard([LEADER, UNSCORED], "table").splitlines()
    assert table[1].split()[:8] == ["lstm", "GOOG", "30", "12", "6.5000", "0.9984", "53.7%",
                                    "6.5"]
    assert table[2].split()[:8] == ["-", "GOOG", "30", "12", "-", "-", "-", "6.5"]
    assert table[-1] == "('-': run `stockrnn evaluate --run RUN` to score it)"
    assert "to score it" not in render.leaderboard([LEADER], "table")
    rows = list(csv.DictReader(io.StringIO(render.leaderboard([LEADER, UNSCORED], "csv"))))
    assert list(rows[0]) == list(render.LEADERBOARD_COLUMNS)
    assert (rows[1]["mase"], rows[1]["test_mae"], rows[1]["model"]) == ("", "", "")
    back = json.loads(render.leaderboard([LEADER, UNSCORED], "json"))
    assert back[1]["mase"] is None and back[1]["model"] is None and back[0] == LEADER


def test_batch_table_of_a_failed_ticker():
    ok = {"ticker": "GOOG", "status": "ok", "error": None, "run_dir": "runs/b-GOOG/x",
          "mase": 0.99, "directional_accuracy": 0.51, "test_mae": 1.2, "persistence_mae": 1.21,
          "seconds": 3.25}
    bad = {"ticker": "NOPE", "status": "failed", "error": "no such ticker", "run_dir": None,
           "mase": None, "directional_accuracy": None, "test_mae": None,
           "persistence_mae": None, "seconds": None}
    lines = render.batch_table([ok, bad]).splitlines()
    assert lines[1].split() == ["GOOG", "ok", "0.9900", "51.0%", "1.2000", "3.2", "runs/b-GOOG/x"]
    assert lines[2].split()[:6] == ["NOPE", "failed", "-", "-", "-", "-"]
    assert lines[2].endswith("error: no such ticker")
    rows = list(csv.DictReader(io.StringIO(render.to_csv([ok, bad], render.BATCH_COLUMNS))))
    assert rows[1]["mase"] == "" and rows[1]["run_dir"] == "" and rows[1]["error"] == \
        "no such ticker"


def metrics(mae, da, p):
    return {"mae": mae, "rmse": mae * 1.4, "mape": 1.0, "mase": mae / 2.0,
            "directional_accuracy": da, "direction_p_value": p}


def test_evaluation_table_marks_what_persistence_cannot_have():
    result = {"split": "test", "n": 3, "first": "2024-01-02", "last": "2024-01-04", "horizon": 1,
              "model": metrics(1.9, 0.537, 0.2), "intervals": {"0.8": {"coverage": 0.845}},
              "baselines": {"persistence": metrics(2.0, None, None)}}
    lines = render.evaluation(result).splitlines()
    model = next(ln for ln in lines if ln.startswith("model "))
    per = next(ln for ln in lines if ln.startswith("persistence "))
    assert model.split()[-2:] == ["53.7%", "0.200"]
    assert per.split()[-2:] == ["-", "-"]
    assert lines[-1] == "interval coverage: 80% -> 84.5%"
