"""lm_eval: lm-eval tasks on a checkpoint, through `hf` in process and through served engines.

Tasks come from `evaluation.lm_eval`; YAMLs under evals/ are rendered into `tasks/` with
absolute paths (their mirror data adapted into `data/`). Engine `hf` is lm-eval's HFLM on the
model quench.models.load_model gives (compressed-tensors dequantized); a served engine
(`capabilities.served`) runs lm-eval's `local-completions` model against its OpenAI-compatible
server, with the checkpoint's tokenizer; an engine that builds (`capabilities.builds`:
TensorRT-LLM) serves the build stage's `model_dir`. An engine that cannot run here is recorded
as `skipped: <reason>`. Outputs, relative to the stage folder:

- `<engine>/samples_<task>.jsonl`: per-document results, the format documented in
  quench/evals/results.py (doc_id, filter, doc_hash, target_hash, one key per metric);
- `<engine>/results_<task>.json`: lm-eval's own aggregated results for the task;
- `results_table.json`: engine, task, metric, value, stderr, samples, seconds (columns),
  logged to MLflow with log_table; each engine's folder is logged as artifacts (the gate
  reads `hf/samples_<task>.jsonl` from there);
- the manifest's `results` ({engine: {task: {metric: {value, stderr}}}}) and `differences`
  ({engine: {task: {metric: engine - hf}}}).

Metrics: `lm_eval.<task>.<metric>`, `..._stderr` and `lm_eval.<task>.seconds` for hf;
`lm_eval.<engine>.<task>.<metric>` and `..._minus_hf` for a served engine.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench.compute import resolve_device
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.engines import REFERENCE_ENGINE, Engine, get_engine
from quench.errors import StageError
from quench.evals import results as lmres
from quench.evals import tasks as eval_tasks
from quench.evals.models import hf_model, served_model
from quench.evals.render import bundled_for, render
from quench.models import load_model, load_tokenizer
from quench.offload import stage_offload
from quench.recipe.schema import Recipe
from quench.sources import fingerprint_path, mirror_dir
from quench.stages import register_stage

HF_METRIC = re.compile(r"lm_eval\.(?P<task>[^.]+)\.(?P<metric>[^.]+)$")  # hf rows only


def engines_for(recipe: Recipe) -> list[str]:
    """evaluation.lm_eval.engines, then target.engine when it is not among them."""
    names = list(recipe.evaluation.lm_eval.engines)
    if recipe.target is not None and recipe.target.engine not in names:
        names.append(recipe.target.engine)
    return names


def serve_options(recipe: Recipe, engine: str) -> dict[str, Any]:
    target = recipe.target
    return dict(target.options) if target is not None and target.engine == engine else {}


def engine_for(recipe: Recipe, name: str) -> Engine:
    """The engine, in target.environment when it is the recipe's target engine."""
    target = recipe.target
    same = target is not None and target.engine == name
    return get_engine(name, target.environment if same else None)


