"""`quench gate RUN --baseline REF`: resolve both references, decide, write the verdict."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quench.errors import RecipeError
from quench.gate.errors import GateError
from quench.recipe.find import bundled_file, find_file

if TYPE_CHECKING:
    from quench.recipe.gate import GateSpec


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `gate` to the CLI."""
    gate = sub.add_parser("gate", help="gate a run against a baseline (exit 0 pass, 1 regression)")
    gate.add_argument("run", help="candidate: MLflow run id, registry alias or recipe file")
    gate.add_argument("--baseline", help="run id, registry alias (<model>@<alias>) or recipe "
                      "file; default: the candidate recipe's gate.baseline")
    gate.add_argument("--tracking-uri", help="MLflow tracking URI (default: the recipe's, "
                      "$MLFLOW_TRACKING_URI, or artifacts/mlflow.db)")
    gate.add_argument("--recipe", help="take the thresholds from this recipe's gate section "
                      "instead of the candidate run's")
    gate.add_argument("--summary", help="also append the Markdown verdict to this file")
    gate.add_argument("--strict", action="store_true", help="an INCONCLUSIVE metric fails too")
    gate.set_defaults(func=gate_command)


def gate_command(args: argparse.Namespace) -> int:
    """`quench gate`'s handler: the parsed options to gate_main."""
    return gate_main(args.run, args.baseline, args.tracking_uri, args.summary, args.strict,
                     args.recipe)


def _is_recipe(ref: str) -> bool:
    """A recipe file or a bundled recipe's name (a run id or registry alias is neither)."""
    return ref.endswith((".yaml", ".yml")) or Path(ref).is_file() or bundled_file(ref) is not None


def _recipe_run(ref: str, uri: str) -> str:
    """Runs a recipe (cached stages are reused) and returns its MLflow run id."""
    from quench.preflight import check_recipe
    from quench.recipe import load_recipe
    from quench.runner.run import run_pipeline
    from quench.tracking.factory import tracking_target

    try:
        path = find_file(ref)
    except RecipeError as exc:
        raise GateError(str(exc)) from None
    recipe = load_recipe(path, [])
    target = tracking_target(recipe)
    if target.get("tracking_uri") != uri:
        raise GateError(f"{ref} logs to {target.get('tracking_uri') or 'nowhere'}, but the gate "
                        f"reads {uri}: set --tracking-uri or the recipe's tracking.tracking_uri")
    check_recipe(recipe)
    summary = run_pipeline(recipe)
    if "run_id" not in summary.tracking:
        raise GateError(f"{ref}: the run was not logged ({uri} unavailable); it is kept for "
                        "upload: run `quench sync`, then gate its run")
    return summary.tracking["run_id"]


def _open(client: Any, ref: str, uri: str) -> Any:
    from quench.tracking.lookup import resolve_run

    run_id = _recipe_run(ref, uri) if _is_recipe(ref) else ref
    return resolve_run(client, run_id)


def default_uri(candidate: str) -> str:
    """A recipe's own tracking target, else $MLFLOW_TRACKING_URI, else artifacts/mlflow.db."""
    if _is_recipe(candidate):
        from quench.recipe import load_recipe
        from quench.tracking.factory import tracking_target

        try:
            recipe = load_recipe(candidate, [])
        except RecipeError:
            recipe = None  # _open says what is wrong with it
        uri = tracking_target(recipe).get("tracking_uri") if recipe else None
        if uri:
            return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('artifacts').resolve()}/mlflow.db"


def gate_main(candidate: str, baseline: str | None, uri: str | None, summary: str | None,
              strict: bool, recipe: str | None) -> int:
    """Exit code 0 pass, 1 regression; errors raise (the CLI turns them into 2)."""
    from mlflow.tracking import MlflowClient

    from quench.gate.data import load_run  # numpy, scipy: not for `quench --help`
    from quench.gate.record import record_verdict
    from quench.gate.render import render
    from quench.gate.verdict import evaluate_gate

    uri = uri or default_uri(candidate)
    client = MlflowClient(tracking_uri=uri)
    cand = load_run(client, _open(client, candidate, uri))
    spec = _spec(recipe, cand.report)
    baseline = baseline or spec.baseline
    if not baseline:
        raise GateError("no baseline: pass --baseline REF or set gate.baseline in the recipe")
    base = load_run(client, _open(client, baseline, uri))
    result = evaluate_gate(cand, base, spec)
    text = render(result)
    print(text)
    if summary:
        Path(summary).parent.mkdir(parents=True, exist_ok=True)
        Path(summary).write_text(text)
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # GitHub's protocol: append
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as out:
            out.write(text)
    record_verdict(client, result, text)
    return result.exit_code(strict)


def _spec(recipe: str | None, report: dict[str, Any]) -> GateSpec:
    from quench.gate.verdict import spec_of
    from quench.recipe import load_recipe

    if recipe is None:
        return spec_of(report)

    return load_recipe(recipe, []).gate

