"""The shape of the house, enforced: packages form layers and imports only go down.

Every module under engine/ is parsed (ast, nothing imported). An import from one package of
engine to another must go to a lower layer; so no cycle can form between packages, and the
pure core (spec, evaluation, anomaly, alerting, incidents) never reaches an adapter (source,
store, notify) or an application (daemon, api, commands...). Lazy imports inside functions
count too: a cycle hidden in a function body is still a cycle. Size limits keep every unit
small enough to hold in one's head.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"

# Lowest first. A package may import its own modules and those of strictly lower layers.
LAYERS: dict[str, int] = {
    "spec": 0,
    "evaluation": 1,
    "anomaly": 2,
    "alerting": 3,
    "incidents": 4,
    "retry": 5,
    "redact": 5,
    "telemetry": 5,
    "telemetry_env": 5,
    "logs": 5,
    "source": 6,
    "store": 6,
    "notify": 7,
    "generate": 8,
    "backtest": 8,
    "advice": 9,
    "reports": 9,
    "daemon": 9,
    "api": 10,
    "commands": 11,
    "demo": 11,
    "cli": 12,
    "__main__": 13,
}
CORE = {"spec", "evaluation", "anomaly", "alerting", "incidents"}
ADAPTERS_AND_APPS = {p for p, rank in LAYERS.items() if rank >= LAYERS["source"]}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def modules() -> Iterator[Path]:
    yield from sorted(ENGINE.rglob("*.py"))


def package_of(path: Path) -> str:
    parts = path.relative_to(ENGINE).parts
    return parts[0] if len(parts) > 1 else path.stem


def dotted(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).with_suffix("").parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Absolute dotted names of everything `path` imports, with the line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = dotted(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:  # `from engine import x` imports the module engine.x
                yield f"{name}.{alias.name}", node.lineno


def package_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in modules():
        source = package_of(path)
        for name, line in imported_modules(path):
            parts = name.split(".")
            if parts[0] != "engine" or len(parts) < 2:
                continue
            target = parts[1]
            if target != source:
                edges[(source, target)].append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_package_has_a_layer() -> None:
    packages = {package_of(p) for p in modules()} - {"__init__"}
    assert packages <= set(LAYERS), f"give these a layer in LAYERS: {packages - set(LAYERS)}"


def test_imports_only_go_down() -> None:
    upward = [
        f"{where}: {source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
        for (source, target), places in package_edges().items()
        for where in places
        if LAYERS[target] >= LAYERS[source]
    ]
    assert not upward, "imports must go down the layers:\n" + "\n".join(upward)


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in package_edges():
        graph[source].add(target)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (found := visit(nxt, [*stack, node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_core_never_imports_adapters_or_applications() -> None:
    bad = [
        f"{where}: core package {source} imports {target}"
        for (source, target), places in package_edges().items()
        for where in places
        if source in CORE and target in ADAPTERS_AND_APPS
    ]
    assert not bad, "\n".join(bad)


def test_production_code_never_imports_the_test_harness() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in modules()
        for name, line in imported_modules(path)
        if name.split(".")[0] in {"tests", "harness", "pytest"}
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ENGINE)))
def test_units_stay_small(path: Path) -> None:
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    long_functions = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long_functions, f"{path.relative_to(ROOT)}: " + ", ".join(long_functions)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The rules above are only as good as the import reader: it must see relative, lazy and
    # `from engine import x` imports.
    module = tmp_path / "engine" / "spec" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..daemon import runtime\n"
        "def f():\n    from engine import store\n    import engine.api.app\n"
    )
    global ROOT
    saved = ROOT
    ROOT = tmp_path
    try:
        names = {name for name, _ in imported_modules(module)}
    finally:
        ROOT = saved
    assert {"engine.daemon", "engine.daemon.runtime", "engine.store", "engine.api.app"} <= names
