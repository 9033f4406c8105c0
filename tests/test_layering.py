"""The package's import rules (README "Layout"), read from the source with `ast`.

Every `import` counts, at the top of a module or inside a function. A forbidden arrow or a
cycle between modules fails with the offending imports named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nmt"

BASE = {"nmt.errors", "nmt.special", "nmt.io", "nmt.config", "nmt.metrics"}
# layer -> the layers it may import (besides itself and BASE)
ALLOWED = {
    "package": {"api"},  # `nmt/__init__.py` re-exports the Python API, imported on first use
    "__main__": {"cli"},  # `python -m nmt`: the command line, nothing else
    "base": set(),
    "model": set(),
    "cpu": {"model"},
    "data": set(),
    "checkpoint": {"model", "data", "cpu"},
    "decoding": {"model", "data"},
    "training": {"model", "data", "cpu", "checkpoint", "decoding.search"},
    "alignment": {"model", "data", "decoding"},
    "api": {"model", "data", "cpu", "checkpoint", "decoding", "alignment"},
    "bench": {"model", "data", "cpu", "checkpoint", "decoding", "training", "alignment", "cli",
              "api"},
    "serve": {"api", "alignment", "decoding", "data", "model"},  # the HTTP server
    "cli": {"model", "data", "cpu", "checkpoint", "decoding", "training", "alignment", "bench",
            "api", "serve"},
}
# what the Python API may take from training: the device choice
API_FROM_TRAINING = {"nmt.training.device"}
# what training may take from decoding: search, and the batched decoding around it
TRAINING_FROM_DECODING = {"nmt.decoding.search", "nmt.decoding.decode",
                          "nmt.decoding.processors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The nmt modules `path` imports (a `from package import name` names the submodule
    when there is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "nmt")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "nmt":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def layer(name: str) -> str:
    if name == "nmt":
        return "package"
    if name in BASE:
        return "base"
    parts = name.split(".")
    return parts[1]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_every_module_belongs_to_a_layer():
    unknown = [m for m in modules() if layer(m) not in ALLOWED]
    assert not unknown, f"modules outside the documented layers: {unknown}"


def test_no_forbidden_arrow():
    bad = []
    for name, targets in graph().items():
        src = layer(name)
        for target in targets:
            dst = layer(target)
            if dst in ("base", "package", src):  # the package root: version, lazy API
                continue
            if src == "training" and dst == "decoding":
                ok = target in TRAINING_FROM_DECODING
            elif src == "api" and dst == "training":
                ok = target in API_FROM_TRAINING
            else:
                ok = dst in ALLOWED[src]
            if not ok:
                bad.append(f"{name} -> {target}")
    assert not bad, "forbidden imports:\n" + "\n".join(sorted(bad))


def test_the_model_imports_only_torch_and_the_base():
    for name, targets in graph().items():
        if layer(name) == "model":
            assert {layer(t) for t in targets} <= {"model", "base"}, (name, targets)
            assert "nmt.metrics" not in targets and "nmt.io" not in targets, name


def test_no_import_cycles():
    g = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_scripts_are_thin_wrappers_that_never_import_each_other():
    for script in sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "scripts" for n in names), script.name
            assert not any(n in {p.stem for p in (ROOT / "scripts").glob("*.py")}
                           for n in names), script.name
        assert len(script.read_text(encoding="utf-8").splitlines()) <= 60, \
            f"{script.name}: a script is a thin wrapper over nmt"


def test_the_rules_catch_a_forbidden_arrow_and_a_cycle(tmp_path):
    """The checker itself: a model module importing the decoding package is reported."""
    fake = tmp_path / "nmt"
    (fake / "model").mkdir(parents=True)
    (fake / "decoding").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "model" / "__init__.py").write_text("from nmt.model import decoder\n")
    (fake / "decoding" / "__init__.py").write_text("")
    (fake / "decoding" / "search.py").write_text("import nmt.model\n")
    (fake / "model" / "decoder.py").write_text("from nmt.decoding import search\n")
    globals()["ROOT"], globals()["PACKAGE"] = tmp_path, fake
    try:
        assert graph()["nmt.model.decoder"] == {"nmt.decoding.search"}
        with pytest.raises(AssertionError, match="nmt.model.decoder -> nmt.decoding.search"):
            test_no_forbidden_arrow()
        with pytest.raises(AssertionError, match="import cycles: .*nmt.model.decoder"):
            test_no_import_cycles()
    finally:
        globals()["ROOT"], globals()["PACKAGE"] = ROOT_REAL, PACKAGE_REAL


ROOT_REAL, PACKAGE_REAL = ROOT, PACKAGE


ROOT_REAL, PACKAGE_REAL = ROOT, PACKAGE
