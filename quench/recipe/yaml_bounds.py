"""Bounded YAML reading for recipes: size, alias expansion, nesting and duplicate keys checked
before any value is built, so hostile input fails in milliseconds with a message naming the
file and line instead of eating memory or raising RecursionError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from quench.errors import RecipeError
from quench.strict import shorten

MAX_RECIPE_BYTES = 1024 * 1024  # a recipe is a page of settings; 1 MiB is far beyond any
MAX_DEPTH = 64  # nested mappings/lists; recipes use 5
MAX_NODES = 100_000  # values after alias expansion (an anchor bomb expands to billions)
MERGE_TAG = "tag:yaml.org,2002:merge"



class YamlLimitError(RecipeError):
    """A YAML document over one of the bounds above (not a syntax error: never retried)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer bounds nesting depth and rejects duplicate mapping keys."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self.where, self.depth = where, 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"{self.where}:{mark.line + 1}: nested more than "
                                     f"{MAX_DEPTH} levels deep; a recipe needs a handful")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
                continue
            line = key.start_mark.line + 1
            if key.value in seen:
                raise RecipeError(f"{self.where}:{line}: duplicate key {shorten(key.value)} "
                                  f"(first set on line {seen[key.value]}); a key may appear "
                                  "once per mapping")
            seen[key.value] = line
        return node


def expanded_size(node: Node, memo: dict[int, int] | None = None) -> int:
    """Values the node stands for once every alias is expanded (shared nodes counted per use),
    computed once per distinct node."""
    memo = {} if memo is None else memo
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a recursive alias expands forever
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(expanded_size(child, memo) for child in node.value)
    elif isinstance(node, MappingNode):
        size += sum(expanded_size(k, memo) + expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def load_bounded(text: str, where: str) -> Any:
    """One YAML document as Python data, within the bounds; YAML syntax errors stay
    yaml.YAMLError (the caller names them), bounds are RecipeError."""
    loader = _BoundedLoader(text, where)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_NODES:
            raise YamlLimitError(f"{where}: YAML aliases (*name) expand to more than "
                                 f"{MAX_NODES:,} values; a recipe has a few hundred")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_text(path: Path) -> str:
    """A recipe file's text: at most MAX_RECIPE_BYTES, UTF-8 (a BOM is allowed)."""
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: {size:,} bytes; a recipe file may be at most "
                              f"{MAX_RECIPE_BYTES:,} bytes (1 MiB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecipeError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                          f"offset {exc.start}); save the recipe as UTF-8") from None


def describe_yaml_error(where: str, exc: yaml.YAMLError) -> str:
    """`file:line:column: problem`, without pyyaml's echo of the input."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"{where}:{mark.line + 1}:{mark.column + 1}: {exc.problem}{context}"
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return (f"{where}: character {char!r} at offset {exc.position} is not allowed in "
                "YAML (is this a binary file?)")
    return f"{where}: {shorten(str(exc), 200)}"
