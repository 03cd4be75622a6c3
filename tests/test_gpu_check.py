"""scripts/gpu_check.py: the plan (golden), the report without a GPU, the steps' recipes.

Regenerate the golden plan after an intended change:
    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_gpu_check.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "gpu_check_plan.txt"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _has_cuda() -> bool:
    from quench.gpu import cuda_device_count

    return shutil.which("nvidia-smi") is not None and cuda_device_count() > 0


def test_dry_run_plan_matches_golden(capsys):
    assert gpu_check.main(["--dry-run", "--gpu", "none"]) == 0
    text = capsys.readouterr().out
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "the gpu-check plan changed; if intended: UPDATE_GOLDEN=1 pytest tests/test_gpu_check.py")
    assert str(REPO) not in text and sys.executable not in text


def test_plan_adapts_to_the_gpu():
    ampere = gpu_check.build_plan(gpu_check.Options(gpu="A100"))
    turing = gpu_check.build_plan(gpu_check.Options(gpu="T4"))
    assert "run smollm2-modelopt-int4-awq-cuda" in [s.id for s in ampere]  # no TRT-LLM FP8
    assert all(s.skip is None for s in ampere)
    served = next(s for s in turing if s.id == "run smollm2-none-cuda")
    assert any("dtype: float16" in a for a in served.argv)  # no bf16 before Ampere
    assert any(a == "target.gpu=T4" for a in served.argv)


def test_unknown_gpu_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--dry-run", "--gpu", "X9000"])
    assert exc.value.code == 2
    assert "X9000" in capsys.readouterr().err


@pytest.mark.skipif(_has_cuda(), reason="this host has a CUDA device: the steps would run")
def test_without_cuda_every_step_is_skipped(tmp_path, capsys):
    out = tmp_path / "gpu-check"
    assert gpu_check.main(["--out", str(out), "--gpu", "none"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "skipped: no CUDA device"
    assert report["host"]["cuda_devices"] == 0
    assert len(report["steps"]) == len(gpu_check.build_plan(gpu_check.Options()))
    for step in report["steps"]:
        assert step["status"] == "skipped: no CUDA device"
        assert step["exit_code"] is None and step["log"] is None and "metrics" not in step
    markdown = (out / "report.md").read_text()
    assert "Nothing ran; no number was measured." in markdown
    assert markdown.count("| skipped: no CUDA device |") == len(report["steps"])
    assert not (out / "logs").exists()


def test_steps_run_on_after_a_failure(tmp_path):
    """Real subprocesses: exit codes, logs, a failed step does not stop the next one."""
    py = sys.executable
    steps = [gpu_check.Step("fails", "setup", [py, "-c", "print('boom'); raise SystemExit(3)"],
                            "x"),
             gpu_check.Step("passes", "setup", [py, "-c", "import os; print(os.environ['K'])"],
                            "y", env={"K": "from-env"})]
    opts = gpu_check.Options(out=str(tmp_path))
    results = gpu_check.run_all(steps, opts, timeout=60)
    assert [r["status"] for r in results] == ["failed: exit 3", "ok"]
    assert [r["exit_code"] for r in results] == [3, 0]
    assert "boom" in Path(results[0]["log"]).read_text()
    assert "from-env" in Path(results[1]["log"]).read_text()
    slow = gpu_check.Step("slow", "setup", [py, "-c", "import time; time.sleep(30)"], "z")
    stopped = gpu_check.run_all([slow], opts, timeout=0.5)[0]
    assert stopped["status"] == "failed: timeout after 0.5 s" and stopped["exit_code"] is None


def _fake_run(run_dir: Path, run_id: str) -> None:
    """A finished run's files as the pipeline writes them: run.json -> track manifest."""
    track = run_dir.parent / "cache" / "track" / "k"
    track.mkdir(parents=True)
    (track / "manifest.json").write_text(json.dumps(
        {"outputs": {"run_id": run_id, "tracking_uri": "sqlite:///x.db"}}))
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"nodes": {"track": {"dir": str(track)}}}))


def test_gate_placeholders_resolve_only_for_finished_runs(tmp_path):
    base = gpu_check.Step("run b", "run", ["quench", "run"], "", run_dir=str(tmp_path / "b"))
    gate = gpu_check.Step("gate", "gate", ["quench", "gate", "@run:b", "--tracking-uri",
                                           "@tracking:b"], "")
    assert gpu_check.resolve_argv(gate, [base]).startswith("skipped: run b did not")
    _fake_run(tmp_path / "b", "abc123")
    assert gpu_check.resolve_argv(gate, []).startswith("skipped")  # b's step did not end ok
    argv = gpu_check.resolve_argv(gate, [base])
    assert argv[:3] == [sys.executable, "-m", "quench"]
    assert argv[3:] == ["gate", "abc123", "--tracking-uri", "sqlite:///x.db"]


