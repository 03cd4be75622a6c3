"""Loads a recipe file: resolves `extends:`, applies `key.sub=value` overrides, validates."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quench.errors import RecipeError
from quench.recipe.find import find_file
from quench.recipe.keys import unknown_key_message
from quench.recipe.schema import Recipe
from quench.recipe.yaml_bounds import (
    describe_yaml_error,
    load_bounded,
    read_text,
)
from quench.strict import MAX_SHOWN, error_message, shorten

_FIELD = re.compile(r"^[A-Za-z_][\w.]*$")
MAX_EXTENDS = 16  # files in one `extends:` chain
MAX_OVERRIDE_CHARS = 64 * 1024  # one key=value override


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Reads, merges and validates a recipe (a path or a bundled name); raises RecipeError
    naming the file and key."""
    path = find_file(path)
    data = read_recipe_data(path)
    apply_overrides(data, overrides or [])
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(path, exc)) from None


def read_recipe_data(path: Path) -> dict[str, Any]:
    """The recipe file as one mapping (`extends:` merged, name defaulted), not yet validated."""
    data = _read_with_extends(path, seen=())
    data.setdefault("name", path.stem)
    return data


def merge_extends(data: dict[str, Any], folder: Path, where: str) -> dict[str, Any]:
    """An inline recipe mapping with its `extends:` (relative to `folder`) merged in."""
    data = copy.deepcopy(data)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"{where}: extends: expected a file path, got {shorten(parent)}")
    base = _read_with_extends(find_file(parent, beside=folder), seen=())
    base.pop("name", None)
    return deep_merge(base, data)


def read_yaml_mapping(path: Path, kind: str = "recipe") -> dict[str, Any]:
    """A recipe's (or sweep file's) YAML mapping, within the bounds; RecipeError names it."""
    if not path.is_file():
        raise RecipeError(f"{kind} file not found: {path}")
    try:
        data = load_bounded(read_text(path), str(path))
    except yaml.YAMLError as exc:
        raise RecipeError(f"not valid YAML: {describe_yaml_error(str(path), exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a {kind} must be a mapping, got {type(data).__name__}")
    return data


def _read_with_extends(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise RecipeError(f"{path}: `extends` forms a cycle: {chain}")
    if len(seen) >= MAX_EXTENDS:
        raise RecipeError(f"{path}: `extends` chain longer than {MAX_EXTENDS} files")
    data = read_yaml_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends: expected a file path, got {shorten(parent)}")
    base = _read_with_extends(find_file(parent, beside=path.parent), (*seen, resolved))
    base.pop("name", None)  # a name belongs to the file that sets it, not to its children
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Returns base updated by `update`; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_overrides(data: dict[str, Any], items: list[str]) -> None:
    """Applies `key=value` overrides in order; a key given twice is an error, not the last."""
    given: dict[str, str] = {}
    for item in items:
        key = item.partition("=")[0]
        if key in given:
            raise RecipeError(f"override {shorten(item)}: {key} is already set by "
                              f"{shorten(given[key])}; give each key once")
        apply_override(data, item)
        given[key] = item


def apply_override(data: dict[str, Any], item: str) -> None:
    """Applies one `a.b.c=value` override in place; the value is parsed as YAML (1, true, [..])."""
    key, sep, raw = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override {shorten(item)}: expected key.sub=value")
    if len(item) > MAX_OVERRIDE_CHARS:
        raise RecipeError(f"override {key}: {len(item):,} characters; an override may be at "
                          f"most {MAX_OVERRIDE_CHARS:,} (put big values in the recipe file)")
    try:
        value = load_bounded(raw, f"override {key}") if raw != "" else ""
    except yaml.YAMLError:  # not YAML: the text itself (bounds and duplicates still raise)
        value = raw
    set_value(data, key, value, item)


def set_value(data: dict[str, Any], key: str, value: Any, item: str) -> None:
    """Sets the dotted `key` to `value` in place, creating mappings on the way; `item` is
    what the user wrote, for the error message."""
    *outer, leaf = key.split(".")
    node = data
    for i, part in enumerate(outer):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(outer[: i + 1])
            raise RecipeError(f"override {shorten(item)}: {where} is {shorten(child)}, "
                              "not a mapping")
        node = child
    node[leaf] = value


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """One line per problem: `file: key.path: message (got value)`."""
    lines = [f"{path}: invalid recipe"]
    for err in exc.errors():
        loc = ".".join(str(p)[:MAX_SHOWN] for p in err["loc"]) or "(top level)"
        msg = error_message(err)
        field, sep, rest = msg.partition(": ")
        if sep and _FIELD.match(field):  # validators name the sub-key: "scheme: ..."
            loc, msg = f"{loc}.{field}" if loc != "(top level)" else field, rest
        if err["type"] == "extra_forbidden":
            msg = unknown_key_message(err["loc"])
        got = err.get("input")
        shown = ("" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict)
                 else f" (got {shorten(got)})")
        lines.append(f"  {loc}: {msg}{shown}")
    return "\n".join(lines)
