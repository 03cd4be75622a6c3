"""Run tags derived from what stages recorded, so runs can be filtered in the MLflow UI."""

from __future__ import annotations

from typing import Any

from quench.redact import redact


def license_tags(verdict: dict[str, Any] | None) -> dict[str, str]:
    """Tags to filter runs by in the UI: license, commercial_ok, obligations."""
    if not verdict:
        return {}
    ok = {True: "true", False: "false", None: "unknown"}[verdict["commercial_ok"]]
    obligations = "; ".join(f"{o['text']} ({o['cite']})" for o in verdict["obligations"])
    return {"license": ",".join(verdict["licenses"]) or "unknown", "commercial_ok": ok,
            "obligations": redact(obligations)[:5000] or "none",
            "license.verdict": verdict["status"]}


def data_tags(outputs: dict[str, Any]) -> dict[str, str]:
    """Which text a stage read (calibration lineage, perplexity protocol): path, origin
    (local, mirror, bundled or hub) and record count, as run tags."""
    for name, count in (("lineage", "records_available"), ("protocol", "records")):
        block = outputs.get(name)
        if isinstance(block, dict) and isinstance(block.get("source"), dict):
            source = block["source"]
            return {"quench.data.source": str(source.get("path")),
                    "quench.data.origin": str(source.get("origin", "")),
                    "quench.data.records": str(block.get(count, ""))}
    return {}
