"""Scaling benchmark: peak RAM and time of `quench run` as the model grows.

Random-weight Llama-shaped models (hidden 2048, bf16) of about 0.4, 1.1 and 2.2 GB are built
on first use in artifacts/bench/scaling/models/ (git-ignored, reused while their config
matches), in 200 MB safetensors shards with an index file (even the smallest is sharded). Each
size runs RTN, GPTQ, AWQ (W4A16) and SmoothQuant (W8A8), and RTN and GPTQ with disk offload
under one fixed host budget, as ordinary `quench run`s (every stage re-run). Measured: the
whole run's peak RSS (the largest of the child's ru_maxrss from os.wait4, its process tree's
RSS sampled every 50 ms by a thread of this process, and the stages' own peaks), each stage's
peak RSS and wall time from its manifest, and `quench plan`'s prediction of each; plus a bare
transformers loop over the same perplexity windows, on the source model and on each quantized
checkpoint, in its own process. Writes artifacts/bench/scaling.json and scaling.md, with the
fits and the targets.

Knobs: BENCH_SIZES ("0.4 1.1 2.2"), BENCH_METHODS (all of METHODS), BENCH_WINDOWS
(perplexity windows of 128 tokens, 4), BENCH_OFFLOAD_BUDGET (compute.max_cpu_memory of the
-offload runs, 256MiB), BENCH_OUT (artifacts/bench), BENCH_KEEP (1: keep the runs of the
methods not re-run from the last scaling.json), BENCH_LOCK (a file each heavy child runs
under `flock`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT") or REPO / "artifacts" / "bench")
WORK = OUT / "scaling"
MIRROR = Path(os.environ.get("QUENCH_MIRROR") or REPO.parent / "shared")
TOKENIZER = MIRROR / "models" / "tinystories-656k"  # vocab 2048: its ids fit a 32000 vocab
CALIBRATION = MIRROR / "data" / "wikitext2_valid_calibration" / "valid.txt"
EVAL_TEXT = MIRROR / "data" / "wikitext2_raw_test" / "wiki.test.raw"
SIZES = {"0.4": 3, "1.1": 11, "2.2": 23}  # label (GB of bf16) -> decoder layers
METHODS = {"rtn": ("rtn", "W4A16", "RTN W4A16"), "gptq": ("gptq", "W4A16", "GPTQ W4A16"),
           "awq": ("awq", "W4A16_ASYM", "AWQ W4A16 (asymmetric), n_grid 4"),
           "smoothquant": ("smoothquant", "W8A8", "SmoothQuant + GPTQ W8A8"),
           "rtn-offload": ("rtn", "W4A16", "RTN W4A16, disk offload"),
           "gptq-offload": ("gptq", "W4A16", "GPTQ W4A16, disk offload")}
# AWQ's grid search runs its points one after another: memory does not grow with n_grid, time
# does (n_grid 20, its default, took 685 s for the 3-layer model on 2 CPUs).
OPTIONS = {"awq": {"n_grid": 4}}
OFFLOAD_BUDGET = os.environ.get("BENCH_OFFLOAD_BUDGET", "256MiB")  # compute.max_cpu_memory
ARCH = {"hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 16,
        "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": True,
        "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2}
BUILD_VERSION = 1  # bump when the build changes: cached models are rebuilt
WINDOW, BATCH = 128, 8
WINDOWS = int(os.environ.get("BENCH_WINDOWS", 4))
CALIB = {"num_samples": 16, "max_seq_length": 128, "seed": 0}
CARD = """---
license: apache-2.0
---
Random weights (LlamaForCausalLM, {layers} layers), built by bench/scaling.py for the scaling
benchmark; never trained, never published. Tokenizer: TinyStories-656K's (Apache-2.0).
"""


def chosen(env: str, known: dict[str, Any]) -> list[str]:
    """The labels an env knob selects (space or comma separated; unset: all)."""
    raw = os.environ.get(env, "").replace(",", " ").split()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        sys.exit(f"{env}: unknown {unknown}; known: {' '.join(known)}")
    return raw or list(known)


def child_env() -> dict[str, str]:
    """Offline, on the mirror: everything the bench reads is local."""
    env = dict(os.environ, QUENCH_MIRROR=str(MIRROR))
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.setdefault(name, "1")
    return env


def measured(cmd: list[str], log: Path) -> dict[str, Any]:
    """Runs a child (under BENCH_LOCK's flock if set); its exit code, wall time, peak RSS."""
    lock = os.environ.get("BENCH_LOCK")
    cmd = [*(["flock", lock] if lock else []), *cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env())
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        finally:
            sampler.halt.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": round(time.perf_counter() - start, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2),  # > 2 here: something else competed
            "ru_maxrss_bytes": usage.ru_maxrss * 1024, "sampled_peak_rss_bytes": sampler.peak,
            "peak_rss_bytes": max(usage.ru_maxrss * 1024, sampler.peak), "log": str(log)}


