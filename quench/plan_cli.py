"""`quench plan RECIPE`: predicted serving memory per GPU, the recommended recipe, prices
(the sizing itself is quench/plan.py)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `plan` to the CLI."""
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
    plan.set_defaults(func=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    """Prints the sizing table (text or JSON), so a recipe's GPU is chosen before it runs."""
    from quench.plan import plan, render
    from quench.recipe import load_recipe

    table = plan(load_recipe(args.recipe, args.overrides), args.batch, args.seq_len, args.margin)
    print(json.dumps(table, indent=2) if args.json else render(table))
    return 0
