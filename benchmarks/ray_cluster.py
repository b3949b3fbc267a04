"""Ray beyond one process: a head and a worker node on this machine, a multi-ticker batch and a
backtest run on them with ``--executor ray --ray-address``, checked against serial runs, and the
cluster stopped.

    python -m benchmarks.ray_cluster           # the demo (make ray-demo): figures, exit 1 on a miss
    python -m benchmarks --quick --only ray    # the same as a section of docs/benchmarks.md

Each node is a ``ray start`` (the head ``--head --port P``, the other ``--address HEAD:P``) with
one CPU, its own ``--temp-dir`` and free ports, run in a session of its own; ``LocalCluster.stop``
ends exactly the processes of those sessions (never ``ray stop``, which ends every Ray process
of the user on the machine, another cluster's too), and ``LocalCluster.kill`` ends one node as
if its machine were lost. ``tests/test_ray.py`` starts the same cluster.

The runs travel through shared storage (here the machine's own disk): every command runs in one
folder that both nodes see, as on a real cluster where ``paths.runs_dir`` and
``paths.data_dir`` are on storage every node mounts (docs/scale.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import targets
from benchmarks.subprocesses import REPO, child_env

MULTI = REPO / "configs" / "multi.yaml"
# the backtest: one synthetic ticker of configs/multi.yaml, a model per fold
BACKTEST_SETS = ("data.tickers=null", "data.ticker=AR1")
BACKTEST_FOLDS = 4
# serial and two-node results: the same seeds, so equal up to float32 summation order
TOLERANCE = 1e-6


def ray_command() -> list[str]:
    script = Path(sys.executable).parent / "ray"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


_HANDED_OUT: set[int] = set()  # ports free_ports gave in this process


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free now and were not handed out before by this process.
    Each is taken from the system with its socket held open until all ``n`` are chosen: a port
    taken and released at once can be the system's answer to the next request too (two of
    the head's ports once came out equal, and `ray start` refused to start)."""
    held, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            held.append(s)
            s.bind(("", 0))
            port = s.getsockname()[1]
            if port not in _HANDED_OUT and port not in ports:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    _HANDED_OUT.update(ports)
    return ports


@dataclasses.dataclass
class Node:
    name: str             # "head", "worker1", ...
    session: int          # the session id of its processes (the `ray start` process's pid)
    temp_dir: Path
    node_id: str | None   # Ray's node id (hex), from the raylet's log


