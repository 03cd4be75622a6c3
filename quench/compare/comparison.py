"""Selecting the runs to compare and building the comparison (the `quench compare` library)."""


from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quench.errors import QuenchError


@dataclass
class CompareRequest:
    """What to compare and where to write it."""

    tracking_uri: str
    out: Path
    experiment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    refs: list[str] = field(default_factory=list)
    all_runs: bool = False
    quality: str = "perplexity"
    record: bool = True
    allow_cross_model: bool = False  # a table and Pareto front over several base models


def default_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the pipeline's default store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{Path('artifacts').resolve() / 'mlflow.db'}")


def open_client(uri: str) -> Any:
    """An MlflowClient on an existing store: a missing SQLite file is an error, not a new store."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))  # sqlite:////abs or sqlite:///relative
        if not path.is_file():
            raise QuenchError(f"no MLflow store at {path} ({uri}): run a recipe first, or pass "
                              "--tracking-uri / set MLFLOW_TRACKING_URI")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def select_runs(client: Any, req: CompareRequest) -> list[Any]:
    """The runs named by --runs (in that order), else those matching the filters (by name)."""
    from quench.tracking.lookup import is_pipeline_run, pipeline_runs, resolve_run

    if req.refs:
        runs = [resolve_run(client, ref) for ref in req.refs]
        wrong = [r.info.run_id for r in runs if not is_pipeline_run(r)]
        if wrong:
            raise QuenchError(f"not quench pipeline runs: {', '.join(wrong)}")
        return list({r.info.run_id: r for r in runs}.values())
    tags = dict(req.tags)
    if req.model:
        tags["quench.model"] = req.model
    runs = pipeline_runs(client, req.experiment, tags, latest_only=not req.all_runs)
    return sorted(runs, key=lambda r: (r.info.run_name or "", -r.info.start_time))


def compare(req: CompareRequest) -> dict[str, Any]:
    """Builds compare.md, compare.json and pareto.png in req.out and logs them to MLflow."""
    from quench.compare.collect import load_rows
    from quench.compare.plot import plot
    from quench.compare.record import compare_page, record
    from quench.compare.table import records, render_markdown

    client = open_client(req.tracking_uri)
    rows = load_rows(client, select_runs(client, req))
    cross = check_base_models(rows, req.allow_cross_model)
    data = records(rows)
    req.out.mkdir(parents=True, exist_ok=True)
    png, md, js = (req.out / n for n in ("pareto.png", "compare.md", "compare.json"))
    plot_notes = plot(data, req.quality, png)
    ids = [r.run_id for r in rows]
    context = {"tracking_uri": req.tracking_uri, "selection": _selection(req),
               "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "plot": png.name, "plot_notes": [*cross, *plot_notes],
               "ui_link": compare_page(req.tracking_uri, ids, [r.experiment_id for r in rows])}
    text = render_markdown(data, context)
    md.write_text(text)
    js.write_text(json.dumps({**data, **context}, indent=2, sort_keys=True))
    run_id = None
    if req.record:
        experiment = _record_experiment(client, req, rows[0].experiment_id)
        run_id = record(client, experiment, ids, [md, js, png],
                        {"selection": context["selection"], "quality": req.quality,
                         "compared_runs": ",".join(ids)})
    return {"markdown": text, "files": [md, js, png], "run_id": run_id, "runs": ids}


def base_model_digest(row: Any) -> str | None:
    """A run's base model by content (report.json's base_model; None before quench kept it)."""
    return ((row.report or {}).get("base_model") or {}).get("weights_sha256")


def check_base_models(rows: list[Any], allow: bool) -> list[str]:
    """One base model per comparison: its Pareto front ranks runs, and the KL and perplexity
    of runs of different models are not on one scale. Raises (exit 2) naming a run of each,
    or, when allowed on purpose, returns a note."""
    by_digest = all(base_model_digest(r) for r in rows)  # else by name: older runs have none
    groups: dict[str, list[Any]] = {}
    for row in rows:
        key = base_model_digest(row) if by_digest else row.tags.get("quench.model", "?")
        groups.setdefault(str(key), []).append(row)
    if len(groups) < 2:
        return []
    sides = "; ".join(f"{', '.join(r.name for r in members[:3])} quantize "
                      f"{members[0].tags.get('quench.model', '?')}"
                      + (f" (weights sha256 {key[:12]}...)" if by_digest else "")
                      for key, members in groups.items())
    if not allow:
        raise QuenchError(f"compare: the runs quantize {len(groups)} different base models "
                          f"({sides}); pick runs of one model (--model, --runs) or pass "
                          "--allow-cross-model to put them in one table and front on purpose")
    return [f"cross-model comparison (--allow-cross-model): {sides}"]


def _record_experiment(client: Any, req: CompareRequest, first: str) -> str:
    """The filtered experiment, else the first compared run's."""
    if req.experiment:
        return client.get_experiment_by_name(req.experiment).experiment_id
    return first


def _selection(req: CompareRequest) -> str:
    if req.refs:
        return "runs " + ", ".join(req.refs)
    parts = [f"experiment {req.experiment}" if req.experiment else "all experiments"]
    parts += [f"{k}={v}" for k, v in req.tags.items()]
    parts += [f"model {req.model}"] if req.model else []
    parts += ["every run" if req.all_runs else "latest run per recipe"]
    return ", ".join(parts)
