"""ModelOpt's auto_quantize next to quench's sensitivity strategy on TinyStories: which layers
each keeps at higher precision for the same budget. Why: the strategy measures each layer
group's KL with real pipeline runs; auto_quantize scores every layer in one pass with fake
quantization. If they agree on what is fragile, the cheap estimate can seed the sweep.

Side 1 (quench): the sensitivity strategy driven by hand, every trial a real `quench run` of
the trial recipe the sweep would write: the recipe's gate.baseline (the sweep's baseline), the
base recipe as it is, one probe per layer group, then the proposals (measured, so estimate and
truth sit side by side).
Side 2 (ModelOpt): mtq.auto_quantize on the same model and calibration records (the recipe's
calibration.source, num_samples, seed, max_seq_length; drawn like the calibrate stage), with
lm_head disabled like the base recipe's ignore, at the effective-bits budget each proposal
corresponds to: INT4_AWQ (else not quantized), and INT4_AWQ/INT8/FP8.
Writes artifacts/bench/auto_quantize.json.

    .venv/bin/python bench/auto_quantize_compare.py [--recipe R] [--max-windows N]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quench.recipe.load import read_recipe_data  # noqa: E402
from quench.sweep.jobs import FINISHED, TrialOutcome  # noqa: E402
from quench.sweep.space import Point, Space, point_id  # noqa: E402
from quench.sweep.spec import BudgetSpec  # noqa: E402
from quench.sweep.strategies import SweepContext  # noqa: E402
from quench.sweep.strategies.sensitivity import SensitivityOptions, SensitivityStrategy  # noqa: E402,E501
from quench.sweep.trial import TrialRecord, trial_recipe, write_trial  # noqa: E402
from quench.text_sources import load_texts, resolve_text_source  # noqa: E402

OUT = REPO / "artifacts" / "bench"
WORK = OUT / "auto-quantize-work"
FORMAT_SETS = {"int4_or_none": ["INT4_AWQ_CFG"],
               "int4_int8_fp8": ["INT4_AWQ_CFG", "INT8_DEFAULT_CFG", "FP8_DEFAULT_CFG"]}


def run_trial(base: dict[str, Any], point: Point, name: str) -> TrialRecord:
    """One real `quench run` of the trial recipe; its report and run record read back."""
    data = trial_recipe(base, point, name) if point else {**base, "name": name}
    path = write_trial(data, WORK / "trials", f"auto_quantize_compare: {point}")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "quench", "run", str(path)], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{path} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run_dir = Path(base["output"]["dir"]) / data["name"]
    report = json.loads((run_dir / "report.json").read_text())
    outcome = TrialOutcome(point_id(point), FINISHED, 0, round(time.monotonic() - start, 1),
                           report=report,
                           run_info=json.loads((run_dir / "run.json").read_text()))
    metrics = {**report["metrics"]["candidate"], **report["metrics"]["change"]}
    return TrialRecord(point_id(point), point, data["name"], str(path), outcome=outcome,
                       metrics={k: float(v) for k, v in metrics.items()
                                if isinstance(v, int | float)})


def small(data: dict[str, Any], max_windows: int) -> dict[str, Any]:
    """A recipe mapping with its runs in WORK, few perplexity windows and no tracking."""
    data["output"] = {**(data.get("output") or {}), "dir": str(WORK)}
    data["evaluation"]["perplexity"]["max_windows"] = max_windows
    data["tracking"] = {**(data.get("tracking") or {}), "backend": "none"}
    return data


def sensitivity_side(base: dict[str, Any], baseline_data: dict[str, Any],
                     proposals: int) -> dict[str, Any]:
    baseline = run_trial(baseline_data, {}, "aq-baseline")
    context = SweepContext(base, baseline)
    options = SensitivityOptions(proposals=proposals)
    strategy = SensitivityStrategy(options, Space({}, []), BudgetSpec(max_trials=100), 0,
                                   context)
    strategy.check()
    history: list[TrialRecord] = []
    while points := strategy.ask(history, 8):
        for p in points:
            history.append(run_trial(base, p, f"aq-{point_id(p)}"))
            strategy.tell(history[-1])
    groups = strategy.groups or []
    by_id = {point_id(r.point): r for r in history}
    probes = [by_id[point_id(strategy.probe_point(g))] for g in range(len(groups))]
    measured_proposals = [r for r in history if point_id(r.point) in strategy.proposal_ids]
    return {
        "baseline": {"recipe": baseline_data["name"],
                     "kl_divergence": baseline.metrics.get("kl_divergence"),
                     "size_ratio": baseline.metrics.get("size_ratio"),
                     "seconds": baseline.outcome.seconds if baseline.outcome else None},
        "groups": [{"layers": layers, "kl_divergence": r.metrics.get("kl_divergence"),
                    "size_bytes": r.metrics.get("size_bytes"),
                    "size_ratio": r.metrics.get("size_ratio")}
                   for layers, r in zip(groups, probes, strict=True)],
        "notes": list(context.notes),
        "proposals": [{"ignore": r.point["quantization.options.ignore"],
                       "kl_divergence": r.metrics.get("kl_divergence"),
                       "measured_size_ratio": r.metrics.get("size_ratio"),
                       "candidate": strategy.candidate(r)} for r in measured_proposals],
    }


def calibration_batches(base: dict[str, Any], tokenizer: Any) -> list[torch.Tensor]:
    """The recipe's calibration records, drawn as the calibrate stage draws them."""
    c = base["calibration"]
    source = resolve_text_source(c["source"], c.get("config_name"), c.get("split", "train"),
                                 c.get("text_field", "text"), "calibration.source")
    texts = load_texts(source, "calibration.source")
    chosen = random.Random(c.get("seed", 0)).sample(range(len(texts)), c["num_samples"])
    return [tokenizer(texts[i], return_tensors="pt", truncation=True,
                      max_length=c["max_seq_length"]).input_ids for i in chosen]


