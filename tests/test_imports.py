"""The package's shape: no import cycles between stockrnn's modules (counting imports inside
functions too), no private name imported across modules, and a light ``import stockrnn``."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Child

PACKAGE = Path(__file__).resolve().parents[1] / "stockrnn"


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: set[str]) -> list[tuple[str, str]]:
    """(module, imported name) for every stockrnn import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "stockrnn":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, "") if sub in known else (node.module, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name in known]
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {t for t, _ in imports(p, set(mods)) if t in mods and t != m}
            for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_no_private_names_imported_across_modules():
    mods = modules()
    bad = [f"{m}: {t}.{name}" for m, p in mods.items() for t, name in imports(p, set(mods))
           if name.startswith("_") and not name.startswith("__") and t != m]
    assert not bad


def test_importing_the_cli_does_not_import_keras():
    code = "import sys, stockrnn.cli; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_keras_loads_without_scikit_learn_which_imports_as_usual_afterwards(work):
    """Keras (which TensorFlow imports too) imports scikit-learn when it is installed, for its
    scikit-learn wrappers: stockrnn loads both without it (1.3-2 s less start-up), and the
    process imports it as usual afterwards. Checked in a process forked from a server that
    imported stockrnn.preload, as ``--jobs`` workers are (tests/test_backends.py checks a fresh
    process that picks JAX); such a process also starts with statsforecast (the baselines every
    job fits) when the stats extra is installed, and did not import it again; and with what the
    server imported frozen out of its collector's passes (``backend.collector_paused``)."""
    pytest.importorskip("sklearn")
    stats = importlib.util.find_spec("statsforecast") is not None
    code = ("import gc, sys; print('tensorflow' in sys.modules, 'keras' in sys.modules, "
            "'sklearn' in sys.modules, 'statsforecast.models' in sys.modules, "
            "gc.isenabled(), gc.get_freeze_count() > 0); "
            "from sklearn.preprocessing import MinMaxScaler; "
            "print(MinMaxScaler().fit([[1.0], [3.0]]).data_max_[0])")
    child = Child([], work, dict(os.environ), code=code)
    out, err = child.communicate(120)
    assert child.returncode == 0, err
    # the server imported them with the collector paused, then froze them
    # (backend.collector_paused): the child's collector is on and leaves them out of its passes
    assert out.split() == ["True", "True", "False", str(stats), "True", "True", "3.0"]


def test_a_hidden_module_fails_to_import_only_while_hidden(tmp_path, monkeypatch):
    from stockrnn import backend

    (tmp_path / "stockrnn_hidden_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "stockrnn_hidden_probe", raising=False)
    with backend._hidden(("stockrnn_hidden_probe",)):
        with pytest.raises(ImportError):
            import stockrnn_hidden_probe  # noqa: F401
    import stockrnn_hidden_probe

    assert stockrnn_hidden_probe.VALUE == 1
    # a module imported before is left alone: a process that imported scikit-learn before
    # stockrnn imported Keras keeps Keras' scikit-learn wrappers
    with backend._hidden(("stockrnn_hidden_probe",)):
        assert sys.modules["stockrnn_hidden_probe"] is stockrnn_hidden_probe
    monkeypatch.delitem(sys.modules, "stockrnn_hidden_probe")


def test_the_collector_is_off_in_the_block_and_on_after_it_with_the_objects_frozen():
    """``backend.collector_paused``: the collector off in the block (also when it raises), on
    after it, the objects alive then frozen out of its later passes; a block inside another,
    or where the collector is off already, leaves it as it is and freezes nothing."""
    import gc

    from stockrnn import backend

    before = gc.get_freeze_count()
    made = []
    with pytest.raises(RuntimeError):
        with backend.collector_paused():
            assert not gc.isenabled()
            with backend.collector_paused():  # import_tensorflow inside use
                made.extend([i] for i in range(1000))  # lists: always tracked
            assert not gc.isenabled() and gc.get_freeze_count() == before
            raise RuntimeError("an import failed")
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + 1000
    gc.disable()
    try:
        frozen = gc.get_freeze_count()
        with backend.collector_paused():
            made.extend([i] for i in range(1000))
        assert not gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.enable()
