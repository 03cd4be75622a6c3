#!/usr/bin/env python3
"""Writes the reference pages of docs/reference/ from the code, so they cannot drift from it.

    python scripts/gen_reference.py          # (re)writes the four pages
    python scripts/gen_reference.py --check  # exit 1 listing the pages that differ

- recipe.md: every recipe field, from the pydantic models of `quench.recipe.Recipe` (their
  `Field(description=...)` strings are the single source), with every registered method's and
  engine's options;
- sweep.md: the sweep file (`quench.sweep.spec.SweepSpec`), strategies and executors;
- cli.md: every `quench` command, from the argparse parser (`quench.cli.build_parser`);
- compatibility.md: `quench/compat/matrix.yaml` (GPUs, formats, the verdict of every cell,
  the rules with their sources).

A field without a description is an error (exit 2, naming it). The output is deterministic:
no dates, no absolute paths, a fixed terminal width for argparse.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

OUT_DIR = ROOT / "docs" / "reference"
COLUMNS = 100  # argparse's terminal width, for usage lines that wrap the same everywhere
NOTE = "<!-- Generated from {source} by `scripts/gen_reference.py`; do not edit by hand. -->"


class MissingDescription(Exception):
    """A documented field has no `description=`."""


# --- Markdown helpers ---------------------------------------------------------------------------

CODE_SPAN = re.compile(r"(`+)(.+?)\1")
URL = re.compile(r"https?://[^\s<>\"]+")


def md(text: str | None) -> str:
    """Plain text as Markdown: whitespace collapsed; outside code spans `<`, `*` and `|` escaped
    (a `<model>` would be an HTML tag, `*mlp*` emphasis), bare URLs made links."""
    text = " ".join((text or "").split())
    out, pos = [], 0
    for match in CODE_SPAN.finditer(text):
        out.append(_escape(text[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def _escape(text: str) -> str:
    parts, pos = [], 0
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;)")
        parts.append(_escape_plain(text[pos:match.start()]))
        parts.append(f"<{url}>")
        pos = match.start() + len(url)
    parts.append(_escape_plain(text[pos:]))
    return "".join(parts)


def _escape_plain(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("<", "&lt;").replace("*", "\\*")
    return text.replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub table; cells are Markdown already."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def code(value: Any) -> str:
    return f"`{value}`"


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def module_doc(obj: Any) -> str:
    """The first paragraph of the docstring of the module defining `obj`."""
    return first_paragraph(inspect.getmodule(obj).__doc__)


def own_doc(model: type) -> str:
    """The model class's own docstring (not an inherited one), first paragraph."""
    return first_paragraph(model.__dict__.get("__doc__"))


def page(title: str, source: str, body: list[str]) -> str:
    parts = [NOTE.format(source=source), "", f"# {title}", ""]
    for block in body:
        if block:
            parts += [block.rstrip("\n"), ""]
    return "\n".join(parts).rstrip("\n") + "\n"


# --- pydantic models -> tables ------------------------------------------------------------------

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


# --- recipe.md ----------------------------------------------------------------------------------

RECIPE_INTRO = """\
A recipe is one YAML mapping, validated by `quench.recipe.Recipe` before anything runs: an
unknown key is an error (with a "did you mean" suggestion) and values are never coerced (`"on"`
is not `true`, `"256"` is not `256`). `quench validate RECIPE` checks a recipe without running
anything heavy; `quench schema` prints the same schema as JSON Schema. Each section below is one
mapping of the recipe, with every key, its type, its default and what it does."""

EXTENDS_NOTE = """\
A recipe may start with `extends: other.yaml` (a path relative to the recipe file, or a bundled
recipe's name): nested mappings merge, lists and scalars replace, and `name` is not inherited
(it defaults to the file name). A chain of `extends` holds at most {max_extends} files.
Overrides on the command line (`quench run RECIPE key.sub=value ...`, each value read as YAML)
apply after `extends`; a key given twice is an error."""

