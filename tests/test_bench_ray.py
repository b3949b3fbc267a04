"""The benchmark's two-node Ray section (benchmarks/ray_cluster.py): skipped in --tiny mode,
wired into ``python -m benchmarks``, its checks and its rendering. Nothing is started here: the
cluster itself runs in tests/test_ray.py."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAD, WORKER = "a" * 56, "b" * 56


def _benchmarks(monkeypatch):
    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.__main__")


def fake_ray(ray_mase: float = 0.99) -> dict:
    def batch(nodes, mase):
        return {t: {"status": "ok", "mase": m, "node": n, "error": None}
                for (t, m), n in zip({"GOOG": mase, "RW1": 1.0}.items(), nodes, strict=True)}

    def backtest(nodes):
        return {"pooled_mase": 0.998, "folds": [{"fold": i, "mase": 0.99, "node": n}
                                                for i, n in enumerate(nodes)]}

    return {"config": "configs/multi.yaml", "backtest_sets": ["data.tickers=null",
                                                              "data.ticker=AR1"],
            "folds": 2, "cluster_start_seconds": 21.5, "cluster_stop_seconds": 0.4,
            "nodes": {"head": HEAD, "worker1": WORKER}, "address": "10.0.0.1:6379",
            "batch": {"serial": {"seconds": 30.0, "result": batch([None, None], 0.99)},
                      "ray": {"seconds": 25.0, "result": batch([HEAD, WORKER], ray_mase)}},
            "backtest": {"serial": {"seconds": 40.0, "result": backtest([None, None])},
                         "ray": {"seconds": 30.0, "result": backtest([WORKER, HEAD])}}}


def test_skipped_in_tiny_mode_wired_checked_and_rendered(monkeypatch):
    main = _benchmarks(monkeypatch)
    from benchmarks import machine, modes, ray_cluster, report

    assert ray_cluster.measure(modes.TINY) == {"skipped": "not measured in --tiny mode"}
    assert modes.QUICK.ray_cluster and ("ray", ray_cluster.measure) in main.SECTIONS
    res = fake_ray()
    res["checks"] = ray_cluster.checks(res, [HEAD, WORKER])
    assert [c["status"] for c in res["checks"]] == ["PASS"] * 4
    assert main.checks_of({"ray": res}) == res["checks"]
    md = report.render({"mode": "quick", "command": "python -m benchmarks --quick",
                        "machine": machine.describe(), "versions": machine.versions(),
                        "ray": res, "targets": res["checks"]})
    assert "## Ray on two nodes" in md and "started with `ray start`" in md
    assert "| batch | `stockrnn -q run --config configs/multi.yaml` | 30.0 | 25.0 | 0.83 | " \
           "head, worker1 |" in md
    assert "folds on 0: worker1, 1: head." in md


def test_a_difference_or_one_idle_node_misses(monkeypatch):
    _benchmarks(monkeypatch)
    from benchmarks import ray_cluster

    res = fake_ray(ray_mase=0.98)
    res["batch"]["ray"]["result"]["RW1"]["node"] = HEAD  # the worker node never ran a ticker
    status = {c["name"]: c["status"] for c in ray_cluster.checks(res, [HEAD, WORKER])}
    assert status["ray cluster: batch MASE on two nodes equals serial (max abs difference)"] \
        == "MISS"
    assert status["ray cluster: nodes the batch's tickers ran on"] == "MISS"
    assert status["ray cluster: nodes the backtest's folds ran on"] == "PASS"


def test_free_ports_are_distinct_bindable_and_never_handed_out_twice(monkeypatch):
    """The cluster's ports: all different (two equal ones made `ray start --head` refuse to
    start), each free, and never handed out twice by one process, even when the system
    answers the same port to two requests in a row (simulated: that race is rare)."""
    import socket

    _benchmarks(monkeypatch)
    from benchmarks import ray_cluster

    monkeypatch.setattr(ray_cluster, "_HANDED_OUT", set())
    first, second = ray_cluster.free_ports(3), ray_cluster.free_ports(2)
    assert len(set(first + second)) == 5
    for port in first + second:
        with socket.socket() as s:
            s.bind(("", port))

    answers = iter([41000, 41000, 41001, 41000, 41001, 41002])

    class System:  # a socket whose bind(port 0) gets the next answer
        def bind(self, address):
            self.port = next(answers)

        def getsockname(self):
            return ("0.0.0.0", self.port)

        def close(self):
            pass

    monkeypatch.setattr(ray_cluster, "socket", types.SimpleNamespace(socket=System))
    assert ray_cluster.free_ports(2) == [41000, 41001]
    assert ray_cluster.free_ports(1) == [41002]


def test_a_failed_background_start_says_why_and_leaves_nothing(monkeypatch):
    """A start in the background that fails (here `ray start` exits 1) stops what it started
    from its own thread and ``wait`` raises the start's own error, not one of the cleanup's."""
    _benchmarks(monkeypatch)
    from benchmarks import ray_cluster

    monkeypatch.setattr(ray_cluster, "ray_command", lambda: ["false"])
    cluster = ray_cluster.LocalCluster(nodes=2).start_in_background()
    try:
        cluster.wait()
    except RuntimeError as exc:
        assert str(exc).startswith("`false start --head") and "exited 1" in str(exc), exc
    else:
        raise AssertionError("a start whose `ray start` exits 1 did not fail")
    assert cluster.tmp is not None and not cluster.tmp.exists()  # its folder removed
    cluster.stop()  # and stopping again (as the fixture's teardown does) is harmless