class RssSampler(threading.Thread):
    """Polls the RSS of a child's process tree (every 50 ms). quench's runner resets VmHWM at each
    stage, so the child's ru_maxrss only covers the last stage; this sees the whole run."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0, threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        tree, polls = [root], 0
        while not self.halt.wait(0.05):
            if polls % 20 == 0:  # the tree itself rarely changes: rescan it once a second
                tree = [root, *_children(root)]
            polls += 1
            self.peak = max(self.peak, sum(_rss(p) for p in tree))


def _children(proc: Any) -> list[Any]:
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _rss(proc: Any) -> int:
    import psutil

    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def checked(cmd: list[str], log: Path) -> dict[str, Any]:
    """measured(), raising with the log's last lines when the child failed."""
    got = measured(cmd, log)
    if got["rc"] != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{' '.join(cmd)} exited {got['rc']} (log {log}):\n{tail}")
    return got


# -- the models ---------------------------------------------------------------------------------

def spec(layers: int) -> dict[str, Any]:
    """What a built model must match to be reused."""
    return {"arch": {**ARCH, "num_hidden_layers": layers}, "dtype": "bfloat16", "seed": 0,
            "max_shard_size": "200MB", "version": BUILD_VERSION}


def model_dir(size: str) -> Path:
    return WORK / "models" / f"llama-h2048-l{SIZES[size]}"


def ensure_model(size: str) -> dict[str, Any]:
    """The size's model folder, built in a child process unless a matching one is there."""
    folder, want = model_dir(size), spec(SIZES[size])
    marker = folder / "bench_build.json"
    if marker.is_file() and json.loads(marker.read_text())["spec"] == want:
        return json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    got = checked([sys.executable, __file__, "build", str(folder), str(SIZES[size])],
                  WORK / "logs" / f"build-{size}.log")
    info = json.loads(marker.read_text())
    info["build"] = {k: got[k] for k in ("wall_s", "peak_rss_bytes")}
    marker.write_text(json.dumps(info, indent=2))
    return info


def build(folder: Path, layers: int) -> None:
    """Child: one bf16 copy initialised in place, saved in shards, plus a tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    want = spec(layers)
    torch.manual_seed(want["seed"])
    config = LlamaConfig(**want["arch"], dtype="bfloat16")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, max_shard_size=want["max_shard_size"])
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(TOKENIZER / name, tmp / name)
    (tmp / "README.md").write_text(CARD.format(layers=layers))
    params = model.num_parameters()
    (tmp / "bench_build.json").write_text(json.dumps(
        {"spec": want, "params": params, "bf16_bytes": 2 * params}, indent=2))
    tmp.rename(folder)


# -- the bare loop ------------------------------------------------------------------------------

def bare(folder: Path, out: Path) -> None:
    """Child: the evaluate stage's windows through a plain transformers forward loop."""
    import hashlib

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quench.text_sources import TextSource, load_texts

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "\n".join(load_texts(TextSource("file", path=EVAL_TEXT, field="text")))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    starts = range(0, len(ids) - WINDOW + 1, WINDOW)[:WINDOWS]
    windows = np.asarray([[tokenizer.bos_token_id, *ids[s:s + WINDOW]] for s in starts],
                         dtype=np.int64)
    loaded = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, **dequantized(folder)).eval()
    ready = time.perf_counter()
    with torch.no_grad():  # one-time kernel set-up, which quench pays in an earlier stage
        model(input_ids=torch.from_numpy(windows[:1, :8]))
    warm, tokens = time.perf_counter(), 0
    with torch.no_grad():
        for begin in range(0, len(windows), BATCH):
            batch = torch.from_numpy(windows[begin:begin + BATCH])
            _ = model(input_ids=batch).logits  # what a perplexity loop needs
            tokens += batch[:, 1:].numel()
    done = time.perf_counter()
    out.write_text(json.dumps({
        "tokens": tokens, "tokenize_s": loaded - start, "load_s": ready - loaded,
        "warmup_s": warm - ready, "forward_s": done - warm, "forward_tps": tokens / (done - warm),
        "end_to_end_tps": tokens / (done - start - (warm - ready)),
        "windows_sha256": hashlib.sha256(windows.tobytes()).hexdigest()}, indent=2))