@register_stage
class LmEvalStage(Stage[Recipe]):
    name = "lm_eval"
    libraries = ("lm-eval", "torch", "transformers", "tokenizers", "compressed-tensors",
                 "datasets")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        spec = recipe.evaluation.lm_eval
        if spec is None:
            return {"lm_eval": None}
        engines = engines_for(recipe)
        return {
            "lm_eval": spec.model_dump(), "engines": engines,
            "serve_options": {e: serve_options(recipe, e) for e in engines
                              if e != REFERENCE_ENGINE},
            "dtype": recipe.model.dtype, "trust_remote_code": recipe.model.trust_remote_code,
            "device": resolve_device(recipe.compute.device),
        }

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """The mirror files (or bundled excerpts) the evals/ tasks read, and the served engines'
        versions."""
        if recipe.evaluation.lm_eval is None:
            return {}
        mirror = mirror_dir()
        files = {}
        for task in eval_tasks.local_tasks():
            for source in task.sources:
                path = mirror / source if mirror else None
                if path is not None and path.is_file():
                    files[source] = fingerprint_path(path)[path.name]
            excerpt = bundled_for(task, mirror)
            if excerpt is not None:
                files[f"bundled:{excerpt.name}"] = excerpt.sha256
        engines = [engine_for(recipe, e) for e in engines_for(recipe)]
        return {"mirror_files": files,
                "engines": {e.name: e.versions() for e in engines if e.capabilities.served}}

    def code_files(self) -> list[Path]:
        """This module, the adapters and every file under evals/ (task definitions)."""
        package = Path(eval_tasks.__file__).parent
        task_files = [p for p in eval_tasks.EVALS_DIR.rglob("*") if p.is_file()
                      and "__pycache__" not in p.parts] if eval_tasks.EVALS_DIR.is_dir() else []
        return super().code_files() + sorted(package.glob("*.py")) + sorted(task_files)

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.evaluation.lm_eval is None:
            return "evaluation.lm_eval is not set"
        if inputs["model"].skipped:
            return f"no model to evaluate ({inputs['model'].status})"
        return None

    def headline(self, manifest: Manifest) -> str:
        """The first task's accuracy on hf (acc, else its first metric)."""
        found: dict[str, dict[str, float]] = {}
        for key, value in manifest.metrics.items():
            match = HF_METRIC.match(key)
            if match and not match["metric"].endswith(("_stderr", "_minus_hf", "seconds")):
                found.setdefault(match["task"], {})[match["metric"]] = value
        if not found:
            return ""
        task, metrics = next(iter(found.items()))
        metric = "acc" if "acc" in metrics else next(iter(metrics))
        others = len(found) - 1
        more = f" (+{others} more task{'s' if others > 1 else ''})" if others else ""
        return f"{task} {metric} {metrics[metric]:.4g}{more}"

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        spec, out = ctx.recipe.evaluation.lm_eval, ctx.out_dir
        wanted = set(spec.tasks)
        try:  # a group or tag may name any task: then every task is rendered
            origins = render(out, mirror_dir(),
                             wanted=wanted if wanted <= eval_tasks.local_task_names() else None)
        except ValueError as exc:
            raise StageError(f"evaluation.lm_eval: {exc}") from None
        manager = _task_manager(out / "tasks", spec.tasks)
        engines: dict[str, Any] = {}
        for name in engines_for(ctx.recipe):
            engine = engine_for(ctx.recipe, name)
            source = engine.loads_from(ctx.inputs)
            reason = engine.unavailable_reason(serve_options(ctx.recipe, name))
            if reason is None and not engine.capabilities.prompt_logprobs:
                reason = (f"{name}'s completions return no log-probabilities of the prompt "
                          "(echo), which lm-eval's loglikelihood tasks need")
            if reason is None and source.skipped:
                reason = f"nothing built to serve (build: {source.status})"
            if reason is None:
                reason = engine.model_unsupported_reason(source.path("model_dir"))
            if reason is not None:
                engines[name] = {"status": f"skipped: {reason}"}
                continue
            engines[name] = _run_engine(ctx, engine, source, manager)
        shutil.rmtree(out / ".datasets-cache", ignore_errors=True)
        return _result(ctx, origins, engines)


def _task_manager(tasks_dir: Path, wanted: list[str]) -> Any:
    """lm-eval's TaskManager over the rendered tasks; built-ins indexed only when needed (~7 s)."""
    from lm_eval.tasks import TaskManager

    local = eval_tasks.local_task_names(tasks_dir)
    return TaskManager(include_path=str(tasks_dir),
                       include_defaults=not set(wanted) <= local)


def _run_engine(ctx: StageContext[Recipe], engine: Any, source: Manifest,
                manager: Any) -> dict[str, Any]:
    """Every task on one engine: hf in this process, a served engine inside engine.serve()
    on source's model_dir (with the build's tokenizer_dir and serve_options when it has them)."""
    recipe, workdir = ctx.recipe, ctx.out_dir / engine.name
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = source.path("model_dir")
    if not engine.capabilities.served:
        with stage_offload(recipe.compute, "lm_eval") as offload:
            model = load_model(model_dir, recipe.model.dtype, recipe.model.trust_remote_code,
                               device=ctx.config["device"], offload=offload)  # HFLM runs there
            tokenizer = load_tokenizer(model_dir, recipe.model.trust_remote_code)
            with _console_to(workdir / "lm_eval.log"):
                lm = hf_model(model, tokenizer, recipe.evaluation.lm_eval.batch_size)
            return _evaluate(ctx, lm, engine.name, manager)
    options = {**serve_options(recipe, engine.name), **source.outputs.get("serve_options", {})}
    tokenizer = source.path("tokenizer_dir") if "tokenizer_dir" in source.outputs else model_dir
    with engine.serve(model_dir, workdir, options,
                      trust_remote_code=recipe.model.trust_remote_code) as server:
        with _console_to(workdir / "lm_eval.log"):
            lm = served_model(server.base_url, server.model, tokenizer,
                              recipe.evaluation.lm_eval.batch_size,
                              recipe.model.trust_remote_code)
        found = _evaluate(ctx, lm, engine.name, manager)
    log = Path(server.log_path)
    if log.is_relative_to(ctx.out_dir):
        found["server_log"] = str(log.relative_to(ctx.out_dir))
    return found


