"""Assembles the `quench` command line from its command modules and runs the chosen command.

Each command module adds its subcommands with `add_parser(sub)` (`add_parsers` where it has
several), and gives each one a handler (`func`: the parsed arguments to the exit code). This
module only puts them in order and does what every command shares: library output, an error
as exit code 2 without a traceback, and Ctrl-C, SIGTERM or SIGHUP as 128 + the signal.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable

from quench import plan_cli
from quench.compare import cli as compare_cli
from quench.errors import QuenchError
from quench.gate import cli as gate_cli
from quench.recipe import cli as recipes_cli
from quench.runner import cache_cli
from quench.runner import cli as runner_cli
from quench.setup import cli as setup_cli
from quench.shutdown import describe, exit_code, shutdown_signals
from quench.sweep import cli as sweep_cli
from quench.tracking import cli as tracking_cli

EXIT_ERROR = 2  # a QuenchError; 1 is a failed check or run, 128 + the signal an interruption

DESCRIPTION = "The `quench` command line: one subcommand per job (`quench --help` lists them)."

# The order of `quench --help`: each adds its subcommands (and their handlers).
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (  # type: ignore[type-arg]
    runner_cli.add_parsers,  # run, validate, schema
    plan_cli.add_parser,  # plan
    gate_cli.add_parser,  # gate
    tracking_cli.add_parser,  # sync
    compare_cli.add_parsers,  # compare, promote
    sweep_cli.add_parser,  # sweep
    cache_cli.add_parser,  # cache verify, cache gc
    setup_cli.add_parser,  # setup models|vllm|llama.cpp|tensorrt-llm|all
    recipes_cli.add_parser,  # recipes, recipes copy
)


def build_parser() -> argparse.ArgumentParser:
    """The `quench` parser with every subcommand (scripts/gen_reference.py documents it)."""
    parser = argparse.ArgumentParser(prog="quench", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def quiet_libraries(verbose: bool) -> None:
    """Keeps library progress bars and info logs off the console (the stage view says enough)."""
    if verbose:
        return
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
    """Runs the chosen command; an error or an interruption becomes its exit code."""
    args = build_parser().parse_args(argv)
    environment = getattr(args, "environment", quiet_libraries)  # `run` sets its own
    environment(args.verbose)
    try:
        with shutdown_signals():
            return args.func(args)
    except QuenchError as exc:
        from quench.redact import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        print(describe(exc), file=sys.stderr)
        return exit_code(exc)
