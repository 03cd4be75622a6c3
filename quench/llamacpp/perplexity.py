"""llama-perplexity's KL divergence: the base model's logits saved once, then a quantized
GGUF scored against them, read from the summary llama-perplexity prints. An independent
measurement (llama.cpp's own kernels and protocol: it scores the second half of each chunk)
beside quench's evaluation of the same weights."""

from __future__ import annotations

import re
from pathlib import Path

from quench.llamacpp import tools
from quench.llamacpp.quantize import threads

# summary line -> metric name (values are as printed: Δp and same-top-p in percent)
SUMMARY = {
    "Mean PPL(Q)": "ppl",
    "Mean PPL(base)": "ppl_base",
    "Mean PPL(Q)/PPL(base)": "ppl_ratio",
    "Mean    KLD": "kld_mean",
    "Maximum KLD": "kld_max",
    "99.0%   KLD": "kld_p99",
    "Median  KLD": "kld_median",
    "RMS Δp": "rms_dp_pct",
    "Same top p": "same_top_p_pct",
}
NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def save_base_logits(model: Path, text: Path, out: Path, context: int, chunks: int,
                     log: Path) -> Path:
    """The base model's logits over `chunks` chunks of `context` tokens of `text`."""
    tools.run([tools.tool_path("llama-perplexity"), "-m", model, "-f", text,
               "-c", str(context), "--chunks", str(chunks), "-t", str(threads()),
               "--kl-divergence-base", out], log, "llama-perplexity (base logits)")
    return out


ATTEMPTS = 2  # llama-perplexity's asynchronous log has once exited before printing its summary


def kl_divergence(model: Path, base_logits: Path, log: Path) -> dict[str, float]:
    """The quantized model against the saved base logits: SUMMARY's metrics; a run whose
    output lost the summary is repeated, and fails the stage if it loses it again."""
    for _ in range(ATTEMPTS):
        output = tools.run([tools.tool_path("llama-perplexity"), "-m", model,
                            "--kl-divergence-base", base_logits, "--kl-divergence",
                            "-t", str(threads())], log, "llama-perplexity --kl-divergence")
        found = parse_summary(output)
        if "kld_mean" in found:
            return found
    raise tools.ToolFailed(f"llama-perplexity --kl-divergence printed no KLD summary in "
                           f"{ATTEMPTS} runs (log {log})")


def parse_summary(output: str) -> dict[str, float]:
    """The summary's values by SUMMARY's names (the first number of each line)."""
    found: dict[str, float] = {}
    for label, name in SUMMARY.items():
        match = re.search(re.escape(label) + r"\s*:\s*" + NUMBER + r"(?:\s*±\s*" + NUMBER
                          + ")?", output)
        if match:
            found[name] = float(match.group(1))
            if name == "kld_mean" and match.group(2):  # its standard error, for the gate
                found["kld_mean_se"] = float(match.group(2))
    return found
