"""The import structure checked on the source: no import points upward, no import circle, no
command module used as a library. Every module under quench/ is read; deferred imports inside
functions and `if TYPE_CHECKING:` imports count like any other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "quench"

# Lower number = lower layer; a module may import its own layer or lower ones only.
LAYERS: dict[str, int] = {
    **dict.fromkeys(("contract", "errors", "registry", "strict", "redact", "progress",
                     "textfiles", "user_cache", "geometry", "gpu", "bundled", "home", "units",
                     "shutdown", "owned_files"), 0),
    # registries and libraries that know no recipe (they take typed options and paths)
    **dict.fromkeys(("methods", "engines", "serving", "checkpoints", "metrics", "evals", "llamacpp",
                     "gguf", "sources", "text_sources", "shards", "models", "compute",
                     "offload", "lineage", "mapped_weights"), 1),
    # the recipe model: it validates names and options against the registries below it
    "recipe": 2,
    # libraries that read a recipe
    **dict.fromkeys(("compat", "plan", "plan_cli", "plan_cpu", "stage_memory", "memory_fit",
                     "license", "model_card", "tracking"), 3),
    **dict.fromkeys(("stages", "preflight"), 4),
    **dict.fromkeys(("runner", "gate", "compare", "sweep", "setup"), 5),
    **dict.fromkeys(("cli", "__main__"), 6),
}

# Command modules: the entry points, and every module named `cli` or `<name>_cli` (the parsers
# and handlers of `quench` commands). Only the entry points may import them.
ENTRY_POINTS = frozenset({"quench.cli", "quench.__main__"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of `quench` or `quench.<top>...`; the package itself is at the bottom."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    assert parts[1] in LAYERS, f"{module}: quench.{parts[1]} is not in the layer table"
    return LAYERS[parts[1]]


def is_command(module: str) -> bool:
    """An entry point, or a module named `cli` or `<name>_cli`."""
    name = module.split(".")[-1]
    return module in ENTRY_POINTS or name == "cli" or name.endswith("_cli")


def _is_module(name: str) -> bool:
    where = PACKAGE.parent / name.replace(".", "/")
    return where.with_suffix(".py").is_file() or where.is_dir()


def imports_of(path: Path) -> set[str]:
    """The quench modules `path` imports, anywhere in it (`from quench import a` names quench.a
    when a is a module of its own, else the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "quench"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module.split(".")[0] == "quench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import (the layer test reads absolute ones)")
    return found


def all_imports() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(mod, target) for mod, targets in graph.items() for target in targets
            if layer_of(target) > layer_of(mod)}


def command_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports of a command module by anything but an entry point."""
    return {(mod, target) for mod, targets in graph.items() for target in targets
            if is_command(target) and target != mod and mod not in ENTRY_POINTS}


def strong_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components: a circle's modules are one component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while not component or node not in component:
                component.add(stack.pop())
            found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def circle_through(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """A shortest import circle from `start` back to it, inside one component."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & within):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    raise AssertionError(f"{start} is on no circle in {sorted(within)}")


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per component of more than one module (a module importing itself is none)."""
    graph = {mod: {t for t in targets if t != mod and t in graph}
             for mod, targets in graph.items()}
    return [circle_through(graph, min(c), c) for c in strong_components(graph) if len(c) > 1]


def test_every_module_is_in_the_layer_table():
    for module in all_imports():
        layer_of(module)


def test_no_import_points_upward():
    new = sorted(upward_imports(all_imports()))
    assert not new, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"  {m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})" for m, t in new)


def test_no_import_circle():
    circles = import_circles(all_imports())
    assert not circles, "import circles:\n" + "\n".join(
        "  " + " -> ".join(circle) for circle in circles)


def test_no_command_module_is_imported_as_a_library():
    found = sorted(command_imports(all_imports()))
    assert not found, "command modules imported by other than an entry point:\n" + "\n".join(
        f"  {m} imports {t}" for m, t in found)


def test_contract_imports_nothing_else_of_quench():
    for module, targets in all_imports().items():
        if module.startswith("quench.contract"):
            outside = {t for t in targets if not t.startswith("quench.contract")}
            assert not outside, f"{module} imports {sorted(outside)}"


def test_the_checker_sees_deferred_and_type_checking_imports(tmp_path):
    """The test of the test: a function-level import counts, and so does a TYPE_CHECKING one."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from quench.runner.run import RunSummary\n"
                     "else:\n    from quench.errors import QuenchError\n"
                     "def f():\n    from quench import compat, cli\n"
                     "    import quench.gate.stats\n")
    assert imports_of(probe) == {"quench.runner.run", "quench.errors", "quench.compat",
                                 "quench.cli", "quench.gate.stats"}


def test_the_checker_finds_circles():
    graph = {"quench.a": {"quench.b"}, "quench.b": {"quench.c", "quench.b"},
             "quench.c": {"quench.a"}, "quench.d": {"quench.a", "quench.d"}}
    assert import_circles(graph) == [["quench.a", "quench.b", "quench.c", "quench.a"]]
    assert import_circles({"quench.a": {"quench.b"}, "quench.b": set()}) == []


def test_the_checker_knows_command_modules():
    assert all(map(is_command, ("quench.cli", "quench.__main__", "quench.gate.cli",
                                "quench.runner.cache_cli", "quench.plan_cli")))
    assert not any(map(is_command, ("quench", "quench.gate", "quench.gate.checks",
                                    "quench.stages", "quench.plan", "quench.recipe.catalog")))
    graph = {"quench.cli": {"quench.gate.cli"}, "quench.sweep.cli": {"quench.gate.cli"},
             "quench.sweep.results": {"quench.gate.cli", "quench.gate"}}
    assert command_imports(graph) == {("quench.sweep.cli", "quench.gate.cli"),
                                      ("quench.sweep.results", "quench.gate.cli")}
