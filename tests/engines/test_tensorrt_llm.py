"""The tensorrt-llm engine: golden commands against TensorRT-LLM 1.x's documented flags, its
serve command here and in a container, and `no CUDA device` on this host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quench.engines import ServedEngine, get_engine
from quench.engines import tensorrt_llm as trt
from quench.errors import StageError
from quench.gpu import cuda_device_count

# Flags of TensorRT-LLM 1.x's commands, as their references list them:
# https://nvidia.github.io/TensorRT-LLM/commands/trtllm-build.html
BUILD_FLAGS = {"--checkpoint_dir", "--output_dir", "--gemm_plugin", "--max_batch_size",
               "--max_input_len", "--max_seq_len", "--max_num_tokens", "--workers",
               "--use_paged_context_fmha", "--use_fp8_context_fmha"}
# https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve.html (tensorrt_llm/commands/serve.py)
SERVE_FLAGS = {"--host", "--port", "--backend", "--max_batch_size", "--max_num_tokens",
               "--max_seq_len", "--tp_size", "--kv_cache_free_gpu_memory_fraction",
               "--tokenizer", "--extra_llm_api_options"}
# https://nvidia.github.io/TensorRT-LLM/commands/trtllm-bench.html (global + throughput)
BENCH_FLAGS = {"--model", "--model_path", "--dataset", "--backend", "--engine_dir",
               "--max_batch_size", "--max_num_tokens", "--max_seq_len",
               "--kv_cache_free_gpu_mem_fraction", "--tp", "--concurrency", "--report_json",
               "--extra_llm_api_options"}
OPTS = trt.parse_options({"max_batch_size": 8, "max_input_len": 256, "max_seq_len": 512})
CUDA = cuda_device_count() > 0


def flags(cmd: list[str]) -> set[str]:
    return {part for part in cmd if part.startswith("--")}


def test_trtllm_build_for_fp8_with_fp8_kv_cache():
    cmd = trt.build_command("trtllm-build", Path("/ck"), Path("/eng"), "FP8", "FP8", OPTS)
    assert cmd == ["trtllm-build", "--checkpoint_dir", "/ck", "--output_dir", "/eng",
                   "--gemm_plugin", "auto", "--max_batch_size", "8", "--max_input_len", "256",
                   "--max_seq_len", "512", "--use_paged_context_fmha", "enable",
                   "--use_fp8_context_fmha", "enable", "--workers", "1"]
    assert flags(cmd) <= BUILD_FLAGS


def test_trtllm_build_for_int8_smoothquant():
    options = trt.parse_options({"max_num_tokens": 4096, "tp_size": 2})
    cmd = trt.build_command("trtllm-build", Path("/ck"), Path("/eng"), "W8A8_SQ_PER_CHANNEL",
                            None, options)
    assert cmd == ["trtllm-build", "--checkpoint_dir", "/ck", "--output_dir", "/eng",
                   "--gemm_plugin", "auto", "--max_batch_size", "8", "--max_input_len", "1024",
                   "--max_seq_len", "2048", "--max_num_tokens", "4096", "--workers", "2"]
    assert flags(cmd) <= BUILD_FLAGS


def test_trtllm_serve_pytorch_and_tensorrt():
    cmd = trt.serve_command("trtllm-serve", Path("/hf"), "pytorch", OPTS, 8123)
    assert cmd == ["trtllm-serve", "/hf", "--host", "127.0.0.1", "--port", "8123", "--backend",
                   "pytorch", "--max_batch_size", "8", "--tp_size", "1",
                   "--kv_cache_free_gpu_memory_fraction", "0.9", "--max_seq_len", "512"]
    legacy = trt.serve_command("trtllm-serve", Path("/eng"), "tensorrt", OPTS, 8123,
                               extra=Path("/x.yaml"), tokenizer=Path("/src"))
    assert legacy[:7] == ["trtllm-serve", "/eng", "--host", "127.0.0.1", "--port", "8123",
                          "--backend"]
    assert "--max_seq_len" not in legacy  # built into the engine
    assert legacy[-4:] == ["--tokenizer", "/src", "--extra_llm_api_options", "/x.yaml"]
    assert flags(cmd) | flags(legacy) <= SERVE_FLAGS
    with pytest.raises(ValueError, match="target.backend"):
        trt.serve_command("trtllm-serve", Path("/hf"), "onnx", OPTS, 1)


def test_trtllm_bench_pytorch_and_tensorrt():
    cmd = trt.bench_command("trtllm-bench", "org/m", Path("/hf"), Path("d.jsonl"), "pytorch",
                            OPTS, Path("r.json"), concurrency=4)
    assert cmd == ["trtllm-bench", "--model", "org/m", "--model_path", "/hf", "throughput",
                   "--dataset", "d.jsonl", "--backend", "pytorch", "--max_batch_size", "8",
                   "--kv_cache_free_gpu_mem_fraction", "0.9", "--tp", "1", "--report_json",
                   "r.json", "--max_seq_len", "512", "--concurrency", "4"]
    legacy = trt.bench_command("trtllm-bench", "org/m", Path("/src"), Path("d.jsonl"),
                               "tensorrt", OPTS, Path("r.json"), engine_dir=Path("/eng"))
    assert "--max_seq_len" not in legacy  # trtllm-bench refuses it for an engine
    assert legacy[legacy.index("--engine_dir") + 1] == "/eng"
    assert flags(cmd) | flags(legacy) <= BENCH_FLAGS
    with pytest.raises(ValueError, match="engine folder"):
        trt.bench_command("trtllm-bench", "m", Path("/s"), Path("d"), "tensorrt", OPTS,
                          Path("r"))


def test_bench_dataset_follows_trtllm_bench_schema(tmp_path):
    path = trt.write_bench_dataset(tmp_path / "d.jsonl", 2048, 16, 8, 5, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == list(range(5))
    assert all(len(r["input_ids"]) == 16 and r["output_tokens"] == 8 for r in rows)
    assert all(0 <= t < 2048 for r in rows for t in r["input_ids"])
    again = trt.write_bench_dataset(tmp_path / "e.jsonl", 2048, 16, 8, 5, seed=0)
    assert again.read_text() == path.read_text()


def test_container_commands_mount_the_paths():
    engine = get_engine("tensorrt-llm")
    options = trt.parse_options({"container": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"})
    prefix = engine.command_prefix(options, [Path("/a"), Path("/b")], network=True)
    assert prefix[:4] == ["docker", "run", "--rm", "--gpus"]
    assert prefix[prefix.index("-v"):prefix.index("-v") + 2] == ["-v", "/a:/a"]
    assert "--network" in prefix and prefix[-1] == options.container
    assert engine.tool("trtllm-serve", options) == "trtllm-serve"


@pytest.mark.skipif(CUDA, reason="this host has a CUDA device")
def test_no_cuda_device_here():
    assert get_engine("tensorrt-llm").unavailable_reason() == "no CUDA device"


def test_capabilities_serve_what_the_build_makes():
    engine = get_engine("tensorrt-llm")
    assert isinstance(engine, ServedEngine)
    assert engine.capabilities.served and engine.capabilities.benchmark
    assert engine.capabilities.builds


def test_serve_argv_in_a_container(tmp_path):
    engine = get_engine("tensorrt-llm")
    options = trt.parse_options({"container": "img:1", "extra_llm_api_options": {"a": 1}})
    cmd = engine.serve_argv(Path("/eng"), tmp_path, options, 8123, "tensorrt", "/src")
    prefix = engine.command_prefix(options, [Path("/eng"), tmp_path], network=True)
    assert cmd[:len(prefix)] == prefix and cmd[len(prefix)] == "trtllm-serve"
    assert cmd[-4:] == ["--tokenizer", "/src", "--extra_llm_api_options",
                        str(tmp_path / "extra_llm_api_options.yaml")]
    assert (tmp_path / "extra_llm_api_options.yaml").read_text() == "a: 1\n"


@pytest.mark.skipif(CUDA, reason="this host has a CUDA device")
def test_serve_without_cuda_is_a_stage_error(tmp_path):
    with pytest.raises(StageError, match="^tensorrt-llm: no CUDA device$"), \
            get_engine("tensorrt-llm").serve(tmp_path, tmp_path / "w", {"backend": "pytorch"}):
        pass
