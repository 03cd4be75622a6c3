"""`quench sync`: uploads the runs a tracking outage kept on disk, each exactly once."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quench.errors import QuenchError
from quench.redact import MASK, redact
from quench.tracking.pending import in_progress, locked, read_records, remove_record
from quench.tracking.upload import bounded, http_budget, upload_record

if TYPE_CHECKING:
    from quench.tracking.mlflow_tracker import MlflowTracker

log = logging.getLogger("quench.tracking")


def finalized(record: dict[str, Any]) -> dict[str, Any]:
    """A record whose writer is gone: a parent still RUNNING was killed (its last stage's end)."""
    parent = record["parent"]
    if parent["status"] == "RUNNING" and not in_progress(record):
        ends = [c["end_ms"] for c in record["children"] if c.get("end_ms")]
        parent = {**parent, "status": "KILLED",
                  "end_ms": max(ends, default=parent["start_ms"])}
        return {**record, "parent": parent}
    return record


def upload_one(path: Path, record: dict[str, Any], uri: str,
               budget: dict[str, str]) -> str | None:
    """Uploads one record under its lock and removes it; None when another process holds it."""
    from mlflow.tracking import MlflowClient

    with locked(path) as mine:
        if not mine:
            return None
        with bounded(budget):
            run_id = upload_record(MlflowClient(tracking_uri=uri), finalized(record))
        remove_record(path.parent.parent.parent, record["upload_id"])
        path.with_suffix(".lock").unlink(missing_ok=True)
    return run_id


def retry_records(tracker: MlflowTracker) -> None:
    """At the start of a run: uploads this store's pending runs; stops at the first failure."""
    try:
        records = read_records(tracker.root)
    except OSError as exc:
        tracker.notice(f"tracking: {exc}")
        return
    done = 0
    for path, record in records:
        if record.get("tracking_uri") != tracker.shown_uri or in_progress(record):
            continue
        if tracker.down is not None:
            return
        try:
            if upload_one(path, record, tracker.uri, tracker.budget) is not None:
                done += 1
        except Exception as exc:  # never fails the run: the record stays for `quench sync`
            tracker._mark_down(f"uploading pending run {record['upload_id']}", exc)
    if done:
        tracker.notice(f"tracking: uploaded {done} pending run(s) to {tracker.shown_uri}")


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


def sync_main(target: str | None, uri_override: str | None) -> int:
    """Uploads every pending run of an output folder; exit 0 when none is left pending."""
    root, recipe_uri, recipe_budget = target_of(target)
    try:
        records = read_records(root)
    except OSError as exc:
        raise QuenchError(str(exc)) from None
    if not records:
        print(f"nothing to upload: no pending runs in {root}")
        return 0
    left = []
    for path, record in records:
        name = f"{record['parent']['name']} ({record['upload_id'][:8]})"
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
            from quench.tracking.mlflow_tracker import short_reason

            left.append(f"{name} -> {redact(uri)}: {short_reason(exc)}")
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


def _uri_for(record: dict[str, Any], recipe_uri: str | None) -> str:
    """The recipe's own URI when it is the record's (credentials intact), else the record's."""
    if recipe_uri is not None and redact(recipe_uri) == record["tracking_uri"]:
        return recipe_uri
    return record["tracking_uri"]


def tracking_line(tracking: dict[str, Any]) -> str | None:
    """What the CLI says about tracking after a run: the MLflow run, or the pending upload."""
    if "run_id" in tracking:
        return f"mlflow: {tracking['tracking_uri']} run {tracking['run_id']}"
    if "pending_upload" in tracking:
        pending = Path(tracking["pending_upload"])
        if not pending.exists():
            return (f"tracking: uploaded after the run to {tracking['tracking_uri']} (its "
                    f"MLflow run has tag quench.upload_id = {tracking['upload_id']})")
        return (f"tracking: not logged to {tracking['tracking_uri']}; kept in {pending}: "
                f"quench sync {pending.parent.parent.parent}")
    return None
