"""``run``/``backtest --executor ray``: the jobs as Ray tasks on a real two-node Ray cluster.

A head and a worker node (``ray start``, one CPU each, their own temp folders and ports: the
``LocalCluster`` of benchmarks/ray_cluster.py) are started once for the module and stopped at
its end, killing exactly their processes. First, though, a batch runs on a local Ray instance
(``--executor ray`` without ``--ray-address``), which this process starts and shuts down. This process connects to the cluster once, as a
driver, with the code the CLI uses (``jobs.connect``); the CLI then runs on that connection, so
each node's Ray worker imports TensorFlow once for the whole module. The tiny batch and
backtest must give the serial results, with jobs on both nodes; then the worker node is killed
in the middle of a batch. The runs travel through shared storage: both nodes see the test's
folder, as every node of a real cluster must see ``paths.runs_dir`` (docs/scale.md).

Needs the ray extra (``make test`` installs it). The checks of the options (no Ray installed,
wrong combinations), of the shared-folder check and of the CPUs a task asks for start nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from helpers import REPO, in_folder, invoke, sets

TICKERS = ["RW1", "AR2"]
TINY = {"window.look_back": 10, "model.units": [4], "train.epochs": 2, "train.batch_size": 128,
        "data.source": "synthetic", "paths.run_name": "b", "data.tickers": TICKERS}
ONE = {k: v for k, v in TINY.items() if k != "data.tickers"}
BACKTEST = [*sets(**ONE, **{"data.ticker": "AR2"}), "--folds", "2"]
# Serial and Ray jobs train with the same seeds and op determinism; a Ray task may use fewer
# threads, which could only change float32 summation order: 1e-6 as in tests/test_batch.py
# (measured: equal to the bit)
TOLERANCE = 1e-6
# a lost node must fail its ticker within this (Ray marks its task failed in seconds)
LOST_NODE_TIMEOUT = 120
# The lost-node batch: 10 epochs (still one batch per compiled call, so the nodes' workers reuse
# their compiled models) keep its tickers training long enough to be killed in the middle,
# where TINY's 2 epochs on warm workers take about a quarter of a second in all
LOST = {**TINY, "train.epochs": 10}
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="the ray extra is not installed "
                                                    "(pip install -e '.[ray]'; make test does)")


def test_executor_ray_without_ray_exits_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = invoke("run", *sets(**TINY), "--executor", "ray", code=2)
    assert "pip install 'stockrnn[ray]'" in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any batch folder or training
    out = json.loads(invoke("run", *sets(**TINY), "--executor", "ray", "--json", code=2).stdout)
    assert out["exit_code"] == 2 and "stockrnn[ray]" in out["error"]


def test_ray_options_need_a_batch_and_each_other(tmp_path):
    result = invoke("run", *sets(**TINY), "--ray-address", "auto", code=2)
    assert "--ray-address needs --executor ray" in result.stderr
    result = invoke("run", *sets(**ONE), "--executor", "ray", code=2)
    assert "multi-ticker" in result.stderr
    assert not (tmp_path / "runs").exists()


class FakeRay(types.SimpleNamespace):
    """Just what ``jobs`` asks a connected Ray: the node of this task, the cluster's nodes."""

    def __init__(self, node="f" * 56, nodes=()):
        ctx = types.SimpleNamespace(get_node_id=lambda: node)
        super().__init__(get_runtime_context=lambda: ctx, nodes=lambda: list(nodes))


def test_a_task_on_a_node_without_the_shared_folder_fails_saying_so(monkeypatch, tmp_path):
    from stockrnn import jobs
    from stockrnn.options import RunOptions

    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    monkeypatch.setattr(jobs, "_RAY_NODE", None)
    ran = []
    missing = tmp_path / "runs" / "b" / "batch-x"  # what a node without the shared disk sees
    out = jobs._ray_job(lambda item, opts: ran.append(item), "RW1", RunOptions(threads=1), {},
                        str(tmp_path), 20, (str(missing),))
    assert isinstance(out, jobs.JobFailed) and not ran
    assert f"{missing} is not visible on Ray node {'f' * 56}" in out.error
    assert "storage every node shares" in out.error
    assert out.where() == {"host": socket.gethostname(), "node": "f" * 56}
    missing.mkdir(parents=True)
    assert jobs._ray_job(lambda item, opts: item, "RW1", RunOptions(threads=1), {},
                         str(tmp_path), 20, (str(missing),)) == "RW1"
    assert jobs.where()["node"] == "f" * 56  # a job in this task records its node


