"""The `quench` command line: one subcommand per job (`quench --help` lists them)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from typing import TYPE_CHECKING

from quench.errors import QuenchError
from quench.shutdown import describe, exit_code, shutdown_signals

if TYPE_CHECKING:
    from pathlib import Path

    from quench.recipe import Recipe
    from quench.runner.run import RunSummary

EXIT_FAILED, EXIT_ERROR = 1, 2  # interrupted: 128 + the signal (quench/shutdown.py)


def build_parser() -> argparse.ArgumentParser:
    """The `quench` parser with every subcommand (scripts/gen_reference.py documents it)."""
    parser = argparse.ArgumentParser(prog="quench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe's pipeline (cached stages are reused)")
    run.add_argument("recipe", help="recipe YAML file, or a bundled recipe's name")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    run.add_argument("--force", action="append", default=[], metavar="STAGE",
                     help="re-run this stage even if cached (repeatable; 'all' for every stage)")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage (e.g. license: "
                     "the license verdict a run reaches, without calibrating)")
    validate = sub.add_parser("validate", help="check a recipe without running anything heavy")
    validate.add_argument("recipe", help="recipe YAML file, or a bundled recipe's name")
    validate.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    sub.add_parser("schema", help="print the recipe JSON Schema")
    plan = sub.add_parser("plan", help="predicted serving memory on common GPUs, recommended "
                          "recipe per GPU, prices")
    plan.add_argument("recipe", help="recipe YAML file, or a bundled recipe's name")
    plan.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    plan.add_argument("--batch", type=int, help="concurrent sequences (default: the largest "
                      "evaluation.throughput.concurrency, else 16)")
    plan.add_argument("--seq-len", type=int, help="tokens per sequence (default: throughput "
                      "input_len + output_len, else 4096)")
    plan.add_argument("--margin", type=float, default=0.2, help="safety margin (default 0.2)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
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
    sync = sub.add_parser("sync", help="upload runs a tracking outage kept on disk "
                          "(each exactly once)")
    sync.add_argument("target", nargs="?", help="output folder or recipe file "
                      "(default: artifacts)")
    sync.add_argument("--tracking-uri", help="upload there instead of the URI each run "
                      "was meant for")
    sync.add_argument("--drop", action="append", metavar="RUN", help="give up this pending "
                      "run (upload id prefix or run name; repeatable): its record moves to "
                      ".quench/pending/dropped/ and a partly uploaded MLflow run is marked "
                      "FAILED")
    from quench.compare.cli import add_parsers as add_compare_parsers

    add_compare_parsers(sub)  # compare, promote
    from quench.runner.cache_cli import add_parser as add_cache_parser
    from quench.setup.cli import add_parser as add_setup_parser
    from quench.sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(sub)  # sweep

    add_cache_parser(sub)  # cache verify, cache gc
    add_setup_parser(sub)  # setup models|vllm|tensorrt-llm|all
    from quench.recipe.catalog import add_parser as add_recipes_parser

    add_recipes_parser(sub)  # recipes, recipes copy
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


def _run_environment(verbose: bool) -> None:
    """`run` keeps library logs at their own levels (they go to quench.log); only bars go."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        _run_environment(args.verbose)
    elif not args.verbose:
        _quiet_libraries()
    try:
        with shutdown_signals():
            return _dispatch(args)
    except QuenchError as exc:
        from quench.redact import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        print(describe(exc), file=sys.stderr)
        return exit_code(exc)


def _dispatch(args: argparse.Namespace) -> int:
    from quench.preflight import check_recipe
    from quench.recipe import Recipe, load_recipe

    if args.command == "schema":
        print(json.dumps(Recipe.model_json_schema(), indent=2))
        return 0
    if args.command == "recipes":
        from quench.recipe.catalog import dispatch as recipes_dispatch

        return recipes_dispatch(args)
    if args.command == "cache":
        from quench.runner.cache_cli import dispatch as cache_dispatch

        return cache_dispatch(args)
    if args.command == "setup":
        from quench.setup.cli import dispatch as setup_dispatch

        return setup_dispatch(args)
    if args.command in ("compare", "promote"):
        from quench.compare.cli import dispatch

        return dispatch(args)
    if args.command == "sweep":
        from quench.sweep.cli import dispatch as sweep_dispatch

        return sweep_dispatch(args)
    if args.command == "gate":
        from quench.gate.cli import gate_main

        return gate_main(args.run, args.baseline, args.tracking_uri, args.summary, args.strict,
                         args.recipe)
    if args.command == "sync":
        from quench.tracking.cli import sync_main

        return sync_main(args.target, args.tracking_uri, args.drop)
    if args.command == "plan":
        from quench.plan import plan, render

        table = plan(load_recipe(args.recipe, args.overrides), args.batch, args.seq_len,
                     args.margin)
        print(json.dumps(table, indent=2) if args.json else render(table))
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    warnings = check_recipe(recipe, for_run=args.command == "run")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "validate":
        print(f"{args.recipe}: ok (method {recipe.quantization.method}, "
              f"scheme {recipe.quantization.scheme})")
        return 0
    summary = _run(recipe, set(args.force), args.verbose, args.until)
    if isinstance(summary, int):
        return summary
    if args.until:
        print(f"stopped after {args.until}: {summary.run_dir / 'run.json'}")
        return 0
    print(f"report: {summary.run_dir / 'report.md'}")
    from quench.tracking.cli import tracking_line
    from quench.tracking.ui import ui_line

    for line in (tracking_line(summary.tracking), ui_line(summary.tracking)):
        if line:
            print(line)
    return 0


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
    print(f"error: unexpected {type(exc).__name__}: {exc}\n"
          f"the traceback is in {log_path}", file=sys.stderr)
    return EXIT_FAILED