def dequantized(folder: Path) -> dict[str, Any]:
    """A compressed-tensors checkpoint is loaded dense, as the evaluate stage loads it."""
    config = json.loads((folder / "config.json").read_text())
    if (config.get("quantization_config") or {}).get("quant_method") != "compressed-tensors":
        return {}
    from transformers import CompressedTensorsConfig

    return {"quantization_config": CompressedTensorsConfig(dequantize=True)}


def run_bare(label: str, folder: Path) -> dict[str, Any]:
    """The bare loop in its own process over `folder`; its timings and peak RSS."""
    out = WORK / "bare" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    got = checked([sys.executable, __file__, "bare", str(folder), str(out)],
                  WORK / "logs" / f"bare-{label}.log")
    return {**json.loads(out.read_text()), "peak_rss_bytes": got["peak_rss_bytes"]}


# -- the quench runs ----------------------------------------------------------------------------

def recipe(size: str, method: str) -> tuple[str, Path, Path]:
    """A recipe file for one size and method: (name, recipe path, its private output dir)."""
    name = f"scaling-{size}gb-{method}-{METHODS[method][1].lower()}"
    out = WORK / "runs" / name
    body = {
        "name": name,
        "description": f"Scaling bench: random Llama, {SIZES[size]} layers, {METHODS[method][2]}.",
        "model": {"id": str(model_dir(size)), "dtype": "auto"},
        "calibration": {"source": str(CALIBRATION), **CALIB},
        "quantization": {"method": METHODS[method][0], "scheme": METHODS[method][1],
                         "options": OPTIONS.get(method, {})},
        "evaluation": {"perplexity": {"dataset": str(EVAL_TEXT), "window": WINDOW,
                                      "stride": WINDOW, "max_windows": WINDOWS,
                                      "batch_size": BATCH},
                       "lm_eval": None},
        "tracking": {"backend": "none"},
        "license": {"declared": {str(model_dir(size)): "apache-2.0"}},
        "output": {"dir": str(out)},
    }
    if method.endswith("-offload"):  # the same budget at every size: the peak must not grow
        body["compute"] = {"offload_folder": str(WORK / "offload"),
                           "max_cpu_memory": OFFLOAD_BUDGET}
        body["output"]["max_shard_size"] = "200MB"
    path = WORK / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return name, path, out


def run_quench(size: str, method: str) -> dict[str, Any]:
    """One fresh `quench run` (its output dir wiped, every stage forced): whole and per stage."""
    name, path, out = recipe(size, method)
    shutil.rmtree(out, ignore_errors=True)
    got = checked([sys.executable, "-m", "quench", "run", str(path), "--force", "all"],
                  WORK / "logs" / f"{name}.log")
    nodes = json.loads((out / name / "run.json").read_text())["nodes"]
    stages = {node: stage_row(info) for node, info in nodes.items()}
    stage_peak = max((s.get("stage_peak_rss_mb", 0) for s in stages.values()), default=0)
    peaks = {"ru_maxrss": got["ru_maxrss_bytes"], "sampled": got["sampled_peak_rss_bytes"],
             "stage_max": int(stage_peak * 2**20)}
    return {"name": name, "recipe": str(path), "wall_s": got["wall_s"], "cpu_s": got["cpu_s"],
            "loadavg_1m": got["loadavg_1m"], "peak_rss_bytes": max(peaks.values()),
            "peak_rss_sources": peaks, "stages": stages,
            "bare": run_bare(name, out / name / "model")}


PHASES = "phase_peak_rss_mb_"  # quench.compute.PHASE_PEAK_PREFIX: a stage's phases' peaks