def auto_quantize_side(model_dir: Path, batches: list[torch.Tensor], effective_bits: float,
                       formats: list[str]) -> dict[str, Any]:
    import modelopt.torch.quantization as mtq
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    start = time.monotonic()
    _, state = mtq.auto_quantize(
        model, constraints={"effective_bits": effective_bits}, quantization_formats=formats,
        data_loader=batches, forward_step=lambda m, b: m(b).logits, method="kl_div",
        disabled_layers="*lm_head*", num_calib_steps=len(batches),
        num_score_steps=len(batches))
    seconds = round(time.monotonic() - start, 1)
    chosen: dict[str, str] = {}
    for key, fmt in state["best"]["recipe"].items():
        stats = state["candidate_stats"].get(key) or {}
        for module in stats.get("module_names") or [key.removesuffix(".quant_recipe")]:
            chosen[module] = str(fmt).split("(")[0]
    scores: dict[str, float] = {}  # per decoder layer: the INT4 candidate's summed score
    for key, stats in state["candidate_stats"].items():
        names = [str(f).split("(")[0] for f in stats["formats"]]
        if "INT4_AWQ_CFG" in names and key.startswith("model.layers."):
            layer = key.split(".")[2]
            scores[layer] = scores.get(layer, 0.0) + float(stats["scores"][names.index(
                "INT4_AWQ_CFG")])
    return {"effective_bits": effective_bits, "formats": formats, "seconds": seconds,
            "satisfied": bool(state["best"]["is_satisfied"]),
            "achieved_effective_bits": state["best"]["constraints"].get("effective_bits"),
            "per_module": chosen,
            "layers_not_int4": sorted({int(m.split(".")[2]) for m, f in chosen.items()
                                       if m.startswith("model.layers.") and f != "INT4_AWQ_CFG"}),
            "int4_score_per_layer": scores}


def linear_bits(model_dir: Path, kept: list[int]) -> float:
    """The effective bits of the decoder Linear weights with `kept` layers at 16 bits and the
    rest at 4 (auto_quantize's accounting: NONE counts 16 bits, INT4_AWQ 4)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    total = bits = 0.0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("model.layers."):
            n = module.weight.numel()
            total += n
            bits += n * (16 if int(name.split(".")[2]) in kept else 4)
    return bits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="recipes/tinystories-rtn-w4a16.yaml")
    parser.add_argument("--max-windows", type=int, default=8)
    parser.add_argument("--proposals", type=int, default=3)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    base = small(read_recipe_data(REPO / args.recipe), args.max_windows)
    baseline = small(read_recipe_data(REPO / base["gate"]["baseline"]), args.max_windows)
    sens = sensitivity_side(base, baseline, args.proposals)
    baseline_run = json.loads((WORK / "aq-baseline" / "run.json").read_text())
    resolve = json.loads((Path(baseline_run["nodes"]["resolve"]["dir"]) /
                          "manifest.json").read_text())
    model_dir = Path(resolve["outputs"]["model_dir"])
    batches = calibration_batches(base, AutoTokenizer.from_pretrained(model_dir))
    ranked = sorted(sens["groups"], key=lambda g: -(g["kl_divergence"] or float("inf")))
    comparisons = []
    for k in range(1, len(ranked)):
        kept = [i for g in ranked[:k] for i in g["layers"]]
        budget = round(linear_bits(model_dir, kept), 3)
        for label, formats in FORMAT_SETS.items():
            aq = auto_quantize_side(model_dir, batches, budget, formats)
            comparisons.append({"k": k, "sensitivity_keeps_layers": sorted(kept),
                                "format_set": label, **aq})
    result = {"recipe": args.recipe, "max_windows": args.max_windows,
              "calibration_records": len(batches), "torch": torch.__version__,
              "modelopt": __import__("modelopt").__version__,
              "device": "cpu", "sensitivity": sens, "auto_quantize": comparisons}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "auto_quantize.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    for note in sens["notes"]:
        print(note)
    for c in comparisons:
        print(f"k={c['k']} budget {c['effective_bits']} bits ({c['format_set']}): sensitivity "
              f"keeps layers {c['sensitivity_keeps_layers']}; auto_quantize leaves layers "
              f"{c['layers_not_int4']} not INT4 ({c['seconds']} s), INT4 score per layer "
              f"{ {k: round(v, 4) for k, v in c['int4_score_per_layer'].items()} }")
    print(f"wrote {OUT / 'auto_quantize.json'}")


if __name__ == "__main__":
    main()
