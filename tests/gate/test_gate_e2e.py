"""`quench gate` on real runs of the tiny model, logged to a real MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ..conftest import REPO, run_id_of, run_quench

pytestmark = pytest.mark.e2e
RECIPES = REPO / "recipes"


def _args(out: Path, windows: int = 48) -> list[str]:
    return [f"output.dir={out}", f"tracking.tracking_uri={_uri(out)}",
            f"evaluation.perplexity.max_windows={windows}",
            "evaluation.lm_eval={tasks: [piqa, arc_easy], limit: 60}"]


def _uri(out: Path) -> str:
    return f"sqlite:///{out}/mlflow.db"


@pytest.fixture(scope="module")
def runs(mirror, tmp_path_factory) -> dict[str, object]:
    """fp32 baseline, GPTQ W4 with calibration seeds 0 and 1, and 3-bit RTN (a regression)."""
    out = tmp_path_factory.mktemp("gate")
    plans = {
        "none": ("tinystories-none.yaml", []),
        "gptq-s0": ("tinystories-gptq-w4a16.yaml", ["name=gptq-s0"]),
        "gptq-s1": ("tinystories-gptq-w4a16.yaml", ["name=gptq-s1", "calibration.seed=1"]),
        "rtn-w3": ("tinystories-rtn-w4a16.yaml", [
            "name=rtn-w3", "quantization.scheme=W3A16", "quantization.options.group_size=32"]),
    }
    ids: dict[str, object] = {"out": out}
    for name, (recipe, extra) in plans.items():
        result = run_quench("run", str(RECIPES / recipe), *_args(out), *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        ids[name] = run_id_of(result)
    return ids


def gate(runs, candidate: str, *args: str, env: dict[str, str] | None = None):
    if env:
        os.environ.update(env)
    try:
        return run_quench("gate", candidate, "--tracking-uri", _uri(runs["out"]), *args)
    finally:
        for key in env or {}:
            os.environ.pop(key, None)


def test_second_calibration_seed_passes_at_default_thresholds(runs):
    result = gate(runs, runs["gptq-s1"], "--baseline", runs["gptq-s0"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("| ") and "**" in line}
    assert "**PASS**" in rows["perplexity increase %"]
    assert "**PASS**" in rows["KL divergence (nats/token)"]
    # 60 documents cannot show a 2-point accuracy drop either way: never a FAIL
    for task in ("piqa", "arc_easy"):
        assert "McNemar p = " in rows[f"{task} acc drop"]
        assert "**FAIL**" not in rows[f"{task} acc drop"]
    if "INCONCLUSIVE" in result.stdout:
        assert "would decide it" in result.stdout or "sits on the threshold" in result.stdout
    strict = gate(runs, runs["gptq-s1"], "--baseline", runs["gptq-s0"], "--strict")
    assert strict.returncode == (1 if "INCONCLUSIVE" in result.stdout else 0)


def test_three_bit_rtn_is_a_regression_against_fp32(runs, tmp_path):
    summary = tmp_path / "verdict.md"
    step = tmp_path / "step_summary.md"
    result = gate(runs, runs["rtn-w3"], "--baseline", runs["none"], "--summary", str(summary),
                  env={"GITHUB_STEP_SUMMARY": str(step)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "## quench gate: FAIL" in result.stdout
    assert "| perplexity increase % |" in result.stdout and "**FAIL**" in result.stdout
    assert summary.read_text() == step.read_text() == result.stdout.rstrip("\n") + "\n"
    tags = MlflowClient(_uri(runs["out"])).get_run(runs["rtn-w3"]).data.tags
    assert tags["quench.gate"] == "FAIL" and tags["quench.gate.baseline"] == runs["none"]


def test_identical_candidate_passes(runs):
    result = gate(runs, runs["gptq-s0"], "--baseline", runs["gptq-s0"], "--strict")
    assert result.returncode == 0 and "## quench gate: PASS" in result.stdout
    assert "INCONCLUSIVE" not in result.stdout and "FAIL" not in result.stdout


def test_missing_baseline_is_an_error_not_a_pass(runs):
    missing = gate(runs, runs["gptq-s0"], "--baseline", "0" * 32)
    assert missing.returncode == 2 and "not found in MLflow" in missing.stderr
    alias = gate(runs, runs["gptq-s0"], "--baseline", "tinystories@baseline")
    assert alias.returncode == 2 and "tinystories@baseline" in alias.stderr


def test_registry_alias_and_recipe_resolve_to_runs(runs, tmp_path):
    client = MlflowClient(_uri(runs["out"]))
    client.create_registered_model("tinystories")
    version = client.create_model_version("tinystories", str(runs["out"]), run_id=runs["none"])
    client.set_registered_model_alias("tinystories", "baseline", version.version)
    by_alias = gate(runs, runs["rtn-w3"], "--baseline", "models:/tinystories@baseline")
    assert by_alias.returncode == 1 and runs["none"] in by_alias.stdout
    recipe = tmp_path / "baseline.yaml"  # the fp32 recipe, writing where the fixture did
    recipe.write_text(f"extends: {RECIPES / 'tinystories-none.yaml'}\nname: tinystories-none\n"
                      f"output: {{dir: {runs['out']}}}\n"
                      f"tracking: {{tracking_uri: '{_uri(runs['out'])}'}}\n"
                      "evaluation: {perplexity: {max_windows: 48}, "
                      "lm_eval: {tasks: [piqa, arc_easy], limit: 60}}\n")
    by_recipe = gate(runs, runs["gptq-s0"], "--baseline", str(recipe))
    assert by_recipe.returncode == 0, by_recipe.stdout + by_recipe.stderr
    assert runs["none"] in by_recipe.stdout  # reused from the cache, not run again


def test_runs_on_different_windows_cannot_be_paired(runs):
    other = run_quench("run", str(RECIPES / "tinystories-none.yaml"),
                       *_args(runs["out"], windows=40), "name=none-40")
    assert other.returncode == 0, other.stderr[-3000:]
    result = gate(runs, run_id_of(other), "--baseline", runs["none"])
    assert result.returncode == 2 and "cannot be paired" in result.stderr
