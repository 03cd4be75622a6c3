"""report: report.json and report.md from the manifests of every earlier stage."""

from __future__ import annotations

import json
from typing import Any

from quench.contract.manifest import Manifest
from quench.contract.stage import Publishes, Stage, StageContext, StageResult
from quench.evals.report import lm_eval_markdown, lm_eval_summary
from quench.model_card import render_model_card
from quench.models import dir_size_bytes
from quench.recipe.schema import Recipe
from quench.redact import redact_data
from quench.stages import register_stage
from quench.stages.export import deployment_markdown, deployment_summary
from quench.stages.throughput import throughput_markdown, throughput_summary


@register_stage
class ReportStage(Stage[Recipe]):
    name = "report"
    publishes = Publishes(files={"report.md": "report_md", "report.json": "report_json"})

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return redact_data(recipe.model_dump(mode="json"))

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        report = build_report(ctx.recipe, ctx.inputs)
        (ctx.out_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        (ctx.out_dir / "report.md").write_text(render_markdown(report))
        (ctx.out_dir / "model_card.md").write_text(render_model_card(report, report["artifact"]))
        return StageResult(outputs={"report_json": "report.json", "report_md": "report.md",
                                    "artifact_files": {"README.md": "model_card.md"}})


def build_report(recipe: Recipe, inputs: dict[str, Manifest]) -> dict[str, Any]:
    """The run's facts: recipe, versions, each stage's status and timing, metrics and changes."""
    versions: dict[str, str] = {}
    for manifest in inputs.values():
        versions.update(manifest.data.get("versions", {}))
    stages = [
        {"node": node, "stage": m.data["stage"], "status": m.status,
         "seconds": m.data.get("elapsed_s"), "key": m.key}
        for node, m in inputs.items()
    ]
    quantize = inputs["quantize"]
    return {
        "run": recipe.name,
        "artifact": recipe.license.artifact_name or recipe.name,
        "recipe": redact_data(recipe.model_dump(mode="json")),
        "versions": versions,
        "stages": stages,
        "metrics": _metrics(inputs),
        "quantization": {k: quantize.outputs.get(k) for k in (
            "format", "quantization_config", "layer_weight_errors", "library_warnings")},
        "calibration": inputs["calibrate"].outputs.get("lineage"),
        "license": inputs["license"].outputs.get("verdict"),
        "perplexity_protocol": inputs["evaluate"].outputs.get("protocol"),
        "base_model": {"id": redact_data(recipe.model.id),
                       **(inputs["resolve"].outputs.get("digests") or {})},
        "lm_eval": lm_eval_summary(inputs.get("baseline_lm_eval"), inputs.get("lm_eval")),
        "throughput": throughput_summary(inputs.get("throughput")),
        "deployment": deployment_summary(inputs.get("export"), inputs.get("build")),
        "notes": [n for n in [inputs["evaluate"].outputs.get("kl_note")] if n]
                 + [f"{quantize.outputs.get('backend', 'llmcompressor')}: {w}"
                    for w in quantize.outputs.get("library_warnings", [])],
    }


KL_METRICS = ("kl_divergence", "topk_mass", "kl_exact_subset", "kl_bound_subset",
              "kl_bound_ratio", "kl_exact_tokens")


def _metrics(inputs: dict[str, Manifest]) -> dict[str, dict[str, float]]:
    base_eval, cand_eval = inputs["baseline_eval"].metrics, inputs["evaluate"].metrics
    baseline = {"size_bytes": dir_size_bytes(inputs["resolve"].path("model_dir"))}
    candidate = {"size_bytes": inputs["quantize"].metrics.get("size_bytes")}
    export = inputs.get("export")
    if export is not None and not export.skipped:  # what is deployed (ModelOpt: the export)
        candidate["size_bytes"] = export.metrics.get("checkpoint_bytes", candidate["size_bytes"])
    for name in ("perplexity", "nll_per_token"):
        if name in base_eval:
            baseline[name] = base_eval[name]
        if name in cand_eval:
            candidate[name] = cand_eval[name]
    for name in (*KL_METRICS, "top1_agreement"):
        if name in cand_eval:
            candidate[name] = cand_eval[name]
    for name in ("quantize_wall_seconds", "quantize_cpu_seconds", "peak_rss_mb",
                 "weight_error_mean", "weight_error_max", "output_cosine"):
        if name in inputs["quantize"].metrics:
            candidate[name] = inputs["quantize"].metrics[name]
    cross = inputs.get("llamacpp_kl")  # llama.cpp's own KL of a GGUF (llamacpp_*)
    if cross is not None and not cross.skipped:
        candidate.update(cross.metrics)
    change: dict[str, float] = {}
    if "perplexity" in baseline and "perplexity" in candidate:
        change["perplexity_pct"] = 100 * (candidate["perplexity"] / baseline["perplexity"] - 1)
    if baseline["size_bytes"] and candidate["size_bytes"]:
        change["size_ratio"] = candidate["size_bytes"] / baseline["size_bytes"]
    return {"baseline": baseline, "candidate": candidate, "change": change}


def _data_lines(report: dict[str, Any]) -> list[str]:
    """Which text calibration and perplexity read: origin (local, mirror, bundled, hub), records."""
    rows = []
    for use, block, count in (("calibration", report.get("calibration"), "records_available"),
                              ("perplexity", report.get("perplexity_protocol"), "records")):
        source = (block or {}).get("source")
        if isinstance(source, dict):
            where = source.get("bundled") or source.get("path")
            rows.append(f"| {use} | {source.get('origin', source.get('kind'))} | `{where}` | "
                        f"{_fmt(block.get(count))} | {source.get('license', '')} |")
    if not rows:
        return []
    return ["", "## Data", "", "| used for | origin | source | records | license |",
            "| --- | --- | --- | --- | --- |", *rows]


def render_markdown(report: dict[str, Any]) -> str:
    """A human summary of report.json."""
    m, r = report["metrics"], report["recipe"]
    q = r["quantization"]
    lines = [
        f"# quench run `{report['run']}`",
        "",
        f"Model `{r['model']['id']}`, method `{q['method']}`, scheme `{q['scheme']}`.",
        "",
        "## Metrics",
        "",
        "| metric | baseline | candidate | change |",
        "| --- | --- | --- | --- |",
    ]
    names = sorted(set(m["baseline"]) | set(m["candidate"]))
    changes = {"perplexity": "perplexity_pct", "size_bytes": "size_ratio"}
    for name in names:
        change = m["change"].get(changes.get(name, ""), "")
        lines.append(
            f"| {name} | {_fmt(m['baseline'].get(name))} | {_fmt(m['candidate'].get(name))} "
            f"| {_fmt(change)}{' %' if name == 'perplexity' and change != '' else ''} |"
        )
    lines += kl_lines(m["candidate"])
    if "llamacpp_kld_mean" in m["candidate"]:
        lines += ["", "llamacpp_* are llama-perplexity's own measurement of the GGUF against its "
                  "source in F32 (its protocol: the second half of each chunk is scored)."]
    lines += _data_lines(report)
    lines += _quantization_lines(report["quantization"])
    lines += _license_lines(report.get("license") or {})
    lines += lm_eval_markdown(report.get("lm_eval") or {})
    lines += throughput_markdown(report.get("throughput") or {})
    lines += deployment_markdown(report.get("deployment") or {})
    lines += ["", "## Stages", "", "| stage | status | seconds |", "| --- | --- | --- |"]
    for s in report["stages"]:
        lines.append(f"| {s['node']} | {s['status']} | {_fmt(s['seconds'])} |")
    protocol = report.get("perplexity_protocol") or {}
    if protocol:
        lines += ["", "## Perplexity protocol", "", "```json",
                  json.dumps(protocol, indent=2, sort_keys=True), "```"]
    for note in report["notes"]:
        lines += ["", f"Note: {note}"]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(report["versions"].items())]
    return "\n".join(lines) + "\n"