RECIPE_SECTION_NOTES = {
    "evaluation.perplexity": "The protocol and the KL bound: [Metrics](../concepts/metrics.md).",
    "evaluation.lm_eval": "See [lm-eval accuracy](../concepts/lm-eval.md).",
    "target": "GPU names, their architectures and the `quench plan` prices: "
              "[GPUs](compatibility.md#gpus).",
    "tracking": "Outages and `quench sync`: [Tracking set-ups](../how-to/tracking.md).",
    "license": "How licenses are inherited and checked: "
               "[License inheritance](../concepts/licenses.md).",
    "gate": "The statistics behind the thresholds: [Gate statistics](../concepts/gate.md).",
    "compute": "See [Big models and memory](../how-to/big-models.md).",
}

QUANTIZATION_NOTE = """\
A weight group size must divide the model's `hidden_size`, `intermediate_size` and
`num_attention_heads * head_dim`; `quench validate` checks this against the model's
`config.json` before anything is loaded."""

KV_CACHE_NOTE = """\
Every llm-compressor method ({methods}) also takes `kv_cache` (an FP8 E4M3 KV cache with
calibrated K/V scales, which vLLM loads with `--kv-cache-dtype fp8`; it makes the method
calibrate) and `kv_cache_strategy` (`tensor`: one K and one V scale per layer; `attn_head`: one
per KV head, vLLM's Flash Attention backend only)."""

ROTATION_NOTE = """\
{methods} also take `rotation` (`none`, `spinquant`, `quip`): llm-compressor's transform
modifiers run before the quantizer (`quench/methods/rotations.py`). `spinquant` fuses
SpinQuant's R1 and R2 Hadamard rotations into the weights: the engine has nothing to do, but a
tied embedding is untied, so the checkpoint gains a dense `lm_head`. `quip` keeps QuIP's online
input rotation (random Hadamard): the checkpoint stores one float64 matrix per distinct input
width (`<module>.v_input.weight`, hidden² + intermediate² x 8 bytes: 1.3 MB for
TinyStories-656K, about 1.8 GB for Llama-3.1-8B) and a `transform_config` the engine must apply.
vLLM applies it (single GPU, no tensor parallelism), TensorRT-LLM does not (`quench validate`
rejects it), and plain transformers 5.17 drops the matrices (quench's own loader re-applies
them). Sizing (`quench plan`) counts the scheme only, not these matrices."""

METHOD_NOTES = {
    "awq": "`observer: mse` is compared with the default in "
           "[AWQ vs GPTQ](../benchmarks/awq-vs-gptq.md).",
    "fp8": "`FP8_BLOCK`: a float32 scale per 128x128 weight block, with FP8 activations "
           "quantized dynamically per token group of 128. Calibration data is needed for `FP8` "
           "(static activation scales) or with `kv_cache`.",
    "fp4": "The schemes are compressed-tensors presets: NVFP4 stores one FP8 E4M3 scale "
           "per 16 weights under a float32 per-tensor global scale, MXFP4 one E8M0 scale per "
           "32. `NVFP4` and `MXFP4` quantize activations to FP4 too (W4A4, Blackwell); the `A16` "
           "schemes are weight-only. Calibration data is needed for `NVFP4` (its activations' "
           "global scales), with `weights: gptq` or with `kv_cache`.",
    "w4a8": "The int4 weights are symmetric; `W4AFP8` (FP8 activations) runs on vLLM on "
            "Hopper, `W4A8` (INT8 activations) on vLLM's CPU build. "
            "Calibration data is needed with `weights: gptq` (the default) or `kv_cache`.",
    "modelopt": "NVIDIA ModelOpt 0.47 (pinned by quench); see "
                "[TensorRT-LLM and ModelOpt](../how-to/tensorrt-llm.md). `W4A8_AWQ`: int4 AWQ "
                "weights with per-tensor FP8 activations (TensorRT-LLM on Ada, Hopper and "
                "Blackwell sm100; rejected on Ampere and for vLLM).",
    "llmcompressor": "Calibration data unless `calibrate: false`.",
    "autoround": "The tuning runs layer by layer inside llm-compressor's `oneshot`, so the "
                 "checkpoint is compressed-tensors like every llm-compressor method's.",
    "model_free": "For models too big to load and architectures transformers cannot build. "
                  "Only data-free schemes exist: a calibrated scheme is a `quench validate` "
                  "error. The checkpoint is checked offline (safetensors headers against the "
                  "model's geometry) and first loaded by the evaluate stage.",
    "gguf": "See [GGUF and llama.cpp](../how-to/gguf.md). `IQ3_XXS` and `IQ2_XS` need "
            "`imatrix: true`; calibration data is needed only with `imatrix`.",
}

