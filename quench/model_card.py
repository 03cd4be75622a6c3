"""The artifact's model card (README.md) with Hugging Face metadata, built from report.json."""

from __future__ import annotations

from typing import Any

import yaml

from quench.license.kb import knowledge_base

NOT_EVALUATION = {"peak_rss_mb", "stage_peak_rss_mb", "stage_accelerator_peak_mb",
                  "quantize_cpu_seconds", "quantize_wall_seconds",
                  "weight_error_max", "weight_error_mean"}


def card_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Front matter: license fields, base_model (relation: quantized), tags."""
    recipe, verdict = report["recipe"], report.get("license") or {}
    q = recipe["quantization"]
    kb = knowledge_base()
    ids = verdict.get("licenses") or []
    meta: dict[str, Any] = {}
    if len(ids) == 1 and kb[ids[0]].on_hub:
        meta["license"] = ids[0]
    else:
        names = [kb[i].name for i in ids] or ["unknown"]
        meta.update({"license": "other", "license_name": " + ".join(names),
                     "license_link": "LICENSE"})
    meta["base_model"] = recipe["model"]["id"]
    if q["method"] != "none":
        meta["base_model_relation"] = "quantized"
    fmt = (report.get("quantization") or {}).get("format") or {}
    tags = ["quench", q["method"], str(q["scheme"]).lower()]
    if q["method"] != "none":
        tags += ["quantized", fmt.get("quant_method") or "compressed-tensors"]
    meta["tags"] = list(dict.fromkeys(tags))
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "text-generation"
    return meta


def render_model_card(report: dict[str, Any], name: str) -> str:
    """README.md: metadata, what was done, how it scores, and what the license requires."""
    recipe, verdict = report["recipe"], report.get("license") or {}
    q, metrics = recipe["quantization"], report["metrics"]
    front = yaml.safe_dump(card_metadata(report), sort_keys=False, allow_unicode=True)
    lines = [f"---\n{front}---", "", f"# {name}", "",
             f"`{recipe['model']['id']}` quantized with {q['method']} ({q['scheme']}), "
             "produced and evaluated by quench.", "", "## Quantization", ""]
    fmt = (report.get("quantization") or {}).get("format") or {}
    lines.append(f"- format: `{fmt.get('quant_method') or 'unquantized'}`"
                 + (f" ({fmt['format']})" if fmt.get("format") else ""))
    lines.append(f"- options: `{q['options']}`")
    calibration = report.get("calibration")
    if calibration:
        lines.append(f"- calibration: {calibration.get('num_samples')} samples of "
                     f"{calibration['source'].get('path')} (seed {calibration.get('seed')})")
    lines += ["", "## Evaluation", "", "| metric | base model | this model |",
              "| --- | --- | --- |"]
    for key in sorted((set(metrics["baseline"]) | set(metrics["candidate"])) - NOT_EVALUATION):
        base, cand = metrics["baseline"].get(key), metrics["candidate"].get(key)
        lines.append(f"| {key} | {_fmt(base)} | {_fmt(cand)} |")
    protocol = report.get("perplexity_protocol") or {}
    if protocol:
        lines += ["", f"Perplexity: {protocol['windows']} windows of {protocol['window']} tokens "
                  f"of `{protocol['source'].get('path')}`; KL divergence and top-1 agreement "
                  "against the base model on the same windows."]
    lines += _license_lines(verdict)
    return "\n".join(lines) + "\n"


def _license_lines(verdict: dict[str, Any]) -> list[str]:
    kb = knowledge_base()
    ids = verdict.get("licenses") or []
    lines = ["", "## License", "",
             "This model keeps the license of its base model(s): "
             + (", ".join(f"[{kb[i].name}]({kb[i].url})" for i in ids) or "unknown")
             + ". See LICENSE and NOTICE."]
    if verdict.get("notices"):
        lines += ["", *[f"> {n}" for n in verdict["notices"]]]
    if verdict.get("obligations"):
        lines += ["", "Obligations of whoever uses or distributes it:", ""]
        lines += [f"- {o['text']} ({o['cite']})" for o in verdict["obligations"]]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