def kl_lines(candidate: dict[str, Any]) -> list[str]:
    """What kl_divergence is: a top-k lower bound, its covered mass, its ratio to the exact KL."""
    if "kl_divergence" not in candidate:
        return []
    text = ("kl_divergence is a lower bound: the baseline's stored top-k tokens plus one bucket "
            "for the rest")
    if "topk_mass" in candidate:
        text += f" (the top-k cover {candidate['topk_mass']:.1%} of its probability mass)"
    if "kl_bound_ratio" in candidate:
        text += (f"; on the first {candidate['kl_exact_tokens']} tokens it is "
                 f"{candidate['kl_bound_ratio']:.3f} of the exact full-vocabulary KL "
                 f"({_fmt(candidate['kl_bound_subset'])} vs {_fmt(candidate['kl_exact_subset'])})")
    elif "kl_exact_subset" in candidate:
        text += (f"; the exact full-vocabulary KL on the first {candidate['kl_exact_tokens']} "
                 f"tokens is {_fmt(candidate['kl_exact_subset'])}")
    return ["", text + "."]


def _quantization_lines(q: dict[str, Any]) -> list[str]:
    """Format details and per-layer relative weight error, the first things a deployer checks."""
    fmt = q.get("format") or {}
    lines = ["", "## Quantization", "", f"Format: `{fmt.get('quant_method')}`"
             + (f" ({fmt['format']})" if fmt.get("format") else "")
             + (f", ignored: {', '.join(fmt['ignore'])}" if fmt.get("ignore") else "")
             + (", FP8 KV cache" if fmt.get("kv_cache_scheme") else "") + "."]
    for name, group in (fmt.get("groups") or {}).items():
        lines.append(f"- {name}: weights {group['weights']}; activations "
                     f"{group['activations'] or 'not quantized'}")
    if fmt.get("tensor_types"):  # a GGUF: what llama-quantize actually wrote
        types = ", ".join(f"{k} {v}" for k, v in fmt["tensor_types"].items())
        lines.append(f"- GGUF tensors by type: {types}; {fmt.get('fallback_tensors', 0)} got "
                     "llama-quantize's fallback type (rows not whole blocks); importance "
                     f"matrix: {'yes' if fmt.get('imatrix') else 'no'}")
    errors = q.get("layer_weight_errors") or {}
    if errors:
        lines += ["", "| layer | relative weight error |", "| --- | --- |"]
        lines += [f"| {name} | {err:.4f} |" for name, err in sorted(errors.items())]
        lines += ["", "||W_q - W|| / ||W|| against the original weights; for SmoothQuant and AWQ "
                  "it includes the scales folded into the weights, not only rounding."]
    return lines


def _license_lines(verdict: dict[str, Any]) -> list[str]:
    """The license verdict with each finding's clause: what a deployer must not miss."""
    if not verdict:
        return []
    lines = ["", "## License", "", f"Verdict: **{verdict['status']}** for "
             f"{', '.join(verdict['licenses']) or 'unknown license'}; commercial use: "
             f"{ {True: 'yes', False: 'no', None: 'unknown'}[verdict['commercial_ok']] }.", ""]
    lines += [f"- {f['level']}: {f['reason']}" + (f" ({f['cite']})" if f["cite"] else "")
              for f in verdict["findings"]]
    if verdict["obligations"]:
        lines += ["", "Obligations:", ""]
        lines += [f"- {o['text']} ({o['cite']})" for o in verdict["obligations"]]
    return lines


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
