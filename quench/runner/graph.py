"""The pipeline as data: which stage runs as which node, fed by which earlier nodes.

Data flows forward only: a node's inputs are nodes listed before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    """One step of the pipeline: a registered stage and its inputs by role -> node name."""

    name: str
    stage: str
    inputs: dict[str, str] = field(default_factory=dict)


PIPELINE: tuple[Node, ...] = (
    Node("resolve", "resolve"),
    # Licenses are checked before any calibration: a forbidden recipe stops here.
    Node("license", "license", {"model": "resolve"}),
    Node("calibrate", "calibrate", {"model": "resolve"}),
    # The license verdict travels into formats that carry it (GGUF metadata).
    Node("quantize", "quantize", {"model": "resolve", "calibration": "calibrate",
                                  "license": "license"}),
    # The checkpoint the target engine loads (ModelOpt exports), validated offline; then the
    # folder TensorRT-LLM serves (trtllm-build's engine, or the export's checkpoint) and
    # build_plan.sh, everywhere (skipped, with the plan, where there is no GPU).
    Node("export", "export", {"model": "quantize", "source": "resolve"}),
    Node("build", "build", {"checkpoint": "export"}),
    # The unquantized model is evaluated with the same protocol; its cache entry is shared by
    # every recipe on the same model, and the candidate's KL divergence is measured against it.
    Node("baseline_eval", "evaluate", {"model": "resolve"}),
    Node("evaluate", "evaluate", {"model": "quantize", "reference": "baseline_eval"}),
    # A GGUF is measured a second time by llama.cpp itself, against its source in F32.
    Node("llamacpp_kl", "llamacpp_kl", {"model": "quantize", "source": "resolve"}),
    # lm-eval tasks, the same way: the baseline's entry is shared by recipes on the same model.
    # A served engine that builds (capabilities.builds) loads `build`'s model_dir, others `model`.
    Node("baseline_lm_eval", "lm_eval", {"model": "resolve"}),
    Node("lm_eval", "lm_eval", {"model": "quantize", "build": "build"}),
    # Concurrency sweep on the target engine's server: of what it loads, as for lm_eval.
    Node("throughput", "throughput", {"model": "quantize", "build": "build"}),
    Node(
        "report",
        "report",
        {n: n for n in ("resolve", "license", "calibrate", "quantize", "export", "build",
                        "baseline_eval", "evaluate", "llamacpp_kl", "baseline_lm_eval", "lm_eval",
                        "throughput")},
    ),
    # Cached like the others: an unchanged pipeline is not logged to MLflow twice.
    Node("track", "track", {"report": "report"}),
)


def node_names() -> list[str]:
    return [n.name for n in PIPELINE]
