"""recipe.md: every recipe field, with each registered method's and engine's options."""

from __future__ import annotations

from typing import Any

from .common import anchor, bundled_block, code, md, module_doc, own_doc, page, table
from .fields import options_block, render_sections, sections_of

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


METHODS_INTRO = (
    "`quantization.method` names one of these; `quantization.scheme` one of its schemes (the "
    "first is the default); `quantization.options` holds the method's options below (an "
    "unknown key is an error). The calibration column says which schemes read the "
    "`calibration` data with the default options; some options add it (see each method).")

ENGINES_INTRO = (
    "`target.engine` names one of these; `target.options` holds the engine's options below "
    "(an unknown key is an error with a \"did you mean\" suggestion). Which checkpoint runs "
    "on which engine, backend and GPU is in the "
    "[compatibility matrix](compatibility.md).")


def methods_block(missing: list[str]) -> list[str]:
    """The methods table, the notes every method shares, then a section per method."""
    from quench.methods import get_method
    from quench.methods.kv_cache import KvCacheOptions

    methods = {n: get_method(n) for n in _registry_names("methods")}
    kv = [n for n, m in methods.items() if issubclass(m.options_model, KvCacheOptions)]
    rotating = [n for n, m in methods.items() if "rotation" in m.options_model.model_fields]
    rows = [[f"[`{n}`](#method-{anchor(n)})", _schemes_text(m), _calibration_text(m),
             md(module_doc(type(m)))] for n, m in methods.items()]
    body = [
        "## Methods {#methods}",
        METHODS_INTRO,
        table(["method", "schemes", "calibration data", "what it does"], rows),
        QUANTIZATION_NOTE,
        KV_CACHE_NOTE.format(methods=", ".join(code(n) for n in kv)),
        ROTATION_NOTE.format(methods=" and ".join(code(n) for n in rotating)),
    ]
    for name, method in methods.items():
        body += method_section(name, method, missing)
    return body


def method_section(name: str, method: Any, missing: list[str]) -> list[str]:
    """One method: what it does, its schemes, its note and its options."""
    intro = [md(module_doc(type(method))),
             f"Schemes: {_schemes_text(method)}. Calibration data: "
             f"{_calibration_text(method)}."]
    if own_doc(method.options_model) and method.options_model.model_fields:
        intro.append(md(own_doc(method.options_model)))
    body = [f"### {code(name)} {{#method-{anchor(name)}}}", " ".join(intro)]
    if name in METHOD_NOTES:
        body.append(METHOD_NOTES[name])
    body.append(options_block(method.options_model, missing, "No options."))
    return body


def engines_block(missing: list[str]) -> list[str]:
    """The engines table, then a section per engine."""
    from quench.compat import matrix
    from quench.engines import ENGINES

    engines = matrix()["engines"]
    classes = {name: ENGINES.get(name) for name in _registry_names("engines")}
    rows = []
    for name, cls in classes.items():
        backends = [b for b in engines.get(name, {}).get("backends", []) if b]
        rows.append([f"[`{name}`](#engine-{anchor(name)})",
                     ", ".join(code(b) for b in backends) or "none",
                     "yes" if cls.capabilities.served else "no (in process)",
                     md(module_doc(cls))])
    body = ["## Engines {#engines}", ENGINES_INTRO,
            table(["engine", "backends", "served", "what it is"], rows)]
    for name, cls in classes.items():
        body += engine_section(name, cls, engines.get(name, {}), missing)
    return body


def engine_section(name: str, cls: Any, spec: dict[str, Any], missing: list[str]) -> list[str]:
    """One engine: what it is, its backends (`spec`, from the matrix), its environment, its
    note and its options."""
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
    body = [f"### {code(name)} {{#engine-{anchor(name)}}}", " ".join(intro)]
    if name in ENGINE_NOTES:
        from quench.engines.vllm_options import OWN_OPTIONS

        body.append(ENGINE_NOTES[name].format(own=", ".join(code(o) for o in OWN_OPTIONS)))
    body.append(options_block(cls.options_model, missing, "Takes no `target.options`."))
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
    return page("Recipe fields", "`quench/recipe/` (`schema.py`, `evaluation.py`, `gate.py`), "
                "`quench/methods/` and `quench/engines/`", body)