ENGINE_NOTES = {
    "vllm": "A server flag that is set becomes the flag (`max_model_len: 512` is "
            "`--max-model-len 512`), `true` is `--flag` and `false` is `--no-flag`. {own} are "
            "quench's own settings, not flags. A flag in `extra_args` that has a typed option "
            "is refused there.",
}

BUNDLED_NOTE = """\
Bundled recipes ship inside the package: `quench recipes` lists them, `quench run NAME` runs
one as it is and `quench recipes copy NAME` writes a copy to edit (in a checkout, `recipes/` is
the same folder). The `tinystories-*` recipes (one per method) extend
`recipes/base/tinystories.yaml` and run on a CPU in seconds; the `smollm2-*` recipes (a real
135M model) extend `recipes/base/smollm2.yaml` and take minutes on a CPU. The examples
(`recipes/examples/`) are for GPU hosts: they validate anywhere (with a warning when the hub id
cannot be checked offline) but need the real model to run; the `tinystories-modelopt-*` recipes
run the same TensorRT-LLM paths on the tiny model, up to `build_plan.sh`."""


def _registry_names(kind: str) -> list[str]:
    if kind == "methods":
        from quench.methods import method_names
        return method_names()
    from quench.engines import engine_names
    return engine_names()


def _schemes_text(method: Any) -> str:
    schemes = [method.default_scheme] + [s for s in method.schemes if s != method.default_scheme]
    return ", ".join(code(s) for s in schemes)


def _calibration_text(method: Any) -> str:
    """Which schemes need calibration data with the default options."""
    options = method.options_model.model_construct()
    needs = [s for s in method.schemes if method.needs_calibration(s, options)]
    if len(needs) == len(method.schemes):
        return "yes"
    if not needs:
        return "no"
    return ", ".join(code(s) for s in needs)


def methods_block(missing: list[str]) -> list[str]:
    from quench.methods import get_method
    from quench.methods.kv_cache import KvCacheOptions

    names = _registry_names("methods")
    methods = {n: get_method(n) for n in names}
    kv = [n for n, m in methods.items() if issubclass(m.options_model, KvCacheOptions)]
    rotating = [n for n, m in methods.items() if "rotation" in m.options_model.model_fields]
    rows = [[f"[`{n}`](#method-{anchor(n)})", _schemes_text(m), _calibration_text(m),
             md(module_doc(type(m)))] for n, m in methods.items()]
    body = [
        "## Methods {#methods}",
        "`quantization.method` names one of these; `quantization.scheme` one of its schemes (the "
        "first is the default); `quantization.options` holds the method's options below (an "
        "unknown key is an error). The calibration column says which schemes read the "
        "`calibration` data with the default options; some options add it (see each method).",
        table(["method", "schemes", "calibration data", "what it does"], rows),
        QUANTIZATION_NOTE,
        KV_CACHE_NOTE.format(methods=", ".join(code(n) for n in kv)),
        ROTATION_NOTE.format(methods=" and ".join(code(n) for n in rotating)),
    ]
    for name, method in methods.items():
        body.append(f"### {code(name)} {{#method-{anchor(name)}}}")
        intro = [md(module_doc(type(method))),
                 f"Schemes: {_schemes_text(method)}. Calibration data: "
                 f"{_calibration_text(method)}."]
        if own_doc(method.options_model) and method.options_model.model_fields:
            intro.append(md(own_doc(method.options_model)))
        body.append(" ".join(intro))
        if name in METHOD_NOTES:
            body.append(METHOD_NOTES[name])
        body.append(options_block(method.options_model, missing, "No options."))
    return body