def stage_row(info: dict[str, Any]) -> dict[str, Any]:
    """One node of run.json with what its manifest says: status, times, peak RSS, metrics."""
    manifest = json.loads((Path(info["dir"]) / "manifest.json").read_text())
    metrics = manifest.get("metrics", {})
    keep = ("stage_peak_rss_mb", "quantize_wall_seconds", "tokens", "tokens_per_second",
            "perplexity")
    return {"status": manifest["status"], "seconds": info["seconds"],
            "elapsed_s": manifest.get("elapsed_s"),
            "windows_sha256": manifest.get("outputs", {}).get("protocol", {}).get(
                "windows_sha256"),
            **{k: metrics[k] for k in keep if k in metrics},
            "phases_mb": {k.removeprefix(PHASES): v for k, v in metrics.items()
                          if k.startswith(PHASES)}}


# -- the whole bench ----------------------------------------------------------------------------

def main() -> None:
    sizes, methods = chosen("BENCH_SIZES", SIZES), chosen("BENCH_METHODS", METHODS)
    for path in (TOKENIZER, CALIBRATION, EVAL_TEXT):
        if not path.exists():
            sys.exit(f"{path} is missing: set QUENCH_MIRROR to the offline mirror")
    data: dict[str, Any] = {"settings": settings(), "sizes": earlier_runs(sizes, methods),
                            "failed": {}}
    for size in sizes:
        entry = attempt(f"{size} GB build", data, lambda: {"model": ensure_model(size)})  # noqa: B023
        if entry is None:
            continue
        kept = data["sizes"].get(size, {}).get("runs", {})
        data["sizes"][size] = {**entry, "runs": kept}
        data["sizes"][size]["bare"] = attempt(f"{size} GB bare loop", data,
                                              lambda: run_bare(size, model_dir(size)))  # noqa: B023
        for method in methods:
            got = attempt(f"{size} GB {method}", data, lambda: run_quench(size, method))  # noqa: B023
            if got is not None:
                data["sizes"][size]["runs"][method] = got
            write(data)
    print(write(data))


def earlier_runs(sizes: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """The last scaling.json's runs but those about to be re-run (BENCH_KEEP=0: none), so
    that one method or size can be re-measured without re-running the rest."""
    path = OUT / "scaling.json"
    if os.environ.get("BENCH_KEEP", "1") == "0" or not path.is_file():
        return {}
    old = json.loads(path.read_text())["sizes"]
    for size, entry in old.items():
        entry["runs"] = {m: run for m, run in entry["runs"].items()
                         if size not in sizes or m not in methods}
    return old


def settings() -> dict[str, Any]:
    return {"arch": ARCH, "layers": SIZES, "max_shard_size": spec(0)["max_shard_size"],
            "methods": {k: v[2] for k, v in METHODS.items()}, "offload_budget": OFFLOAD_BUDGET,
            "calibration": {"source": str(CALIBRATION), **CALIB},
            "perplexity": {"dataset": str(EVAL_TEXT), "window": WINDOW, "windows": WINDOWS,
                           "batch_size": BATCH},
            "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def attempt(step: str, data: dict[str, Any], action: Any) -> Any:
    """action(), or None with its error in data["failed"]: one failure keeps the others."""
    start = time.perf_counter()
    try:
        result = action()
    except RuntimeError as exc:
        data["failed"][step] = str(exc)[-3000:]
        print(f"{step}: FAILED\n{exc}", flush=True)
        return None
    data.setdefault("step_seconds", {})[step] = round(time.perf_counter() - start, 1)
    print(f"{step}: done in {data['step_seconds'][step]:.0f} s", flush=True)
    return result


def write(data: dict[str, Any]) -> str:
    """artifacts/bench/scaling.json and .md, rewritten after every run (partial runs keep)."""
    from scaling_table import analyse, markdown  # bench/, beside this script

    data["analysis"] = analyse(data)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scaling.json").write_text(json.dumps(data, indent=2))
    table = markdown(data)
    (OUT / "scaling.md").write_text(table)
    return table


if __name__ == "__main__":
    if sys.argv[1:2] == ["build"]:
        build(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["bare"]:
        sys.path.insert(0, str(REPO))
        bare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