@contextlib.contextmanager
def _console_to(path: Path) -> Iterator[None]:
    """lm-eval's progress bars and log lines go to a file kept with the outputs."""
    with path.open("a") as fh, contextlib.redirect_stderr(fh), contextlib.redirect_stdout(fh):
        yield


def _evaluate(ctx: StageContext[Recipe], lm: Any, engine: str, manager: Any) -> dict[str, Any]:
    """simple_evaluate once per task (its own seconds, samples and results files)."""
    from lm_eval import simple_evaluate

    spec = ctx.recipe.evaluation.lm_eval
    found: dict[str, Any] = {"status": "ran", "samples": {}, "results_files": {},
                             "metrics": {}, "seconds": {}, "n_samples": {},
                             "join_fallbacks": {}}
    for task in spec.tasks:
        start, fallbacks = time.perf_counter(), lm.join_fallbacks
        try:
            with _console_to(ctx.out_dir / engine / "lm_eval.log"):
                result = simple_evaluate(
                    model=lm, tasks=[task], num_fewshot=spec.num_fewshot, limit=spec.limit,
                    task_manager=manager, log_samples=True,
                )
        except Exception as exc:  # lm-eval and the datasets library raise many types
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise StageError(f"lm-eval task {task!r} on engine {engine!r} failed: "
                             f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:"
                             f"{where.lineno}: {where.line})") from exc
        found["seconds"][task] = round(time.perf_counter() - start, 3)
        found["join_fallbacks"][task] = lm.join_fallbacks - fallbacks
        kept = lmres.summary(result)
        results_file = f"{engine}/results_{task}.json"
        (ctx.out_dir / results_file).write_text(_json(kept))
        found["results_files"][task] = results_file
        found["metrics"].update(lmres.task_metrics(kept["results"]))
        for sub, samples in result.get("samples", {}).items():
            rel = f"{engine}/samples_{sub}.jsonl"
            found["n_samples"][sub] = lmres.write_samples(ctx.out_dir / rel, samples)
            found["samples"][sub] = rel
    return found


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str)


def _result(ctx: StageContext[Recipe], origins: dict[str, Any], engines: dict[str, Any]
            ) -> StageResult:
    """Manifest outputs and metrics: per engine and task, the differences to hf, the table."""
    results = {e: r.pop("metrics") for e, r in engines.items() if "metrics" in r}
    reference = results.get(REFERENCE_ENGINE)
    differences = {
        e: {t: {m: v["value"] - reference[t][m]["value"] for m, v in metrics.items()
                if m in reference.get(t, {})} for t, metrics in r.items()}
        for e, r in results.items() if e != REFERENCE_ENGINE and reference is not None
    }
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for engine, per_task in results.items():
        prefix = "lm_eval" if engine == REFERENCE_ENGINE else f"lm_eval.{engine}"
        for task, per_metric in per_task.items():
            seconds = engines[engine]["seconds"].get(task)
            if seconds is not None:
                metrics[f"{prefix}.{task}.seconds"] = seconds
            for metric, v in per_metric.items():
                metrics[f"{prefix}.{task}.{metric}"] = v["value"]
                if v["stderr"] is not None:
                    metrics[f"{prefix}.{task}.{metric}_stderr"] = v["stderr"]
                diff = differences.get(engine, {}).get(task, {}).get(metric)
                if diff is not None:
                    metrics[f"{prefix}.{task}.{metric}_minus_hf"] = diff
                rows.append({"engine": engine, "task": task, "metric": metric,
                             "value": v["value"], "stderr": v["stderr"],
                             "samples": engines[engine]["n_samples"].get(task),
                             "seconds": seconds, "minus_hf": diff})
    columns = ("engine", "task", "metric", "value", "stderr", "samples", "seconds", "minus_hf")
    table = {c: [r[c] for r in rows] for c in columns}
    (ctx.out_dir / "results_table.json").write_text(_json(table))
    spec = ctx.recipe.evaluation.lm_eval
    wanted = {t: origins.get(t, {"source": "built-in task"}) for t in spec.tasks}
    outputs = {"tasks": wanted, "engines": engines, "results": results,
               "differences": differences, "table": "results_table.json",
               "tasks_dir": "tasks", "protocol": spec.model_dump(),
               # per-document samples, results and logs of each engine, for the gate
               "mlflow_artifacts": [e for e, r in engines.items() if r["status"] == "ran"]}
    return StageResult(outputs=outputs, metrics=metrics)