class LocalCluster:
    """A Ray cluster of ``nodes`` nodes (one head) on this machine, ``cpus`` CPUs each."""

    def __init__(self, nodes: int = 2, cpus: int = 1, env: dict[str, str] | None = None,
                 object_store_mib: int = 100, timeout: float = 180):
        self.n_nodes, self.cpus, self.timeout = nodes, cpus, timeout
        self.env = env or child_env()
        self.object_store = object_store_mib * 1024 ** 2
        self.nodes: list[Node] = []
        self.address: str | None = None
        self.tmp: Path | None = None
        self.start_seconds: float | None = None

    # ---- start

    def start(self) -> LocalCluster:
        t0 = time.perf_counter()
        # short: Ray's socket paths under the temp dir must stay below 107 characters
        self.tmp = Path(tempfile.mkdtemp(prefix="srray-", dir="/tmp"))
        try:
            port, client, dashboard = free_ports(3)
            out = self._node("head", ["--head", "--port", str(port),
                                      "--ray-client-server-port", str(client),
                                      "--dashboard-port", str(dashboard),
                                      "--include-dashboard", "false"])
            found = re.search(r"ray start --address='([^']+)'", out)
            if not found:
                raise RuntimeError(f"no head address in `ray start --head`'s output:\n{out}")
            self.address = found.group(1)
            for i in range(1, self.n_nodes):
                self._node(f"worker{i}", ["--address", self.address])
        except BaseException:
            self.stop()
            raise
        self.start_seconds = round(time.perf_counter() - t0, 1)
        return self

    def start_in_background(self) -> LocalCluster:
        """``start`` in a thread (the nodes boot while the caller works); ``wait`` joins it."""
        def run():
            try:
                self.start()
            except BaseException as exc:  # re-raised by wait()
                self._failed = exc

        self._failed: BaseException | None = None
        self._starting = threading.Thread(target=run, daemon=True)
        self._starting.start()
        return self

    def wait(self) -> LocalCluster:
        """Wait for ``start_in_background`` to finish; raise what it raised."""
        starting = getattr(self, "_starting", None)
        if starting is not None:
            starting.join()
            if self._failed is not None:
                raise self._failed
        return self

    def _node(self, name: str, args: list[str]) -> str:
        temp = self.tmp / name
        cmd = [*ray_command(), "start", *args, "--num-cpus", str(self.cpus),
               "--temp-dir", str(temp), "--object-store-memory", str(self.object_store),
               "--dashboard-agent-listen-port", str(free_ports(1)[0]), "--disable-usage-stats"]
        # Ray turns token authentication on when it finds ~/.ray/auth_token (left by another
        # cluster's `ray get-auth-token --generate`); the nodes of this cluster get a home of
        # their own, so they never pick up a stray token
        env = {**self.env, "HOME": str(self.tmp)}
        proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        node = Node(name, proc.pid, temp, None)
        self.nodes.append(node)  # stop() ends its processes whatever happens next
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`ray start` of the {name} node took over {self.timeout:g}s") \
                from None
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{out[-3000:]}")
        node.node_id = _node_id(temp)
        return out

    # ---- the nodes

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def node_ids(self) -> list[str]:
        return [n.node_id for n in self.nodes if n.node_id]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL every process of one node (raylet, agents, its workers): a lost machine."""
        _end(self.node(name).session, signal.SIGKILL, wait=10)

    def stop(self) -> None:
        """End every process of every node (workers first), remove the temp folders."""
        starting = getattr(self, "_starting", None)
        if starting is not None and starting is not threading.current_thread():
            starting.join()  # a start still under way ends (and cleans up) first
        for node in reversed(self.nodes):
            _end(node.session, signal.SIGKILL, wait=10)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _node_id(temp: Path, wait: float = 10) -> str | None:
    """The node id the raylet logs at start (``node_id=<hex>``)."""
    deadline = time.monotonic() + wait
    while True:
        for log in temp.glob("session_*/logs/raylet.out"):
            found = re.search(r"node_id=([0-9a-f]{20,})", log.read_text(errors="replace"))
            if found:
                return found.group(1)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def _session_pids(session: int) -> list[int]:
    """The live processes of a session (Linux /proc; Ray's workers keep the raylet's session
    even in process groups of their own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[3]) == session and fields[0] != "Z":  # session id; not a zombie
            pids.append(int(entry.name))
    return pids


