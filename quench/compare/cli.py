"""The `quench compare` and `quench promote` subcommands (parsers and their handlers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from quench.errors import QuenchError

URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else artifacts/mlflow.db)"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Adds both subcommands to the `quench` parser."""
    compare = sub.add_parser("compare", help="table, Markdown report and Pareto plot of runs "
                             "from MLflow")
    compare.add_argument("--runs", nargs="+", default=[], metavar="REF",
                         help="run ids or registry aliases (<model>@<alias>); else filters")
    compare.add_argument("--experiment", help="only this MLflow experiment (default: all)")
    compare.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                         help="only runs with this tag (repeatable), e.g. quench.method=gptq")
    compare.add_argument("--model", help="only runs of this model (its quench.model tag)")
    compare.add_argument("--sweep", help="only the baseline and trials of this `quench sweep` "
                         "(its quench.sweep tag)")
    compare.add_argument("--all-runs", action="store_true",
                         help="every matching run, not only the latest per recipe")
    compare.add_argument("--quality", choices=("perplexity", "kl"), default="perplexity",
                         help="the Pareto plot's quality axis")
    compare.add_argument("--out", default="artifacts/compare", help="output folder "
                         "(compare.md, compare.json, pareto.png); default artifacts/compare")
    compare.add_argument("--no-record", action="store_true",
                         help="do not log the comparison as an MLflow run")
    compare.add_argument("--allow-cross-model", action="store_true",
                         help="compare runs of different base models in one table and Pareto "
                         "front (otherwise an error: their metrics are not on one scale)")
    compare.add_argument("--tracking-uri", help=URI_HELP)
    compare.set_defaults(func=compare_command)
    promote = sub.add_parser("promote", help="register a run's model in the MLflow registry "
                             "and point aliases at it")
    promote.add_argument("run", help="run id or registry alias (<model>@<alias>)")
    promote.add_argument("--model", required=True, help="registered model name")
    promote.add_argument("--alias", action="append", required=True, metavar="ALIAS",
                         help="alias to set, e.g. baseline, candidate, production (repeatable)")
    promote.add_argument("--tracking-uri", help=URI_HELP)
    promote.set_defaults(func=promote_command)


def promote_command(args: argparse.Namespace) -> int:
    """Registers the run's model and sets the aliases; errors raise QuenchError (exit code 2)."""
    from quench.compare.comparison import default_tracking_uri, open_client
    from quench.compare.promote import promote

    uri = default_tracking_uri(args.tracking_uri)
    done = promote(open_client(uri), uri, args.run, args.model, args.alias)
    refs = ", ".join(f"{done['model']}@{a}" for a in done["aliases"])
    print(f"registered {done['model']} version {done['version']} (run {done['run_id']}, "
          f"source {done['source_kind']}: {done['source']}); aliases: {refs}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Writes and prints the comparison; errors raise QuenchError (exit code 2)."""
    from quench.compare.comparison import CompareRequest, compare, default_tracking_uri

    uri = default_tracking_uri(args.tracking_uri)
    req = CompareRequest(tracking_uri=uri, out=Path(args.out), experiment=args.experiment,
                         tags={**_tags(args.tag), **_sweep_tag(args.sweep)},
                         model=args.model, refs=args.runs, all_runs=args.all_runs,
                         quality=args.quality, record=not args.no_record,
                         allow_cross_model=args.allow_cross_model)
    result = compare(req)
    print(result["markdown"], end="")
    print(f"\nwritten: {', '.join(str(p) for p in result['files'])}")
    if result["run_id"]:
        print(f"mlflow: {uri} run {result['run_id']}")
    return 0


def _sweep_tag(sweep: str | None) -> dict[str, str]:
    return {"quench.sweep": sweep} if sweep else {}


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, tag = value.partition("=")
        if not sep or not key:
            raise QuenchError(f"--tag {value!r}: expected KEY=VALUE, e.g. quench.method=rtn")
        tags[key] = tag
    return tags
