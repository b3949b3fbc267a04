"""The benchmark's quality section with an ensemble row: its members kept untrained over the
seeds, and the line against its best member (per seed, the member with the lowest test MAE in
that run). Nothing is trained here: the runs' results are made up."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensemble_run(seed: int, mase: float, best: float, beats: bool) -> dict:
    """What a quality worker returns for one ensemble run (two members, one kept untrained)."""
    return {"family": "ensemble", "dataset": "sample", "seed": seed, "n": 322, "mase": mase,
            "directional_accuracy": 0.5, "best_epoch": None,
            "members": {f"lstm_s{seed}": best, f"gru_s{seed}": best + 0.01},
            "best_member": {"name": f"lstm_s{seed}", "mase": best},
            "beats_best_member": beats, "members_kept_untrained": 1}


def test_ensemble_row_says_whether_it_beats_its_best_member(monkeypatch):
    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import modes, quality, report

    assert modes.QUICK.quality_families[-1] == "ensemble"
    raw = [ensemble_run(42, 0.990, 0.995, True), ensemble_run(43, 1.000, 0.998, False)]
    q = {"seeds": [42, 43], "datasets": ["sample"],
         **quality.summarize_all(raw, ["sample"], ["ensemble"], [42, 43])}
    (row,) = q["table"]
    assert row["beats_best_member_seeds"] == 1 and row["beats_best_member"] is True
    assert row["kept_untrained"] == 2 and row["kept_of"] == 4
    md = "\n".join(report._quality(q))
    assert "| sample | ensemble | 322 | 0.9950 ± 0.0071 | 0.9900 / 1.0000 | 2/4 |" in md
    assert ("| sample | 0.9950 ± 0.0071 | 0.9965 ± 0.0021 | 0.9950 / 0.9980 | lstm_s42, "
            "lstm_s43 | 0.998 (0.995..1.002) | 1 of 2 | yes |") in md
    # without an ensemble row there is no such line
    lstm = {"family": "lstm", "dataset": "sample", "seed": 42, "n": 322, "mase": 0.99,
            "directional_accuracy": 0.5, "best_epoch": 3}
    plain = {"seeds": [42], "datasets": ["sample"],
             **quality.summarize_all([lstm], ["sample"], ["lstm"], [42])}
    assert "| sample | lstm | 322 | 0.9900 | 0.9900 | 0/1 |" in "\n".join(report._quality(plain))
    assert "best member" not in "\n".join(report._quality(plain))
