"""Pydantic models as Markdown: field tables (type, default, description) and nested sections."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .common import anchor, code, md, own_doc, table


class MissingDescription(Exception):
    """A documented field has no `description=`."""


NONE_TYPE = type(None)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _union_args(tp: Any) -> tuple[Any, ...]:
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return tuple(_unwrap(a) for a in get_args(tp))
    return (tp,)


def nested_model(tp: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (optionally null), else None."""
    args = [a for a in _union_args(tp) if a is not NONE_TYPE]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def type_text(tp: Any, links: dict[type, str] | None = None) -> str:
    """A type annotation in words: `integer`, `string or null`, `list of string`, ..."""
    links = links or {}
    tp = _unwrap(tp)
    origin, args = get_origin(tp), get_args(tp)
    if tp is NONE_TYPE:
        return "null"
    if origin in (Union, types.UnionType):
        inner = [type_text(a, links) for a in args if _unwrap(a) is not NONE_TYPE]
        text = " or ".join(inner)
        return text + " or null" if any(_unwrap(a) is NONE_TYPE for a in args) else text
    if origin is Literal:
        values = [code(v) if v is not None else "null" for v in args]
        return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]
    if origin is list:
        return f"list of {type_text(args[0], links)}" if args else "list"
    if origin is dict:
        if not args:
            return "mapping"
        return f"mapping ({type_text(args[0], links)} to {type_text(args[1], links)})"
    if tp is Any:
        return "any"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return links.get(tp, "mapping")
    return {bool: "bool", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def constraint_text(field: FieldInfo) -> str:
    """Bounds and lengths from the field's metadata: `>= 1`, `0 to 1`, `at least 1 item`."""
    found: dict[str, Any] = {}
    for item in field.metadata:
        for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(item, key, None)
            if value is not None:
                found[key] = value
    parts = []
    low = ("ge", found["ge"]) if "ge" in found else ("gt", found["gt"]) if "gt" in found else None
    high = ("le", found["le"]) if "le" in found else ("lt", found["lt"]) if "lt" in found else None
    if low and high and low[0] == "ge" and high[0] == "le":
        parts.append(f"{_number(low[1])} to {_number(high[1])}")
    else:
        signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        parts += [f"{signs[k]} {_number(v)}" for k, v in (b for b in (low, high) if b)]
    if "min_length" in found:
        parts.append(f"at least {found['min_length']}")
    if "max_length" in found:
        parts.append(f"at most {_number(found['max_length'])} characters"
                     if field.annotation is str else f"at most {found['max_length']}")
    return " and ".join(parts)


def field_type(field: FieldInfo, links: dict[type, str] | None = None) -> str:
    """The type column: the type in words with its bounds."""
    args = _union_args(field.annotation)
    optional = NONE_TYPE in args and len(args) > 1
    core_args = [a for a in args if a is not NONE_TYPE]
    core = " or ".join(type_text(a, links) for a in core_args)
    bounds = constraint_text(field)
    if bounds:
        core = f"{core} ({bounds})"
    return f"{core} or null" if optional else core


def yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '""' if value == "" else value
    if isinstance(value, (int, float)):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def default_text(field: FieldInfo, overrides: str | None = None) -> str:
    """The default column: `required`, a YAML value, or a nested model's non-default keys."""
    if overrides is not None:
        return overrides
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        changed = value.model_dump(exclude_defaults=True)
        return code(yaml_value(changed)) if changed else "its defaults"
    return code(yaml_value(value))


@dataclass
class Row:
    name: str
    field: FieldInfo
    owner: type[BaseModel]


def described(model: type[BaseModel], path: str, missing: list[str]) -> list[Row]:
    """The model's fields as rows; fields without a description are added to `missing`."""
    rows = []
    for name, field in model.model_fields.items():
        if not (field.description or "").strip():
            missing.append(f"{model.__module__}.{model.__qualname__}.{name}"
                           + (f" ({path}{name})" if path else ""))
        rows.append(Row(name, field, model))
    return rows


def field_table(model: type[BaseModel], prefix: str, missing: list[str],
                links: dict[type, str] | None = None,
                defaults: dict[str, str] | None = None,
                types_: dict[str, str] | None = None) -> str:
    """`field | type | default | description` for every field of `model`."""
    rows = []
    for row in described(model, prefix, missing):
        key = prefix + row.name
        kind = (types_ or {}).get(key) or field_type(row.field, links)
        rows.append([code(key), kind, default_text(row.field, (defaults or {}).get(key)),
                     md(row.field.description)])
    return table(["field", "type", "default", "description"], rows)


def options_block(model: type[BaseModel], missing: list[str], none_text: str) -> str:
    """An options model's table, or `none_text` when it has no fields."""
    if not model.model_fields:
        return none_text
    return field_table(model, "", missing)


@dataclass
class Section:
    path: str  # dotted key, "" for the top level
    model: type[BaseModel]
    intro: str
    anchor: str


def sections_of(model: type[BaseModel], path: str = "", intro: str = "",
                skip: tuple[type, ...] = ()) -> list[Section]:
    """The model and every nested model, depth first in field order."""
    found = [Section(path, model, intro, anchor(path) or "top-level")]
    for name, field in model.model_fields.items():
        inner = nested_model(field.annotation)
        if inner is not None and not issubclass(inner, skip):
            key = f"{path}.{name}" if path else name
            found += sections_of(inner, key, field.description or "", skip)
    return found


def section_links(sections: list[Section]) -> dict[type, str]:
    return {s.model: f"[`{s.path}`](#{s.anchor})" for s in sections if s.path}


def render_sections(sections: list[Section], missing: list[str],
                    after: dict[str, Callable[[], list[str]]],
                    notes: dict[str, str], defaults: dict[str, str],
                    types_: dict[str, str], top_title: str) -> list[str]:
    links = section_links(sections)
    body = []
    for section in sections:
        level = "##" + "#" * max(section.path.count("."), 0) if section.path else "##"
        title = code(section.path) if section.path else top_title
        body.append(f"{level} {title} {{#{section.anchor}}}")
        doc = own_doc(section.model)
        intro = section.intro
        if intro and doc and intro.rstrip(".").lower() in doc.lower():
            intro = ""  # the docstring says it already
        for text in (intro, doc):
            if text:
                body.append(md(text))
        prefix = f"{section.path}." if section.path else ""
        body.append(field_table(section.model, prefix, missing, links, defaults, types_))
        if section.path in notes:
            body.append(notes[section.path])
        if section.path in after:
            body += after[section.path]()
    return body