def test_a_task_asks_for_no_more_cpus_than_the_largest_node_has():
    from stockrnn import jobs
    from stockrnn.errors import StockRNNError

    def node(cpus, alive=True):
        return {"Alive": alive, "Resources": {"CPU": cpus}}

    assert jobs.task_cpus(FakeRay(nodes=[node(1), node(1)]), 8) == 1  # else it waits forever
    assert jobs.task_cpus(FakeRay(nodes=[node(16), node(4)]), 8) == 8
    assert jobs.task_cpus(FakeRay(nodes=[node(16, alive=False), node(2)]), 8) == 2
    with pytest.raises(StockRNNError, match="no live node with a CPU"):
        jobs.task_cpus(FakeRay(nodes=[node(0)]), 1)


@needs_ray
def test_local_ray_instance_batch_equals_serial(serial, monkeypatch, tmp_path):
    """``--executor ray`` without ``--ray-address`` starts a Ray of its own here (``jobs`` x
    ``threads`` CPUs), runs the batch on it and shuts it down. Runs before the module's tests connect this
    process to the two-node cluster (a connected process would reuse that connection).

    A new local Ray turns token authentication on for its process (RAY_AUTH_MODE=token in the
    environment and in Ray's cached config, a token in ~/.ray) unless RAY_AUTH_MODE says
    otherwise; that would outlive this test and be passed on to the cluster's nodes, so it is
    off here, and the home is a temporary one."""
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not ray.is_initialized()
    path = os.environ.get("PYTHONPATH")
    # one job: a Ray of 1 x 2 CPUs and one worker process, which imports TensorFlow once
    out = json.loads(invoke("run", *sets(**TINY), "--executor", "ray", "--jobs", "1",
                            "--json").stdout)
    assert out["status"] == "ok" and out["executor"] == "ray" and out["failed"] == []
    assert os.environ.get("PYTHONPATH") == path  # set for Ray's processes only
    assert out["ray_address"] is None and not ray.is_initialized()  # shut down after
    for r in out["tickers"]:
        assert r["node"] and r["mase"] == pytest.approx(serial["batch"][r["ticker"]]["mase"],
                                                        abs=TOLERANCE)