def engines_block(missing: list[str]) -> list[str]:
    from quench.compat import matrix
    from quench.engines import ENGINES

    engines = matrix()["engines"]
    rows = []
    for name in _registry_names("engines"):
        cls = ENGINES.get(name)
        backends = [b for b in engines.get(name, {}).get("backends", []) if b]
        rows.append([f"[`{name}`](#engine-{anchor(name)})",
                     ", ".join(code(b) for b in backends) or "none",
                     "yes" if cls.capabilities.served else "no (in process)",
                     md(module_doc(cls))])
    body = [
        "## Engines {#engines}",
        "`target.engine` names one of these; `target.options` holds the engine's options below "
        "(an unknown key is an error with a \"did you mean\" suggestion). Which checkpoint runs "
        "on which engine, backend and GPU is in the "
        "[compatibility matrix](compatibility.md).",
        table(["engine", "backends", "served", "what it is"], rows),
    ]
    for name in _registry_names("engines"):
        cls = ENGINES.get(name)
        spec = engines.get(name, {})
        body.append(f"### {code(name)} {{#engine-{anchor(name)}}}")
        intro = [md(module_doc(cls))]
        backends = [b for b in spec.get("backends", []) if b]
        if backends:
            intro.append("Backends: " + ", ".join(
                code(b) + (" (the default)" if b == spec.get("default") else "")
                for b in backends) + ".")
        if cls.setup_target:
            intro.append(f"Its environment: `quench setup {cls.setup_target}` (or "
                         "`target.environment`).")
        if own_doc(cls.options_model) and cls.options_model.model_fields:
            intro.append(md(own_doc(cls.options_model)))
        body.append(" ".join(intro))
        if name in ENGINE_NOTES:
            from quench.engines.vllm_options import OWN_OPTIONS

            body.append(ENGINE_NOTES[name].format(
                own=", ".join(code(o) for o in OWN_OPTIONS)))
        body.append(options_block(cls.options_model, missing, "Takes no `target.options`."))
    return body


def bundled_block(groups: tuple[str, ...], intro: str) -> list[str]:
    from quench.recipe.find import bundled_files

    body = [intro] if intro else []
    titles = {"recipes": "Recipes (run on a CPU)", "examples": "Examples (GPU hosts)",
              "sweeps": "Sweeps"}
    for group in groups:
        files = [f for f in bundled_files() if f.group == group]
        if not files:
            continue
        if len(groups) > 1:
            body.append(f"### {titles[group]} {{#bundled-{group}}}")
        body.append(table(["name", "description"],
                          [[code(f.name), md(f.description)] for f in files]))
    return body


def recipe_page(missing: list[str]) -> str:
    from quench.methods import MethodOptions
    from quench.recipe.load import MAX_EXTENDS
    from quench.recipe.schema import Recipe

    sections = sections_of(Recipe, skip=(MethodOptions,))
    notes = {"": EXTENDS_NOTE.format(max_extends=MAX_EXTENDS), **RECIPE_SECTION_NOTES}
    defaults = {"name": "the file name"}  # the loader's (quench/recipe/load.py)
    types_ = {"quantization.options": "mapping (the method's options: see [Methods](#methods))",
              "target.options": "mapping (the engine's options: see [Engines](#engines))"}
    after = {"quantization": lambda: methods_block(missing),
             "target": lambda: engines_block(missing)}
    body = [RECIPE_INTRO]
    body += render_sections(sections, missing, after, notes, defaults, types_, "Top level")
    body += ["## Bundled recipes {#bundled}"]
    body += bundled_block(("recipes", "examples"), BUNDLED_NOTE)
    return page("Recipe fields", "`quench/recipe/schema.py`, `quench/methods/` and "
                "`quench/engines/`", body)


# --- sweep.md -----------------------------------------------------------------------------------

SWEEP_INTRO = """\
A sweep file is one YAML mapping, validated like a recipe (unknown keys and lax types are
errors): a base recipe, the axes to vary, how trials are picked, what is cheapest and what
must pass. `quench sweep SWEEP.yaml` runs it; see [Sweeps](../how-to/sweeps.md). Before any
work the sweep file, every executor and strategy option and every trial recipe are validated."""


