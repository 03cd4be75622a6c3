"""What a stage's console line ends with, and how the failure tail reads the log."""

from __future__ import annotations

from pathlib import Path

from quench.contract.manifest import Manifest
from quench.progress import human_bytes as size
from quench.runner.console import collapse, log_tail
from quench.runner.headline import headline as headline_of
from quench.stages import get_stage


def headline(stage: str, found: Manifest) -> str:
    return headline_of(get_stage(stage), found)


def manifest(status: str = "ran", metrics: dict | None = None, outputs: dict | None = None):
    return Manifest(Path("."), {"status": status, "metrics": metrics or {},
                                "outputs": outputs or {}})


def test_skip_reason_is_the_headline():
    assert headline("export", manifest("skipped: the recipe has no target engine")) == \
        "the recipe has no target engine"
    long = manifest("skipped: " + "x" * 300)
    assert len(headline("build", long)) == 110 and headline("build", long).endswith("…")


def test_headline_metrics_per_stage():
    assert headline("evaluate", manifest(metrics={"perplexity": 12.3456, "tokens": 9})) == \
        "perplexity 12.35"
    assert headline("evaluate", manifest(metrics={
        "perplexity": 529.51, "kl_divergence": 0.03531, "top1_agreement": 0.7834})) == \
        "perplexity 529.5, KL 0.0353, top-1 78.3%"
    assert headline("quantize", manifest(metrics={
        "size_bytes": 1_433_000, "quantize_wall_seconds": 2.44})) == \
        "size 1.4 MB, quantized in 2.4s"
    assert headline("calibrate", manifest(metrics={
        "calibration_samples": 64, "calibration_tokens": 8930})) == "64 samples, 8,930 tokens"
    lm = {"lm_eval.piqa.acc": 0.55, "lm_eval.piqa.acc_stderr": 0.08, "lm_eval.piqa.seconds": 3,
          "lm_eval.vllm.piqa.acc": 0.5, "lm_eval.wikitext.word_perplexity": 900.0}
    assert headline("lm_eval", manifest(metrics=lm)) == "piqa acc 0.55 (+1 more task)"
    assert headline("lm_eval", manifest(metrics={"lm_eval.wikitext.word_perplexity": 9.5})) == \
        "wikitext word_perplexity 9.5"
    tp = {"engine_startup_s": 20.0, "c1_output_tokens_per_s": 41.27,
          "c4_output_tokens_per_s": 120.0}
    assert headline("throughput", manifest(metrics=tp)) == \
        "41.3 output tok/s at concurrency 1"
    assert headline("report", manifest()) == "" and headline("track", manifest()) == ""


def test_sizes():
    assert [size(n) for n in (950, 1_433_000, 16e9)] == ["950 B", "1.4 MB", "16.0 GB"]


def test_tail_collapses_bars_and_starts_at_the_failed_stage(tmp_path):
    log = tmp_path / "quench.log"
    log.write_text(
        "2026 INFO quench: stage quantize: started\nold library line\n"
        "2026 INFO quench: stage evaluate: started\n"
        "Loading:   0%|  | 0/3\rLoading: 100%|##| 3/3\n\n"
        + "".join(f"line {i}\n" for i in range(20))
        + "x" * 500 + "\n2026 INFO quench: stage evaluate: failed in 1.00s\n")
    tail = log_tail(log, since="quench: stage evaluate: started")
    assert len(tail) == 15 and tail[0] == "line 6" and tail[-1].endswith("…")
    assert len(tail[-1]) == 240
    assert log_tail(log, lines=100, since="quench: stage evaluate: started")[0] == \
        "Loading: 100%|##| 3/3"
    assert collapse("a\rb\r") == "b" and collapse("") == ""