# --------------------------------------------------------------------------- two nodes


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU each, on this machine; stopped after the module."""
    if not HAVE_RAY:
        pytest.skip("the ray extra is not installed (pip install -e '.[ray]'; make test does)")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO))  # benchmarks/ is a folder of the repository
        from benchmarks.ray_cluster import LocalCluster
    local = LocalCluster(nodes=2, cpus=1)
    try:
        yield local.start_in_background()  # booting while `serial` runs; `driver` waits
    finally:
        local.stop()


@pytest.fixture(scope="module")
def driver(cluster):
    """This process connected to the cluster as the CLI connects (the CLI then uses it)."""
    import ray

    from stockrnn import jobs
    from stockrnn.options import RunOptions

    cluster.wait()
    print(f"\nRay cluster of 2 nodes started in {cluster.start_seconds}s", file=sys.stderr)
    assert jobs.connect(ray, RunOptions(executor="ray", ray_address=cluster.address))
    try:
        yield ray
    finally:
        ray.shutdown()  # before the cluster stops: a driver without its head gives up its process


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict:
    """The tiny batch and backtest run here, one job after another."""
    base = tmp_path_factory.mktemp("serial")
    with in_folder(base):
        batch = json.loads(invoke("run", *sets(**TINY), "--json").stdout)
        backtest = json.loads(invoke("backtest", *BACKTEST, "--json").stdout)
    return {"batch": {r["ticker"]: r for r in batch["tickers"]}, "backtest": backtest}


def on_ray(cluster, *args, code: int | None = 0):
    return invoke(*args, "--executor", "ray", "--ray-address", cluster.address, "--json",
                  code=code)


@needs_ray
def test_batch_on_two_nodes_equals_serial(cluster, serial, driver, work):
    out = json.loads(on_ray(cluster, "run", *sets(**TINY)).stdout)
    assert out["status"] == "ok" and out["failed"] == [] and out["executor"] == "ray"
    assert out["ray_address"] == cluster.address
    rows = {r["ticker"]: r for r in out["tickers"]}
    assert list(rows) == TICKERS  # config order
    assert {r["node"] for r in rows.values()} == set(cluster.node_ids)  # one ticker per node
    for t, r in rows.items():
        assert r["status"] == "ok" and r["host"] == socket.gethostname()
        assert r["mase"] == pytest.approx(serial["batch"][t]["mase"], abs=TOLERANCE)
        assert r["test_mae"] == pytest.approx(serial["batch"][t]["test_mae"], abs=TOLERANCE)
        run = work / r["run_dir"]  # in the driver's runs folder, whichever node trained it
        assert run.parent.name == f"b-{t}"
        assert json.loads((run / "meta.json").read_text())["status"] == "complete"
        assert (run / "forecast.csv").is_file()
    csv = (work / out["batch_dir"] / "summary.csv").read_text().splitlines()
    assert csv[0].endswith(",host,node") and all(r["node"] in csv[1 + i]
                                                  for i, r in enumerate(rows.values()))


@needs_ray
def test_backtest_on_two_nodes_equals_serial(cluster, serial, driver, work):
    out = json.loads(on_ray(cluster, "backtest", *BACKTEST).stdout)
    one = serial["backtest"]
    assert [f["fold"] for f in out["folds"]] == [0, 1]
    assert {f["node"] for f in out["folds"]} == set(cluster.node_ids)  # one fold model each
    for f, g in zip(out["folds"], one["folds"], strict=True):
        assert f["model"]["mase"] == pytest.approx(g["model"]["mase"], abs=TOLERANCE)
        assert (Path(f["run_dir"]) / "model.keras").is_file()  # written from either node
    assert out["pooled"]["model"]["mase"] == pytest.approx(one["pooled"]["model"]["mase"],
                                                           abs=TOLERANCE)
    folds_csv = (work / out["backtest_dir"] / "folds.csv").read_text().splitlines()
    assert folds_csv[0].endswith(",host,node")
    assert all(node in "\n".join(folds_csv[1:]) for node in cluster.node_ids)


@needs_ray
def test_a_lost_worker_node_fails_its_ticker_and_keeps_the_others(cluster, driver, work):
    """The worker node is killed (every process of it, as if its machine were lost) once both
    tickers are training: its ticker is reported failed, the head's finishes and is kept, and
    the batch ends within seconds (no retries: docs/scale.md)."""
    started = {t: work / "runs" / f"b-{t}" for t in TICKERS}
    killed: list[float] = []  # when the kill began
    batch_over = threading.Event()

    def kill_when_both_train():
        while not batch_over.is_set():
            if all(any(d.glob("2*/meta.json")) for d in started.values()):
                # the time first: Ray fails the lost task as soon as the node's processes die,
                # so the batch may end before the kill has waited for all of them to exit
                killed.append(time.monotonic())
                cluster.kill("worker1")
                return
            batch_over.wait(0.05)

    result: list = []
    batch = threading.Thread(target=lambda: result.append(
        on_ray(cluster, "run", *sets(**LOST), code=None)), daemon=True)
    killer = threading.Thread(target=kill_when_both_train, daemon=True)
    killer.start()
    batch.start()
    batch.join(LOST_NODE_TIMEOUT)
    assert not batch.is_alive(), f"the batch still runs {LOST_NODE_TIMEOUT}s after the start"
    finished = time.monotonic()
    batch_over.set()
    killer.join(LOST_NODE_TIMEOUT)  # a kill under way finishes before the checks
    assert killed, "the worker node was never killed: the tickers never both trained"
    (res,) = result
    assert res.exit_code == 1, res.stderr  # a failed ticker, --allow-failures 0
    out = json.loads(res.stdout)
    rows = {r["ticker"]: r for r in out["tickers"]}
    (lost,) = [r for r in rows.values() if r["status"] == "failed"]
    (kept,) = [r for r in rows.values() if r["status"] == "ok"]
    assert out["failed"] == [lost["ticker"]] and out["ok"] == 1
    worker = cluster.node("worker1").node_id
    assert "NodeDiedError" in lost["error"] and lost["node"] == worker
    assert kept["node"] == cluster.head.node_id
    (work / "alone").mkdir()
    with in_folder(work / "alone"):  # the kept ticker run alone here: the same numbers
        one = {k: v for k, v in LOST.items() if k != "data.tickers"}
        alone = json.loads(invoke("run", *sets(**one, **{"data.ticker": kept["ticker"]}),
                                  "--json").stdout)
    assert kept["mase"] == pytest.approx(alone["metrics"]["model"]["mase"], abs=TOLERANCE)
    run = work / kept["run_dir"]
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    summary = json.loads((work / out["batch_dir"] / "summary.json").read_text())
    assert summary["failed"] == [lost["ticker"]]
    assert finished - killed[0] < LOST_NODE_TIMEOUT
    print(f"\nbatch ended {finished - killed[0]:.1f}s after the worker node was killed",
          file=sys.stderr)