def sweep_page(missing: list[str]) -> str:
    from quench.sweep.executors import EXECUTORS
    from quench.sweep.spec import OBJECTIVE_METRICS, SweepSpec
    from quench.sweep.strategies import STRATEGIES

    sections = sections_of(SweepSpec)

    def strategies() -> list[str]:
        body = ["### Strategies {#strategies}",
                "`strategy.kind` names one of these; `strategy.options` holds its options."]
        for name in STRATEGIES.names():
            cls = STRATEGIES.get(name)
            body.append(f"#### {code(name)} {{#strategy-{anchor(name)}}}")
            body.append(md(module_doc(cls)))
            body.append(options_block(cls.options_model, missing, "No options."))
        return body

    def executors() -> list[str]:
        body = ["### Executors {#executors}",
                "`executor.kind` names one of these; `executor.options` holds its options."]
        for name in EXECUTORS.names():
            cls = EXECUTORS.get(name)
            body.append(f"#### {code(name)} {{#executor-{anchor(name)}}}")
            text = [md(module_doc(cls))]
            if own_doc(cls.options_model):
                text.append(md(own_doc(cls.options_model)))
            body.append(" ".join(text))
            body.append(options_block(cls.options_model, missing, "No options."))
        return body

    def metrics() -> list[str]:
        return ["### Objective metrics {#objective-metrics}",
                "What `objective.minimize`, `objective.maximize` and the keys of "
                "`objective.weights` may name, and which way is better:",
                table(["metric", "better"],
                      [[code(k), v] for k, v in OBJECTIVE_METRICS.items()])]

    after = {"strategy": strategies, "executor": executors, "objective": metrics}
    body = [SWEEP_INTRO]
    body += render_sections(sections, missing, after, {}, {"name": "the file name"}, {},
                            "Top level")
    body += ["## Bundled sweeps {#bundled-sweeps}"]
    body += bundled_block(("sweeps",), "`quench sweep NAME` runs one; `quench recipes copy "
                          "NAME` writes a copy to edit.")
    return page("Sweep file fields", "`quench/sweep/spec.py`, `quench/sweep/strategies/` and "
                "`quench/sweep/executors/`", body)


# --- cli.md -------------------------------------------------------------------------------------

@contextmanager
def fixed_columns(width: int) -> Iterator[None]:
    """argparse wraps at $COLUMNS (read when a formatter is made): fixed for the page."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _subcommands(parser: argparse.ArgumentParser
                 ) -> list[tuple[str, argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return []


def _machine_paths() -> dict[str, str]:
    """Absolute paths of this machine that --help texts show, and what the page says instead."""
    from quench.setup.cli import _default_home

    return {_default_home(): "the per-user data folder, e.g. ~/.local/share/quench on Linux"}


def _clean(text: str, paths: dict[str, str]) -> str:
    for path, words in paths.items():
        text = text.replace(path, words)
    return text


def parser_block(parser: argparse.ArgumentParser, help_text: str, depth: int,
                 paths: dict[str, str]) -> list[str]:
    formatter = parser._get_formatter()
    prog = parser.prog
    body = [f"{'#' * depth} {code(prog)} {{#{anchor(prog)}}}"]
    for text in (help_text, parser.description):
        if text:
            body.append(md(_clean(text, paths)))
    body.append("```text\n" + _clean(parser.format_usage().strip(), paths) + "\n```")
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            invocation = formatter._format_action_invocation(action)
            rows.append([code(invocation), md(_clean(formatter._expand_help(action)
                                                     if action.help else "", paths))])
        if rows:
            body.append(f"{group.title[:1].upper()}{group.title[1:]}:")
            body.append(table(["argument", "description"], rows))
    subs = _subcommands(parser)
    if subs:
        body.append("Commands:")
        body.append(table(["command", "description"],
                          [[f"[`{sub.prog}`](#{anchor(sub.prog)})", md(_clean(h, paths))]
                           for _, sub, h in subs]))
    return body


def walk_parsers(parser: argparse.ArgumentParser, help_text: str = "", depth: int = 2
                 ) -> Iterator[tuple[argparse.ArgumentParser, str, int]]:
    """The parser and its subcommands, depth first; `quench` and its commands are `##`
    sections, a command's subcommands `###`."""
    yield parser, help_text, depth
    for _, sub, text in _subcommands(parser):
        yield from walk_parsers(sub, text, depth + 1 if " " in parser.prog else depth)


