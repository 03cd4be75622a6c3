"""`quench sync`: uploads the runs a tracking outage kept on disk, each exactly once."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from quench.errors import QuenchError
from quench.redact import MASK, redact
from quench.tracking.mlflow_tracker import short_reason
from quench.tracking.pending import Unreadable, drop_record, in_progress, read_records
from quench.tracking.sync import record_name, upload_one
from quench.tracking.upload import bounded, http_budget, mark_incomplete

log = logging.getLogger("quench.tracking")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `sync` to the CLI."""
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
    sync.set_defaults(func=sync_command)


def sync_command(args: argparse.Namespace) -> int:
    """`quench sync`'s handler: the parsed options to sync_main."""
    return sync_main(args.target, args.tracking_uri, args.drop)


def target_of(target: str | None) -> tuple[Path, str | None, dict[str, str] | None]:
    """Output folder, tracking URI and retry budget of `quench sync`'s argument."""
    path = Path(target or "artifacts")
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from quench.recipe import load_recipe
        from quench.tracking.mlflow_tracker import tracking_uri

        recipe = load_recipe(str(path), [])
        root = Path(recipe.output.dir).expanduser().resolve()
        spec = recipe.tracking
        return root, tracking_uri(spec, root), http_budget(spec.timeout_s, spec.retries)
    if not path.is_dir():
        raise QuenchError(f"sync: {path} is neither a recipe file nor an output folder "
                          "(output.dir of a recipe)")
    return path.resolve(), None, None


def sync_main(target: str | None, uri_override: str | None, drop: list[str] | None = None
              ) -> int:
    """Uploads every pending run of an output folder; exit 0 when none is left pending.
    `drop`: move these records aside instead (upload id prefixes or run names)."""
    root, recipe_uri, recipe_budget = target_of(target)
    records, bad = read_records(root)
    if drop:
        return drop_main(root, records, bad, drop, uri_override or recipe_uri, recipe_budget)
    if not records and not bad:
        print(f"nothing to upload: no pending runs in {root}")
        return 0
    left = [f"{item.path} cannot be uploaded ({item.reason}); quench sync {root} --drop "
            f"{item.path.stem[:8]} moves it aside" for item in bad]
    for path, record in records:
        name = record_name(record)
        if in_progress(record):
            print(f"{name}: its run is still going (pid {record['pid']}); left pending")
            continue
        uri = uri_override or _uri_for(record, recipe_uri)
        if MASK in uri:
            left.append(f"{name}: the record's tracking URI {uri} had credentials; pass "
                        "--tracking-uri or the recipe")
            continue
        budget = recipe_budget or http_budget(**record["budget"])
        began = time.perf_counter()
        try:
            run_id = upload_one(path, record, uri, budget)
        except Exception as exc:  # the store is down or refuses: the record stays
            log.debug("sync of %s failed", path, exc_info=exc)
            left.append(f"{name} -> {redact(uri)}: {short_reason(exc)}"
                        + _finish_partial(record, uri, budget))
            continue
        if run_id is None:
            print(f"{name}: being uploaded by another process; left to it")
        else:
            print(f"uploaded {name} to {redact(uri)} run {run_id} "
                  f"({time.perf_counter() - began:.1f} s)")
    if left:
        raise QuenchError(f"{len(left)} run(s) not uploaded, still pending in "
                          f"{root / '.quench' / 'pending'}: " + "; ".join(left))
    return 0


def _finish_partial(record: dict[str, Any], uri: str, budget: dict[str, str]) -> str:
    """A parent run the failed upload left RUNNING is marked FAILED (until an upload works)."""
    from mlflow.tracking import MlflowClient

    try:
        with bounded(budget):
            if mark_incomplete(MlflowClient(tracking_uri=uri), record):
                return " (its partly uploaded MLflow run is marked FAILED)"
    except Exception:  # noqa: BLE001 - the store is down: nothing to mark
        pass
    return f" (quench sync --drop {record['upload_id'][:8]} gives it up)"


def drop_main(root: Path, records: list[tuple[Path, dict[str, Any]]], bad: list[Unreadable],
              refs: list[str], uri: str | None, budget: dict[str, str] | None) -> int:
    """`quench sync --drop REF`: moves matching records to pending/dropped/ (kept, not
    uploaded), marking a partly uploaded MLflow run FAILED."""
    chosen: list[tuple[Path, dict[str, Any] | None]] = []
    for ref in refs:
        found = [(p, r) for p, r in records if r["upload_id"].startswith(ref)
                 or r["parent"]["name"] == ref] + [(b.path, None) for b in bad
                                                   if b.path.stem.startswith(ref)]
        if not found:
            names = [record_name(r) for _, r in records] + [b.path.stem[:8] for b in bad]
            raise QuenchError(f"sync --drop: {ref!r} matches no pending run in {root}; "
                              f"pending: {', '.join(names) or 'none'}")
        chosen += found
    for path, record in dict(chosen).items():
        note = ""
        if record is not None and not in_progress(record):
            note = _finish_partial(record, uri or _uri_for(record, None),
                                   budget or http_budget(**record.get("budget", {})))
            note = note if "FAILED" in note else ""
        elif record is not None:
            raise QuenchError(f"sync --drop: {record_name(record)} is still being written by "
                              f"pid {record['pid']}; stop that run first")
        target = drop_record(path)
        print(f"dropped {record_name(record) if record else path.name}: moved to {target}{note}")
    return 0


def _uri_for(record: dict[str, Any], recipe_uri: str | None) -> str:
    """The recipe's own URI when it is the record's (credentials intact), else the record's."""
    if recipe_uri is not None and redact(recipe_uri) == record["tracking_uri"]:
        return recipe_uri
    return record["tracking_uri"]
