"""`quench sweep SWEEP.yaml`: run a sweep and print the recommended recipe (exit 0), or say
that no trial passes the gate (exit 1); bad input is exit 2 before any trial runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXIT_NONE_PASSES = 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `sweep` to the CLI."""
    sweep = sub.add_parser("sweep", help="search recipes for the cheapest one that passes the "
                           "gate (local or on Ray)")
    sweep.add_argument("sweep", help="sweep YAML file, or a bundled sweep's name")
    sweep.add_argument("--executor", help="local or ray (overrides "
                       "executor.kind)")
    sweep.add_argument("--address", help="Ray cluster address (sets executor.options.address)")
    sweep.add_argument("--max-trials", type=int, help="overrides budget.max_trials")
    sweep.add_argument("--dry-run", action="store_true", help="validate, write the trial "
                       "recipes of a grid or random sweep and list them; run nothing")
    sweep.set_defaults(func=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    """Runs the sweep (or lists its trials); exit 1 when no trial passes the gate."""
    from quench.recipe.find import find_file
    from quench.sweep.load import prepare, read_sweep
    from quench.sweep.run import run_sweep

    path = find_file(args.sweep, kind="sweeps")
    spec = read_sweep(path, _overrides(args, path))
    prepared = prepare(path, spec)
    if args.dry_run:
        return _dry_run(prepared)
    with _progress(prepared.spec.budget.max_trials) as (say, advance):
        result = run_sweep(prepared, say, advance)
    return 0 if result.recommended is not None else EXIT_NONE_PASSES


@contextmanager
def _progress(total: int) -> Iterator[tuple[Callable[[str], None], Callable[[], None]]]:
    """A bar of trials (with elapsed time) under the trial lines; plain lines off a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("trials", total=total)

        def say(line: str) -> None:
            bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        yield say, lambda: bar.advance(task)


def _overrides(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from quench.sweep.load import read_sweep

    found: dict[str, Any] = {}
    if args.executor or args.address:
        executor = read_sweep(path).executor
        options = dict(executor.options)
        if args.address:
            options["address"] = args.address
        found["executor.kind"] = args.executor or ("ray" if args.address else executor.kind)
        found["executor.options"] = options
    if args.max_trials is not None:
        found["budget.max_trials"] = args.max_trials
    return found


def _dry_run(prepared: Any) -> int:
    from quench.sweep.run import new_record
    from quench.sweep.space import describe
    from quench.sweep.trial import trial_recipe

    if prepared.strategy.needs_results:
        print(f"sweep {prepared.spec.name}: ok; strategy {prepared.spec.strategy.kind} picks "
              "its trials from measured results, so none can be listed before they run "
              f"(the space's {prepared.space.size} point(s) are validated); nothing run")
        return 0
    points = prepared.strategy.ask([], prepared.spec.budget.max_trials)
    print(f"sweep {prepared.spec.name}: {len(points)} trial(s) of a space of "
          f"{prepared.space.size} (strategy {prepared.spec.strategy.kind}); nothing run")
    for point in points:
        record = new_record(prepared, point, trial_recipe(prepared.base, point, prepared.spec.name))
        print(f"  {record.trial_id} {describe(point)}: {record.recipe_path}")
    return 0