def cli_page() -> str:
    from quench.cli import build_parser

    paths = _machine_paths()
    with fixed_columns(COLUMNS):
        parser = build_parser()
        body = ["Every `quench` command with its arguments and options, as `quench COMMAND "
                "--help` prints them. Exit codes: 0 success, 1 a failed check or run (a gate "
                "regression, no passing sweep trial), 2 bad input or a setup problem, 128 + the "
                "signal number when interrupted (130 for Ctrl-C)."]
        for sub, text, depth in walk_parsers(parser):
            body += parser_block(sub, text, depth, paths)
    return page("Command line", "the argparse parser of `quench/cli.py` (`build_parser()`)",
                body)


# --- compatibility.md ---------------------------------------------------------------------------

MATRIX = "quench/compat/matrix.yaml"
VERDICT_TEXT = {"ok": "ok", "warn": "warn", "reject": "reject"}


def comment_blocks(text: str) -> tuple[str, dict[str, str], dict[int, list[str]]]:
    """The file's header comment, the comment above each top-level key, and every comment
    block by the line number (1-based) of the line after it."""
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    above: dict[str, str] = {}
    blocks: dict[int, list[str]] = {}
    for i, line in enumerate(lines):
        block = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.insert(0, lines[j].strip().lstrip("#").strip())
            j -= 1
        if block and not line.strip().startswith("#"):
            blocks[i + 1] = block
            key = re.match(r"^([A-Za-z][\w-]*):", line)
            if key and (j < 0 or lines[j].strip() == "") and j + 1 > len(header):
                above[key.group(1)] = " ".join(block)
    return " ".join(header), above, blocks


def rule_lines(text: str) -> list[int]:
    """The 1-based first line of every entry of `rules:`, in order."""
    root = yaml.compose(text)
    for key, value in root.value:
        if key.value == "rules":
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _conditions(rule: dict[str, Any]) -> str:
    parts = []
    for key in ("engine", "backend", "format", "quant", "arch", "transform"):
        if key in rule:
            values = rule[key] if isinstance(rule[key], list) else [rule[key]]
            parts.append(f"{key} " + ", ".join(code(v) for v in values))
    return "; ".join(parts) or "anything"


def _rule_groups(text: str, rules: list[dict[str, Any]]
                 ) -> list[tuple[str, str, list[int]]]:
    """Rules grouped by the `# --- title ---` comments above them: (title, intro, indexes)."""
    _, _, blocks = comment_blocks(text)
    groups: list[tuple[str, str, list[int]]] = []
    for index, line in enumerate(rule_lines(text)):
        block = " ".join(blocks.get(line, []))
        if "---" in block or not groups:
            inner = block.split("---")
            title_text = " ".join(inner[1].split()) if len(inner) > 1 else "Rules"
            rest = " ".join(" ".join(inner[2:]).split()) if len(inner) > 2 else ""
            head, intro = _split_title(title_text)
            intro = " ".join(t for t in (intro, rest) if t)
            groups.append((head, intro, []))
        groups[-1][2].append(index)
    return groups


def _split_title(text: str) -> tuple[str, str]:
    """A group comment as a heading and an intro: `GGUF: why` -> (GGUF, why); a comment of
    several sentences keeps them all as the intro, under its first words."""
    colon, paren = text.find(": "), text.find("(")
    if colon != -1 and (paren == -1 or colon < paren):
        head, intro = text[:colon], text[colon + 2:]
    elif ". " in text:
        head, intro = text.split("(")[0].split(". ")[0].strip(), text
    else:
        head, intro = text, ""
    if head[:1].islower() and not head[1:2].isupper():  # "the reference engine", not "vLLM"
        head = head[:1].upper() + head[1:]
    return head, intro[:1].upper() + intro[1:]