def test_metrics_come_from_the_run_report_it_wrote(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    report = {"metrics": {"baseline": {"perplexity": 40.0},
                          "candidate": {"perplexity": 41.0, "kl_divergence": 0.01},
                          "change": {"perplexity_pct": 2.5, "size_ratio": 0.41}},
              "stages": [{"node": "throughput", "status": "ran"}],
              "throughput": {"status": "ran", "rows": [
                  {"concurrency": 1, "output_tokens_per_s": 90.0, "ttft_ms_p50": 12.0,
                   "peak_gpu_memory_mb": 900.0, "power_w_mean": 70.0}]},
              "lm_eval": {"rows": [{"engine": "vllm", "task": "piqa", "metric": "acc",
                                    "candidate": 0.64, "candidate_minus_hf": 0.0}]},
              "deployment": {"export": "ran", "build": "skipped: no CUDA device"}}
    (run_dir / "report.json").write_text(json.dumps(report))  # older than the step: ignored
    step = gpu_check.Step("run r", "run", [], "", run_dir=str(run_dir))
    opts = gpu_check.Options(out=str(tmp_path))
    assert gpu_check.step_metrics(step, time.time() + 5, opts) is None
    got = gpu_check.step_metrics(step, 0, opts)
    assert got["perplexity"] == 41.0 and got["baseline_perplexity"] == 40.0
    assert got["perplexity_change_pct"] == 2.5 and got["kl_divergence"] == 0.01
    assert got["throughput"] == [{"concurrency": 1, "output_tokens_per_s": 90.0,
                                  "ttft_ms_p50": 12.0, "peak_gpu_memory_mb": 900.0}]
    assert got["lm_eval"][0]["engine"] == "vllm" and got["build"] == "skipped: no CUDA device"


def test_every_planned_recipe_validates(smollm2_gguf):
    """`quench validate` (in-process) accepts each run step's recipe with its overrides.

    The pre-flight refuses compute.device=cuda where torch sees no CUDA device, so here the
    recipes are checked with compute.device=auto (the CPU); that `cuda` itself is accepted by
    the schema is checked by loading each recipe as planned. That the device exists can only
    be checked on a GPU host.
    """
    from quench.preflight import check_recipe
    from quench.recipe import load_recipe

    plans = [gpu_check.build_plan(gpu_check.Options(gpu=g)) for g in (None, "A100", "T4")]
    runs = {tuple(s.argv) for plan in plans for s in plan if s.kind == "run"}
    assert len(runs) == 18  # 6 runs a plan, each GPU's overrides differ
    for argv in sorted(runs):
        assert argv[:2] == ("quench", "run") and (REPO / argv[2]).is_file(), argv
        overrides = list(argv[3:])
        assert load_recipe(REPO / argv[2], overrides).compute.device == "cuda"
        if not _has_cuda():
            overrides = [o.replace("device=cuda", "device=auto") for o in overrides]
        check_recipe(load_recipe(REPO / argv[2], overrides), for_run=False)


def test_report_of_a_partial_gpu_run_renders(tmp_path):
    """What a GPU host writes after each step: done steps with numbers, the rest pending."""
    steps = gpu_check.build_plan(gpu_check.Options())
    host = {"cuda_devices": 1, "torch_cuda_build": "12.8", "nvidia_smi_L": "GPU 0: NVIDIA L4"}
    done = [{"status": "ok", "exit_code": 0, "log": "artifacts/gpu-check/logs/01.log",
             "seconds": 1.5, "metrics": None},
            {"status": "failed: exit 2", "exit_code": 2, "log": "x.log", "seconds": 3.0,
             "metrics": {"report": "r.json", "perplexity": 41.0, "stages": {"build": "ran",
                         "throughput": "skipped: why"}, "lm_eval": [],
                         "throughput": [{"concurrency": 1, "output_tokens_per_s": 90.0}]}}]
    report = gpu_check.build_report(steps, done, host, gpu_check.Options(out=str(tmp_path)))
    assert report["status"] == f"{len(steps)} steps: 1 ok, 1 failed, {len(steps) - 2} pending"
    gpu_check.write_report(tmp_path, report, "the plan\n")
    markdown = (tmp_path / "report.md").read_text()
    assert "GPU 0: NVIDIA L4" in markdown and "| 2 | setup-vllm-cuda | failed: exit 2 | 2 |" \
        in markdown
    assert "- perplexity: 41" in markdown and "- stage throughput: skipped: why" in markdown
    assert "throughput concurrency 1, output_tokens_per_s 90" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["steps"][2]["status"] == "pending"
