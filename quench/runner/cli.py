"""`quench run`, `quench validate` and `quench schema`: a recipe's pipeline, its check, its
JSON Schema. The pipeline's libraries are imported when a command runs, not for `--help`."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quench.errors import QuenchError
from quench.shutdown import describe, exit_code

if TYPE_CHECKING:
    from quench.recipe import Recipe
    from quench.runner.run import RunSummary

EXIT_FAILED = 1  # the run did not end (a bug, a library failure, a full disk)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `run`, `validate` and `schema` to the CLI."""
    run = sub.add_parser("run", help="run a recipe's pipeline (cached stages are reused)")
    run.add_argument("recipe", help="recipe YAML file, or a bundled recipe's name")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    run.add_argument("--force", action="append", default=[], metavar="STAGE",
                     help="re-run this stage even if cached (repeatable; 'all' for every stage)")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage (e.g. license: "
                     "the license verdict a run reaches, without calibrating)")
    run.set_defaults(func=run_command, environment=run_environment)
    validate = sub.add_parser("validate", help="check a recipe without running anything heavy")
    validate.add_argument("recipe", help="recipe YAML file, or a bundled recipe's name")
    validate.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    validate.set_defaults(func=validate_command)
    schema = sub.add_parser("schema", help="print the recipe JSON Schema")
    schema.set_defaults(func=schema_command)


def run_environment(verbose: bool) -> None:
    """`run` keeps library logs at their own levels (they go to quench.log); only bars go."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def schema_command(args: argparse.Namespace) -> int:
    """Prints the recipe JSON Schema, for editors and CI."""
    from quench.recipe import Recipe

    print(json.dumps(Recipe.model_json_schema(), indent=2))
    return 0


def validate_command(args: argparse.Namespace) -> int:
    """Loads and pre-flight-checks a recipe, so its mistakes show before anything heavy runs."""
    recipe = _checked_recipe(args, for_run=False)
    print(f"{args.recipe}: ok (method {recipe.quantization.method}, "
          f"scheme {recipe.quantization.scheme})")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Runs a recipe's pipeline and names where its report and tracking went."""
    recipe = _checked_recipe(args, for_run=True)
    summary = _run(recipe, set(args.force), args.verbose, args.until)
    if isinstance(summary, int):
        return summary
    if args.until:
        print(f"stopped after {args.until}: {summary.run_dir / 'run.json'}")
        return 0
    print(f"report: {summary.run_dir / 'report.md'}")
    from quench.tracking.ui import ui_line

    for line in (tracking_line(summary.tracking), ui_line(summary.tracking)):
        if line:
            print(line)
    return 0


def _checked_recipe(args: argparse.Namespace, for_run: bool) -> Recipe:
    """The recipe with its overrides, its pre-flight warnings printed (errors raise)."""
    from quench.preflight import check_recipe
    from quench.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    for warning in check_recipe(recipe, for_run=for_run):
        print(f"warning: {warning}", file=sys.stderr)
    return recipe


def _run(recipe: Recipe, force: set[str], verbose: bool,
         until: str | None = None) -> RunSummary | int:
    """Runs the pipeline with library output in quench.log; an exit code when it did not end."""
    from quench.runner.console import LOG_NAME, RunConsole
    from quench.runner.run import output_root, run_pipeline
    from quench.runner.store import Store

    root = output_root(recipe)
    log_path = root / recipe.name / LOG_NAME
    Store(root / "cache").wait_turn(recipe.name, on_wait=lambda: print(
        f"another quench run of {recipe.name} is using {root}; waiting for it", file=sys.stderr))
    try:
        with RunConsole(log_path, verbose) as console:
            return run_pipeline(recipe, force=force, progress=console.progress, until=until)
    except KeyboardInterrupt as exc:
        print(f"{describe(exc)}; log: {log_path}", file=sys.stderr)
        return exit_code(exc)
    except QuenchError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _unexpected(exc, log_path)
        print(f"error: no space left on the device of {exc.filename or root} ({exc.strerror}); "
              f"free some and run again (finished stages are cached); log: {log_path}",
              file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug or a library failure quench does not know: no traceback
        return _unexpected(exc, log_path)


def _unexpected(exc: Exception, log_path: Path) -> int:
    """Names the failure in one line; the traceback stays in the log."""
    print(f"error: unexpected {type(exc).__name__}: {exc}\n"
          f"the traceback is in {log_path}", file=sys.stderr)
    return EXIT_FAILED


def tracking_line(tracking: dict[str, Any]) -> str | None:
    """What the CLI says about tracking after a run: the MLflow run, or the pending upload."""
    if "run_id" in tracking:
        return f"mlflow: {tracking['tracking_uri']} run {tracking['run_id']}"
    if tracking.get("unsaved"):
        return (f"tracking: not logged to {tracking['tracking_uri']}, and its record could not "
                f"be saved ({tracking['unsaved']}): this run is not logged")
    if "pending_upload" in tracking:
        pending = Path(tracking["pending_upload"])
        if not pending.exists():
            return (f"tracking: uploaded after the run to {tracking['tracking_uri']} (its "
                    f"MLflow run has tag quench.upload_id = {tracking['upload_id']})")
        return (f"tracking: not logged to {tracking['tracking_uri']}; kept in {pending}: "
                f"quench sync {pending.parent.parent.parent}")
    return None
