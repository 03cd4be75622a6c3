"""Method gguf: the type rules `quench validate` applies before work, the converter's tokenizer
repair, and real runs of llama.cpp's converter, llama-quantize and llama-perplexity on both
models (TinyStories through `quench run`; SmolLM2's byte-level vocabulary converted)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from quench import home
from quench.compat import matrix
from quench.llamacpp import tools
from quench.llamacpp.convert import byte_level_repaired
from quench.llamacpp.types import TYPES, misfits
from quench.methods import get_method
from tests.conftest import REPO, read_json, run_quench, small_run_args

SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
           "head_dim": 64}
TINYSTORIES = {"hidden_size": 128, "intermediate_size": 384, "num_attention_heads": 8}


@pytest.fixture(scope="module")
def built() -> Path:
    """The llama.cpp build `make setup` makes; CI must have it, elsewhere a missing one skips."""
    reason = tools.unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (`make setup` builds it)")
        pytest.skip(reason)
    return home.env_dir(tools.ENGINE)


def test_every_type_is_in_the_compatibility_matrix() -> None:
    assert set(matrix()["methods"]["gguf"]) == set(TYPES) == set(get_method("gguf").schemes)


def test_rows_that_are_not_whole_blocks_are_found_from_the_geometry() -> None:
    assert misfits(TYPES["Q8_0"], SMOLLM2) == {}
    assert set(misfits(TYPES["Q4_K_M"], SMOLLM2).values()) == {576}  # 1536 = 6 x 256 fits
    assert set(misfits(TYPES["IQ4_XS"], TINYSTORIES).values()) == {128, 384}


def test_check_model_names_the_fallback_and_the_missing_imatrix() -> None:
    method = get_method("gguf")
    k_quant = method.check_model("Q4_K_M", method.parse_options({}), SMOLLM2)
    assert len(k_quant) == 1 and "q5_0" in k_quant[0] and "allow_fallback" in k_quant[0]
    assert method.check_model("Q4_K_M", method.parse_options({"allow_fallback": True}),
                              SMOLLM2) == []
    iq2 = method.check_model("IQ2_XS", method.parse_options({"allow_fallback": True}),
                             SMOLLM2)
    assert iq2 and "imatrix: true" in iq2[0]


def test_validate_rejects_an_impossible_type_before_work(mirror: Path) -> None:
    recipe = str(REPO / "recipes" / "tinystories-gguf-q8-0.yaml")
    assert run_quench("validate", recipe).returncode == 0
    bad = run_quench("validate", recipe, "quantization.scheme=Q4_K_M")
    assert bad.returncode == 2
    assert "blocks of 256" in bad.stderr and "ffn_down (intermediate_size) = 384" in bad.stderr
    typo = run_quench("validate", recipe, "quantization.options.tensor_types.attn_v=q9_0")
    assert typo.returncode == 2 and "'q9_0' is not a GGML type" in typo.stderr
    served = run_quench("validate", recipe, "target.engine=vllm")
    assert served.returncode == 2 and "target.engine llama.cpp" in served.stderr
    other = run_quench("validate", str(REPO / "recipes" / "tinystories-rtn-w4a16.yaml"),
                       "target.engine=llama.cpp")
    assert other.returncode == 2 and "loads GGUF files only" in other.stderr


def test_a_byte_level_vocabulary_drops_byte_fallback_and_others_are_kept() -> None:
    # what transformers writes for a GGUF's BPE vocabulary (SmolLM2's): byte-level + fallback
    written = {"model": {"type": "BPE", "byte_fallback": True, "vocab": {}},
               "pre_tokenizer": {"type": "ByteLevel"},
               "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]}}
    repaired = byte_level_repaired(written)
    assert repaired["model"]["byte_fallback"] is False
    assert repaired["decoder"]["type"] == "ByteLevel"
    assert written["model"]["byte_fallback"] is True  # the input is not changed
    # a SentencePiece-style BPE (TinyStories: no pre-tokenizer) stays as it is
    spm = {"model": {"type": "BPE", "byte_fallback": True}, "pre_tokenizer": None,
           "decoder": {"type": "Sequence"}}
    assert byte_level_repaired(spm) == spm


@pytest.mark.e2e
def test_a_tinystories_gguf_run(built: Path, tmp_path: Path, mirror: Path) -> None:
    """convert -> llama-quantize -> dequantized copy evaluated by quench, llama.cpp's own KL
    against the F32 source, llama-server's throughput; the GGUF carries the license keys."""
    from gguf import GGUFReader

    done = run_quench("run", str(REPO / "recipes" / "tinystories-gguf-q8-0.yaml"),
                      *small_run_args(tmp_path, max_windows=8), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = read_json(tmp_path / "tinystories-gguf-q8-0" / "report.json")
    fmt = report["quantization"]["format"]
    assert fmt["quant_method"] == "gguf" and fmt["format"] == "Q8_0"
    assert fmt["tensor_types"]["Q8_0"] >= 14 and fmt["fallback_tensors"] == 0
    candidate = report["metrics"]["candidate"]
    gguf = next((tmp_path / "tinystories-gguf-q8-0" / "model").glob("*.gguf"))
    assert candidate["size_bytes"] == gguf.stat().st_size  # the GGUF, not the dense copy
    assert 0 < candidate["kl_divergence"] < 0.01  # 8 bits: close to the source
    assert 0 < candidate["llamacpp_kld_mean"] < 0.01 and candidate["llamacpp_same_top_p_pct"] > 90
    assert abs(candidate["llamacpp_ppl_ratio"] - 1) < 0.05 and candidate["llamacpp_kld_mean_se"] > 0
    # served by llama-server, measured by the shared client: every request of both levels
    rows = {r["concurrency"]: r for r in report["throughput"]["rows"]}
    assert set(rows) == {1, 4} and all(r["failed"] == 0 and r["output_tokens_per_s"] > 0
                                       for r in rows.values())
    assert report["throughput"]["engine"] == "llama.cpp"
    fields = {k: f.contents() for k, f in GGUFReader(gguf).fields.items()
              if k.startswith("general.")}
    assert fields["general.license"] == "apache-2.0"
    assert fields["general.base_model.0.repo_url"].endswith("raincandy-u/TinyStories-656K")
    assert fields["general.name"] == "tinystories-gguf-q8-0"


@pytest.mark.e2e
def test_smollm2s_byte_level_vocabulary_converts_and_llama_cpp_reads_it(
        built: Path, smollm2_gguf: Path, tmp_path: Path) -> None:
    """The dense checkpoint transformers writes from SmolLM2's GGUF converts back to a GGUF
    with the GPT-2 vocabulary, which llama-perplexity tokenizes and scores."""
    from gguf import GGUFReader

    from quench.gguf import dequantize_to_checkpoint
    from quench.llamacpp.convert import convert

    dense = tmp_path / "dense"
    dequantize_to_checkpoint(smollm2_gguf, dense, "float32")
    out = convert(dense, tmp_path / "f16.gguf", "f16", tmp_path / "work", tmp_path / "log")
    fields = GGUFReader(out).fields
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    text = tmp_path / "text.txt"
    text.write_text(_wikitext(2000))
    done = subprocess.run([str(tools.tool_path("llama-perplexity", built)), "-m", str(out),
                           "-f", str(text), "-c", "128", "--chunks", "4"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ppl = float(done.stderr.split("Final estimate: PPL = ")[1].split()[0])
    assert 2 < ppl < 200, ppl  # a working vocabulary; a wrong one scores in the thousands


def _wikitext(lines: int) -> str:
    from quench.text_sources import load_texts, resolve_text_source

    source = resolve_text_source("wikitext2", None, "test", "text", "test")
    return "\n".join(load_texts(source)[:lines])


SUMMARY = """Mean PPL(Q)                   :  45.123456 ±   1.234567
Mean PPL(base)                :  44.000000 ±   1.200000
Mean PPL(Q)/PPL(base)         :   1.025510 ±   0.001234
Mean    KLD:   0.019876 ±   0.000456
Maximum KLD:   1.234567
99.0%   KLD:   0.200000
Median  KLD:   0.010000
RMS Δp    :  3.252 ± 0.024 %
Same top p: 91.901 ± 0.072 %
"""


def test_llama_perplexitys_summary_is_read_with_the_kld_standard_error() -> None:
    from quench.llamacpp.perplexity import parse_summary

    found = parse_summary(SUMMARY)
    assert found == {"ppl": 45.123456, "ppl_base": 44.0, "ppl_ratio": 1.02551,
                     "kld_mean": 0.019876, "kld_mean_se": 0.000456, "kld_max": 1.234567,
                     "kld_p99": 0.2, "kld_median": 0.01, "rms_dp_pct": 3.252,
                     "same_top_p_pct": 91.901}


def test_the_gate_reads_llama_cpps_kld_with_its_interval() -> None:
    from quench.gate.checks import llamacpp_kl_check
    from quench.gate.data import RunData
    from quench.gate.errors import GateError
    from quench.recipe.gate import GateSpec

    def run(mean: float, se: float) -> RunData:
        metrics = {"llamacpp_kld_mean": mean, "llamacpp_kld_mean_se": se, "llamacpp_chunks": 32}
        return RunData("r", "run", {"metrics": {"candidate": metrics}})

    spec = GateSpec(max_llamacpp_kld=0.05)
    assert llamacpp_kl_check(run(0.02, 0.001), spec).verdict == "PASS"
    assert llamacpp_kl_check(run(0.08, 0.001), spec).verdict == "FAIL"
    straddling = llamacpp_kl_check(run(0.049, 0.002), spec)  # 0.049 +- 0.0039
    assert straddling.verdict == "INCONCLUSIVE" and straddling.needed > 32
    with pytest.raises(GateError, match="no llama.cpp KL"):
        llamacpp_kl_check(RunData("r", "run", {"metrics": {"candidate": {}}}), spec)


def test_llama_server_gets_a_connection_per_request_and_slots_that_hold_a_request() -> None:
    from quench.engines import get_engine
    from quench.serving.bench_client import bench_command

    engine = get_engine("llama.cpp")
    cmd = bench_command(["client"], "http://127.0.0.1:1", "quench", "tok", 1,
                        {"input_len": 128, "output_len": 64, "num_prompts": 4, "seed": 0,
                         "warmups": 1}, "out", "r.json", engine.client_headers)
    assert cmd[-2:] == ["--header", "Connection=close"]
    assert engine.load_warnings({"parallel": 32}, 256) == []  # 1024 per slot by default
    (warning,) = engine.load_warnings({"parallel": 32, "ctx_size": 4096}, 256)
    assert "128 tokens, fewer than a request's 256" in warning
    assert not get_engine("vllm").client_headers
