"""Imports run one way, with no cycles (docs/architecture.md):

    comam_env  <-  agents  <-  baselines          leaderboard  <-  comam_env

``comam_env`` imports none of the packages above it, ``agents`` not ``baselines``, and
nothing imports ``leaderboard``; ``leaderboard`` imports only ``comam_env``, except its
hidden-track runner, which runs policies. Every import counts: module-level, inside
functions (lazy imports are still dependencies) and ``importlib.import_module("...")`` with
a literal name. The test walks the AST of every module of the four packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("comam_env", "agents", "baselines", "leaderboard")

#: package -> the project packages it may import (besides itself)
ALLOWED = {
    "comam_env": set(),
    "agents": {"comam_env"},
    "baselines": {"comam_env", "agents"},
    "leaderboard": {"comam_env"},
}
#: the one sanctioned exception: the hidden-track runner evaluates policies (agents, baselines)
RUNNER_EXCEPTIONS = {"leaderboard.run_agent": {"agents", "baselines"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The deepest project module named by a dotted import target (None outside the project)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, source: str | None = None, is_package: bool | None = None) -> set[str]:
    """Project modules imported anywhere in ``module`` (or in ``source`` as if it were ``module``)."""
    path = MODULES.get(module)
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    if is_package is None:
        is_package = path is not None and path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                found.add(resolved)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_package_is_found():
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "comam_env.cli" in MODULES and "agents.comam" in MODULES


def test_no_upward_imports():
    bad = []
    for module, targets in GRAPH.items():
        bad += [f"{module} imports {t}" for t in sorted(targets) if t.split(".")[0] not in _allowed(module)]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def _allowed(module: str) -> set[str]:
    package = module.split(".")[0]
    return ALLOWED[package] | {package} | RUNNER_EXCEPTIONS.get(module, set())


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # ``import comam_env.data.x`` runs ``comam_env/__init__`` and ``comam_env/data/__init__``
    # too, but an ``__init__`` re-exporting its submodules is not a design cycle: edges *into*
    # a package's ``__init__`` from its own submodules are left out.
    inits = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    return {m: {t for t in ts if not (t in inits and m.startswith(t + "."))} for m, ts in graph.items()}


def test_no_import_cycles():
    cycles = _cycles(_without_package_inits(GRAPH))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_relative_and_string_imports():
    """The rules would be vacuous if the walker missed an import form."""
    source = (
        "import comam_env.registry\n"
        "from .data import paths\n"                      # relative, a submodule
        "from ..agents.credit import CREDIT_STRATEGIES\n"  # two levels up, an attribute
        "def f():\n"
        "    from baselines import harness\n"             # lazy
        "    importlib.import_module('leaderboard.score')\n"  # by literal name
    )
    assert imports_of("comam_env.cli", source) == {
        "comam_env.registry", "comam_env.data.paths", "agents.credit", "baselines.harness", "leaderboard.score"}
    assert "agents.comam" in GRAPH["agents.cli"] and "agents.config" in GRAPH["agents.cli"]
    assert "agents" not in _allowed("comam_env.cli") and "baselines" not in _allowed("agents.cli")
    assert "agents" not in _allowed("leaderboard.validate") and "agents" in _allowed("leaderboard.run_agent")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_at_least_comam_env_or_itself(package):
    # sanity: the graph is not empty for any package (a parse or resolve bug would empty it)
    assert any(GRAPH[m] for m in MODULES if m.split(".")[0] == package)