def compatibility_page() -> str:
    from quench.compat import Cell, export_format, first_rule, matrix
    from quench.methods import get_method

    text = (ROOT / MATRIX).read_text(encoding="utf-8")
    data = matrix()
    header, above, _ = comment_blocks(text)
    rules = data["rules"]
    number = {id(rule): i + 1 for i, rule in enumerate(rules)}
    body = [md(header) + " The tables below are read from the file; the verdict tables apply "
            "its rules to every cell."]

    # GPUs
    rows = []
    for name, spec in data["gpus"].items():
        plan = spec.get("plan", {})
        sized = ", ".join(f"{v}: {m} GiB, {p} USD/h" for v, (m, p) in plan.items())
        rows.append([code(name), spec["arch"], str(spec.get("compute", "")), sized])
    body += ["## GPUs and architectures {#gpus}", md(above.get("gpus")),
             table(["`target.gpu`", "architecture", "compute capability",
                    "`quench plan` sizes (memory, price)"], rows)]

    # engines and backends
    engine_rows = [[code(e), ", ".join(code(b) for b in s["backends"] if b) or "none",
                    code(s["default"]) if s["default"] else "none"]
                   for e, s in data["engines"].items()]
    body += ["## Engines and backends {#engines}",
             "`target.backend` must be one of the engine's backends; unset, the default is used.",
             table(["engine", "backends", "default"], engine_rows)]

    # methods -> producer, family; producer -> format per engine/backend
    targets = [(e, b) for e, s in data["engines"].items() for b in s["backends"]]
    label = {t: f"{t[0]}/{t[1]}" if t[1] else t[0] for t in targets}
    method_rows = []
    for method, schemes in data["methods"].items():
        for scheme, (producer, quant) in schemes.items():
            method_rows.append([code(method), code(scheme), code(producer), code(quant)])
    export_rows = [[code(p)] + [code(export_format(p, e, b)) for e, b in targets]
                   for p in data["exports"]]
    body += ["## Methods, schemes and checkpoint formats {#methods}", md(above.get("methods")),
             table(["method", "scheme", "producer", "quantization family"], method_rows),
             "### Checkpoint format per engine {#formats}", md(above.get("exports")),
             table(["producer"] + [code(label[t]) for t in targets], export_rows)]

    # notices
    notice_rows = [[code(k), md(v["note"]), md(v["source"])]
                   for k, v in data.get("notices", {}).items()]
    if notice_rows:
        body += ["## Notices {#notices}", md(above.get("notices")),
                 table(["engine/backend", "note", "source"], notice_rows)]

    # the verdict of every cell
    archs = list(dict.fromkeys(spec["arch"] for spec in data["gpus"].values()))
    families: dict[tuple[str, str], tuple[str, str]] = {}
    rotating: set[tuple[str, str]] = set()
    for method, schemes in data["methods"].items():
        found = get_method(method)
        for scheme, (producer, quant) in schemes.items():
            families.setdefault((producer, quant), (method, scheme))
            if found is not None and "rotation" in found.options_model.model_fields:
                rotating.add((producer, quant))

    by_quant = {quant: producer for producer, quant in families}

    def verdicts(engine: str, backend: str | None, transform: str,
                 keys: list[tuple[str, str]]) -> list[list[str]]:
        grouped: dict[tuple[str, ...], list[str]] = {}
        for producer, quant in keys:
            method, scheme = families[(producer, quant)]
            cells = []
            for arch in archs:
                cell = Cell(method, scheme, producer, quant,
                            export_format(producer, engine, backend), engine, backend, arch,
                            arch, transform)
                rule = first_rule(cell)
                cells.append(f"{VERDICT_TEXT[rule['verdict']]} ({number[id(rule)]})"
                             if rule else "not checked")
            grouped.setdefault(tuple(cells), []).append(quant)
        return [[family_label(quants)] + list(cells) for cells, quants in grouped.items()]

    def family_label(quants: list[str]) -> str:
        """The families of a row; all of a producer's (more than 3) as one phrase."""
        if len(quants) == len(families):
            return "every family"
        parts: list[str] = []
        done: set[str] = set()
        for quant in quants:
            if quant in done:
                continue
            producer = by_quant[quant]
            mine = [q for (p, q) in families if p == producer]
            if len(mine) > 3 and set(mine) <= set(quants):
                parts.append(f"every `{producer}` family")
                done.update(mine)
            else:
                parts.append(code(quant))
                done.add(quant)
        return ", ".join(parts)

    body += ["## Verdicts by engine and architecture {#verdicts}",
             "Each cell is the verdict of the first matching rule (its number in "
             "[Rules](#rules)) for a recipe whose checkpoint is of that quantization family, "
             "with `target.gpu` of that architecture. `ok` runs; `warn` runs with the rule's "
             "caveat; `reject` stops `quench validate` and `quench run` before any work; "
             "`not checked` means no rule covers the cell (`quench validate` warns that no "
             "documented support was found). Without `target.gpu`, rules that name an "
             "architecture do not apply. Families with identical verdicts share a row."]
    for engine, backend in targets:
        body.append(f"### {code(label[(engine, backend)])} {{#verdicts-"
                    f"{anchor(label[(engine, backend)])}}}")
        body.append(table(["quantization family"] + archs,
                          verdicts(engine, backend, "none", list(families))))
    rot_rows: list[list[str]] = []
    for engine, backend in targets:
        for row in verdicts(engine, backend, "online",
                            [k for k in families if k in rotating]):
            rot_rows.append([code(label[(engine, backend)])] + row)
    body += ["### With online rotations {#verdicts-online-rotations}",
             "A checkpoint with QuIP's online rotations (`quantization.options.rotation: quip`) "
             "asks the engine to apply them (the cell's `transform` is `online`; SpinQuant's "
             "are fused into the weights and follow the tables above):",
             table(["engine", "quantization family"] + archs, rot_rows)]

    # rules
    body += ["## Rules {#rules}",
             "In order: the first rule whose keys all match a cell decides it. A key that is "
             "absent (or `*`) matches anything; a list matches any of its members."]
    for title, intro, indexes in _rule_groups(text, rules):
        body.append(f"### {md(title)} {{#rules-{anchor(title.split('(')[0])}}}")
        if intro:
            body.append(md(intro))
        body.append(table(["#", "when", "verdict", "note", "source"],
                          [[str(i + 1), _conditions(rules[i]), rules[i]["verdict"],
                            md(rules[i]["note"]), md(rules[i]["source"])] for i in indexes]))
    return page("Compatibility matrix", f"`{MATRIX}`", body)