def _end(session: int, sig: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while pids := _session_pids(session):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of Ray session {session} outlived SIGKILL")
        time.sleep(0.1)


# --------------------------------------------------------------------------- the demo


def _stockrnn(args: list[str], cwd: Path, timeout: float) -> tuple[dict, float]:
    """``stockrnn -q ARGS --json`` in ``cwd``: its summary and wall seconds."""
    from benchmarks.commands import env, stockrnn_command
    from benchmarks.multi import summary_of

    t0 = time.perf_counter()
    proc = subprocess.run([*stockrnn_command(), "-q", *args, "--json"], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)
    seconds = round(time.perf_counter() - t0, 1)
    try:
        return summary_of(proc.stdout), seconds
    except (StopIteration, ValueError):
        raise RuntimeError(f"stockrnn {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-800:]}") from None


def _batch(s: dict) -> dict:
    return {t["ticker"]: {k: t.get(k) for k in ("status", "mase", "node", "error")}
            for t in s["tickers"]}


def _backtest(s: dict) -> dict:
    return {"pooled_mase": s["pooled"]["model"]["mase"],
            "folds": [{"fold": f["fold"], "mase": f["model"]["mase"], "node": f.get("node")}
                      for f in s["folds"]]}


def demo(config: Path = MULTI, folds: int = BACKTEST_FOLDS, timeout: float = 1800) -> dict:
    """Start the two-node cluster, run the batch and the backtest serially and on it, stop it;
    the figures and checks."""
    sets = [a for s in BACKTEST_SETS for a in ("--set", s)]
    runs = {"batch": ["run", "--config", str(config)],
            "backtest": ["backtest", "--config", str(config), *sets, "--folds", str(folds)]}
    out: dict = {"config": str(config.relative_to(REPO)) if config.is_relative_to(REPO)
                 else str(config), "backtest_sets": list(BACKTEST_SETS), "folds": folds,
                 "checks": []}
    work = Path(tempfile.mkdtemp(prefix="stockrnn-ray-"))
    cluster = LocalCluster(nodes=2, cpus=1)
    try:
        for name, args in runs.items():  # serial first: nothing of Ray running
            (work / f"serial-{name}").mkdir()
            s, sec = _stockrnn(args, work / f"serial-{name}", timeout)
            out[name] = {"serial": {"seconds": sec, "job_seconds": s.get("seconds"),
                                    "result": _batch(s) if name == "batch" else _backtest(s)}}
        print(f"  [ray] starting a head and a worker node ({sys.executable})", file=sys.stderr,
              flush=True)
        cluster.start()
        out["cluster_start_seconds"] = cluster.start_seconds
        out["nodes"] = {n.name: n.node_id for n in cluster.nodes}
        out["address"] = cluster.address
        for name, args in runs.items():
            (work / f"ray-{name}").mkdir()
            s, sec = _stockrnn([*args, "--executor", "ray", "--ray-address", cluster.address],
                               work / f"ray-{name}", timeout)
            out[name]["ray"] = {"seconds": sec, "job_seconds": s.get("seconds"),
                                "result": _batch(s) if name == "batch" else _backtest(s)}
            print(f"  [ray] {name}: serial {out[name]['serial']['seconds']}s, two nodes "
                  f"{sec}s", file=sys.stderr, flush=True)
    finally:
        t0 = time.perf_counter()
        cluster.stop()
        out["cluster_stop_seconds"] = round(time.perf_counter() - t0, 1)
        shutil.rmtree(work, ignore_errors=True)
    out["checks"] = checks(out, cluster.node_ids)
    return out


def checks(out: dict, node_ids: list[str]) -> list[dict]:
    b, bt = out["batch"], out["backtest"]
    one, two = b["serial"]["result"], b["ray"]["result"]
    diffs = [abs(two[t]["mase"] - one[t]["mase"]) for t in one
             if t in two and one[t]["mase"] is not None and two[t]["mase"] is not None]
    batch_nodes = {r["node"] for r in two.values()}
    fold_nodes = {f["node"] for f in bt["ray"]["result"]["folds"]}
    n = len(node_ids)
    return [
        targets.check("ray cluster: batch MASE on two nodes equals serial (max abs difference)",
                      max(diffs) if diffs and len(diffs) == len(one) else None,
                      at_most=TOLERANCE),
        targets.check("ray cluster: nodes the batch's tickers ran on", len(
            batch_nodes & set(node_ids)), between=(n, n), text=f"all {n}"),
        targets.check("ray cluster: backtest pooled MASE on two nodes equals serial (abs "
                      "difference)", abs(bt["ray"]["result"]["pooled_mase"]
                                         - bt["serial"]["result"]["pooled_mase"]),
                      at_most=TOLERANCE),
        targets.check("ray cluster: nodes the backtest's folds ran on",
                      len(fold_nodes & set(node_ids)), between=(n, n), text=f"all {n}"),
    ]


def measure(mode) -> dict:
    if not mode.ray_cluster:
        return {"skipped": f"not measured in --{mode.name} mode"}
    if importlib.util.find_spec("ray") is None:
        return {"skipped": "ray not installed (pip install 'stockrnn[ray]')"}
    return demo()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=MULTI, help="a multi-ticker config")
    p.add_argument("--folds", type=int, default=BACKTEST_FOLDS)
    args = p.parse_args(argv)
    if importlib.util.find_spec("ray") is None:
        print("needs Ray: pip install -e '.[ray]'", file=sys.stderr)
        return 2
    out = demo(args.config.resolve(), args.folds)
    print(json.dumps(out, indent=2))
    missed = [c for c in out["checks"] if c["status"] != "PASS"]
    for c in out["checks"]:
        print(f"{c['status']:4s} {c['name']}: {c['value']} (target {c['target']})",
              file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
