"""Pre-flight checks: everything checkable before a model is loaded, reported all at once.

Above the recipe model and the libraries it checks with (sources, license, evals, compat,
engines, memory): a stage-level module, so `quench/recipe` stays a model of the recipe only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from quench.compute import DeviceUnavailable
from quench.errors import EnvironmentMissing, OfflineMiss, QuenchError, RecipeError, UntrustedCode
from quench.memory_fit import MemoryShortfall, check_fits
from quench.methods import get_method
from quench.recipe.paths import secrets_in_paths
from quench.recipe.schema import Recipe
from quench.sources import model_config, resolve_spec
from quench.text_sources import check_dataset_name, load_texts, resolve_text_source


def check_recipe(recipe: Recipe, for_run: bool = True) -> list[str]:
    """Raises RecipeError listing every problem found (paths, data, output folder).

    With for_run=False (`quench validate`), a hub reference that cannot be looked up offline,
    or an engine environment not set up here, is returned as a warning instead: the recipe may
    be right for a connected machine or another host.
    """
    problems: list[str] = secrets_in_paths(recipe)
    warnings: list[str] = []
    model_ok = _collect(_check_model, recipe, for_run, problems, warnings)
    for check in (_check_calibration, _check_perplexity, _check_lm_eval, _check_output,
                  _check_license, _check_target, _check_engines, _check_environments,
                  _check_compute):
        if model_ok or check not in (_check_license, _check_compute):  # they read the model
            _collect(check, recipe, for_run, problems, warnings)
    if problems:
        raise RecipeError(f"recipe {recipe.name!r} cannot run:\n  " + "\n  ".join(problems))
    return warnings


def _collect(check: Callable[[Recipe], list[str] | None], recipe: Recipe, for_run: bool,
             problems: list[str], warnings: list[str]) -> bool:
    """Runs one check into `problems`/`warnings`; False when its input is bad (not merely
    unreachable offline or too big for this machine)."""
    try:
        warnings += check(recipe) or []
    except OfflineMiss as exc:
        (problems if for_run else warnings).append(f"not checked offline: {exc}")
    except (MemoryShortfall, DeviceUnavailable, UntrustedCode, EnvironmentMissing) as exc:
        (problems if for_run else warnings).append(str(exc))
    except QuenchError as exc:
        problems.append(str(exc))
        return False
    return True


def _check_model(recipe: Recipe) -> list[str]:
    """The model of a local checkpoint against the recipe's method, then its target engine
    (each one's check_model), then its own code (auto_map)."""
    resolved = resolve_spec(recipe.model, download=False)
    if resolved.origin == "hub":
        return []
    config = model_config(resolved)  # a bad GGUF file or config.json fails here
    for problems in _model_problems(recipe, config):
        if problems:
            raise QuenchError("\n  ".join(problems))
    if config.get("auto_map") and not recipe.model.trust_remote_code:
        raise UntrustedCode(
            f"model.id: {recipe.model.id} ships its own Python code (config.json auto_map: "
            f"{', '.join(sorted(config['auto_map']))[:200]}); transformers refuses to load it "
            "unless the recipe sets model.trust_remote_code: true (only for code you trust)")
    return []


def _model_problems(recipe: Recipe, config: dict[str, Any]) -> Iterator[list[str]]:
    """What the method finds wrong with the model, then what the target engine does (asked
    only when the method finds nothing): the first non-empty list is reported."""
    q = recipe.quantization
    method = get_method(q.method)
    yield method.check_model(q.scheme, q.options, config)
    if recipe.target is not None:
        from quench.engines import get_engine

        engine = get_engine(recipe.target.engine, recipe.target.environment)
        yield engine.check_model(q.scheme, method.storage(q.scheme, q.options), config)


def _check_calibration(recipe: Recipe) -> None:
    q, c = recipe.quantization, recipe.calibration
    check_dataset_name(c.source, "calibration.source")  # a typo, even where it goes unused
    if not get_method(q.method).needs_calibration(q.scheme, q.options):
        return
    source = resolve_text_source(c.source, c.config_name, c.split, c.text_field,
                                 "calibration.source")
    if source.kind != "file":
        return
    records = len(load_texts(source, "calibration.source"))
    if records == 0:
        raise QuenchError(f"calibration.source: {source.path} holds no non-empty text")
    if records < c.num_samples:
        raise QuenchError(
            f"calibration.num_samples: asked for {c.num_samples}, but {source.path} holds "
            f"only {records} non-empty records"
        )


def _check_perplexity(recipe: Recipe) -> None:
    p = recipe.evaluation.perplexity
    if p is None:
        return
    key = "evaluation.perplexity.dataset"
    source = resolve_text_source(p.dataset, p.config_name, p.split, p.text_field, key)
    if source.kind == "file" and not load_texts(source, key):  # decoded here, not after quantize
        raise QuenchError(f"{key}: {source.path} holds no non-empty text")


def _check_lm_eval(recipe: Recipe) -> None:
    spec = recipe.evaluation.lm_eval
    if spec is not None:
        from quench.evals.check import check_tasks

        check_tasks(spec.tasks)


def _check_license(recipe: Recipe) -> list[str]:
    """The license verdict, when the base model's card is on this machine (else: at run time)."""
    try:
        resolved = resolve_spec(recipe.model, download=False)
    except QuenchError:  # reported by _check_model
        return []
    if resolved.origin == "hub":
        return [f"license: not checked before the run: the card of {recipe.model.id} is not on "
                "this machine (not a local folder, not in the mirror); the license stage reads "
                "it after `resolve` downloads the model, and fails the run if the policy does"]
    from quench.license.assess import assess, failures

    lineage, verdict = assess(recipe, resolved.source)
    if verdict.status == "fail":
        offline = [m.model for m in lineage.offline_misses]
        fails = [f for f in verdict.findings if f.level == "fail"]
        if offline and all(f.reason.startswith(tuple(f"{m}:" for m in offline)) for f in fails):
            raise OfflineMiss(
                f"license: the card of {', '.join(offline)} is not on this machine and the hub "
                "is offline (HF_HUB_OFFLINE); a run offline fails on it, a run online reads it "
                "from the hub; license.declared settles it either way")
        raise QuenchError(f"license: {failures(verdict)}")
    return [f"license: {f.reason}" + (f" [{f.cite}]" if f.cite else "")
            for f in verdict.findings if f.level == "warn"]


def _check_target(recipe: Recipe) -> list[str]:
    """The compatibility matrix (quench/compat/matrix.yaml): can the target load and run the
    checkpoint this method writes? Rejections are errors before any calibration."""
    if recipe.target is None:
        return []
    from quench import compat

    verdict = compat.check(recipe)
    if verdict.errors:
        raise QuenchError("\n  ".join(verdict.errors))
    return verdict.warnings


def _check_engines(recipe: Recipe) -> list[str]:
    """Every engine the recipe uses: its options must be valid; one this machine cannot run
    (no CUDA) is a warning (its stages record a skip, as they would at run time)."""
    from quench.engines import get_engine

    errors: list[str] = []
    warnings: list[str] = []
    for key, name, environment, options in _engines_used(recipe):
        engine = get_engine(name, environment)
        errors += engine.option_errors(options)
        spec = recipe.evaluation.throughput
        if spec is not None and key == "target.engine":
            warnings += engine.load_warnings(options, spec.input_len + spec.output_len)
        if engine.environment_problem(options) is not None:
            continue  # _check_environments reports it
        reason = engine.unavailable_reason()
        if reason is not None:
            warnings.append(f"{key}: {name} cannot run on this machine ({reason}); what "
                            "needs it is recorded as skipped")
    if errors:
        raise QuenchError("\n  ".join(errors))
    return warnings


def _check_environments(recipe: Recipe) -> None:
    """Every engine's environment is set up (target.environment, else the quench home's, made
    by `quench setup <engine>`); EnvironmentMissing names the command for each one that is not."""
    from quench.engines import get_engine

    missing = []
    q = recipe.quantization
    tools_missing = get_method(q.method).unavailable_reason()
    if tools_missing is not None:
        missing.append(f"quantization.method {q.method}: {tools_missing}")
    for key, name, environment, options in _engines_used(recipe):
        problem = get_engine(name, environment).environment_problem(options)
        if problem is not None:
            missing.append(f"{key}: {problem}")
    if missing:
        raise EnvironmentMissing("\n  ".join(missing))


def _engines_used(recipe: Recipe) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(recipe key, engine, environment, options): target.engine, then each other engine of
    evaluation.lm_eval.engines (those run in their default environment, with no options)."""
    target = recipe.target
    used = [] if target is None else [
        ("target.engine", target.engine, target.environment, target.options)]
    spec = recipe.evaluation.lm_eval
    for name in [] if spec is None else spec.engines:
        if name not in [u[1] for u in used]:
            used.append(("evaluation.lm_eval.engines", name, None, {}))
    return used


def _check_output(recipe: Recipe) -> None:
    try:
        path = Path(recipe.output.dir).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a loop
        raise QuenchError(f"output.dir: {recipe.output.dir} cannot be resolved ({exc}); "
                          "allowed: a folder, or a path whose existing part is one") from None
    existing = next(p for p in (path, *path.parents) if p.exists() or p.is_symlink())
    if existing.is_symlink() and not existing.exists():
        raise QuenchError(f"output.dir: {existing} is a broken symbolic link (or a loop)")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise QuenchError(f"output.dir: {path} is not writable ({existing} is not a writable "
                          "folder)")


def _check_compute(recipe: Recipe) -> list[str]:
    """The device exists here, and each step's predicted peak memory fits this machine."""
    from quench.compute import cuda_device_count, resolve_device

    device = resolve_device(recipe.compute.device)
    q = recipe.quantization
    if q.method != "none" and not get_method(q.method).capabilities.loads_on_device:
        # llm-compressor 0.14 onloads to the first accelerator torch sees, whatever we ask.
        if device == "cpu" and cuda_device_count():
            raise QuenchError("compute.device: cpu, but llm-compressor onloads layers to the "
                              "first CUDA device it sees: run with CUDA_VISIBLE_DEVICES= "
                              "(empty) to quantize on the CPU")
        if device not in ("cpu", "cuda:0"):
            raise QuenchError(f"compute.device: {recipe.compute.device}: llm-compressor "
                              "onloads to the first visible device; run with "
                              f"CUDA_VISIBLE_DEVICES={device.partition(':')[2]} and "
                              "compute.device: cuda")
    if not recipe.compute.check_memory:
        return []
    from quench import plan

    try:
        shape, _ = plan.model_shape(recipe)
    except QuenchError as exc:
        return [f"compute.check_memory: memory not predicted ({exc})"]
    check_fits(recipe, shape)
    return []