# --- main ---------------------------------------------------------------------------------------

def pages() -> dict[str, str]:
    """Every reference page (file name -> content); MissingDescription names undocumented
    fields."""
    missing: list[str] = []
    result = {
        "recipe.md": recipe_page(missing),
        "sweep.md": sweep_page(missing),
        "cli.md": cli_page(),
        "compatibility.md": compatibility_page(),
    }
    if missing:
        raise MissingDescription(", ".join(sorted(set(missing))))
    return result


def missing_descriptions() -> list[str]:
    """Fields of the documented models that have no description (empty when all do)."""
    try:
        pages()
    except MissingDescription as exc:
        return str(exc).split(", ")
    return []


def stale_pages(generated: dict[str, str], out_dir: Path = OUT_DIR) -> list[str]:
    """The pages whose file differs from what the code generates (or is missing)."""
    stale = []
    for name, content in generated.items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the pages that differ")
    args = parser.parse_args(argv)
    try:
        generated = pages()
    except MissingDescription as exc:
        print(f"error: fields without a description: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_pages(generated)
        for name in stale:
            print(f"docs/reference/{name} differs from the code; run `make docs-reference`",
                  file=sys.stderr)
        return 1 if stale else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in generated.items():
        path = OUT_DIR / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            print(f"wrote docs/reference/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
