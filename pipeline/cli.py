"""The `quench` command line: run, validate and schema."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from pipeline.errors import QuenchError

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe's pipeline (cached stages are reused)")
    run.add_argument("recipe", help="recipe YAML file")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    run.add_argument("--force", action="append", default=[], metavar="STAGE",
                     help="re-run this stage even if cached (repeatable; 'all' for every stage)")
    validate = sub.add_parser("validate", help="check a recipe without running anything heavy")
    validate.add_argument("recipe")
    validate.add_argument("overrides", nargs="*")
    sub.add_parser("schema", help="print the recipe JSON Schema")
    return parser


def _quiet_libraries() -> None:
    """Keeps library progress bars and info logs off the console (the stage view says enough)."""
    for name, value in {
        "LLM_COMPRESSOR_LOG_LEVEL": "WARNING",
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TQDM_DISABLE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(name, value)
    warnings.simplefilter("ignore", UserWarning)  # library advice aimed at their developers


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.verbose:
        _quiet_libraries()
    try:
        return _dispatch(args)
    except QuenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    from pipeline.recipe import Recipe, load_recipe
    from pipeline.recipe.checks import check_recipe

    if args.command == "schema":
        print(json.dumps(Recipe.model_json_schema(), indent=2))
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    warnings = check_recipe(recipe, for_run=args.command == "run")
    if args.command == "validate":
        for warning in warnings:
            print(f"warning: not checked offline: {warning}", file=sys.stderr)
        print(f"{args.recipe}: ok (method {recipe.quantization.method}, "
              f"scheme {recipe.quantization.scheme})")
        return 0
    from pipeline.runner.run import run_pipeline

    summary = run_pipeline(recipe, force=set(args.force))
    print(f"report: {summary.run_dir / 'report.md'}")
    if summary.tracking:
        print(f"mlflow: {summary.tracking['tracking_uri']} run {summary.tracking['run_id']}")
    return 0
