"""The layering (no import points upward) checked on the source: every module under quench/,
deferred imports inside functions included, `if TYPE_CHECKING:` imports excluded."""

from __future__ import annotations

import ast
from collections.abc import Iterator
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
    **dict.fromkeys(("compat", "plan", "plan_cpu", "memory", "license", "model_card",
                     "tracking"), 3),
    **dict.fromkeys(("stages", "preflight"), 4),
    **dict.fromkeys(("runner", "gate", "compare", "sweep", "setup"), 5),
    **dict.fromkeys(("cli", "__main__"), 6),
}


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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` except the bodies of `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _run_time_nodes(other)
            continue
        yield child
        yield from _run_time_nodes(child)


def _is_module(name: str) -> bool:
    where = PACKAGE.parent / name.replace(".", "/")
    return where.with_suffix(".py").is_file() or where.is_dir()


def imports_of(path: Path) -> set[str]:
    """The quench modules `path` imports at run time (`from quench import a` names
    quench.a when a is a module of its own, else the package)."""
    found: set[str] = set()
    for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
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


def upward_imports() -> set[tuple[str, str]]:
    return {(mod, target) for mod, targets in all_imports().items() for target in targets
            if layer_of(target) > layer_of(mod)}


def test_every_module_is_in_the_layer_table():
    for module in all_imports():
        layer_of(module)


def test_no_import_points_upward():
    new = sorted(upward_imports())
    assert not new, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"  {m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})" for m, t in new)


def test_contract_imports_nothing_of_quench_at_run_time():
    for module, targets in all_imports().items():
        if module.startswith("quench.contract"):
            outside = {t for t in targets if not t.startswith("quench.contract")}
            assert not outside, f"{module} imports {sorted(outside)}"


def test_the_checker_sees_deferred_imports_and_skips_type_checking_ones(tmp_path):
    """The test of the test: a function-level import counts, a TYPE_CHECKING one does not."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from quench.runner.run import RunSummary\n"
                     "else:\n    from quench.errors import QuenchError\n"
                     "def f():\n    from quench import compat, cli\n"
                     "    import quench.gate.stats\n")
    assert imports_of(probe) == {"quench.errors", "quench.compat", "quench.cli",
                                 "quench.gate.stats"}
