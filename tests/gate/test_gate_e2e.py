"""`quench gate` on real runs of the tiny model, logged to a real MLflow store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import norm
from scipy.stats import t as student_t

from ..conftest import REPO, perturbed_copy, run_id_of, run_quench

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


@dataclass
class Gated:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def gate(capsys, monkeypatch):
    """`quench gate ...` through the CLI's entry point in this process: the same code and exit
    code as `python -m quench gate` (tests/test_smollm2_e2e.py gates in a subprocess), without
    a new interpreter importing MLflow for each of this module's gates."""
    from quench.cli import main

    def call(runs, candidate: str, *args: str, env: dict[str, str] | None = None) -> Gated:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = main(["gate", candidate, "--tracking-uri", _uri(runs["out"]), *args])
        finally:
            for key in env or {}:
                monkeypatch.delenv(key, raising=False)
        captured = capsys.readouterr()
        return Gated(code, captured.out, captured.err)

    return call


def _child_artifact(runs, run_id: str, node: str, path: str, dest: Path) -> Path:
    """An artifact of a run's stage run (`node`), downloaded by the test itself from MLflow."""
    client = MlflowClient(_uri(runs["out"]))
    parent = client.get_run(run_id)
    child = client.search_runs([parent.info.experiment_id],
                               f"tags.mlflow.parentRunId = '{run_id}' and "
                               f"attributes.run_name = '{node}'")[0]
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(child.info.run_id, path, str(dest)))


def _accuracy(runs, run_id: str, dest: Path) -> dict[str, dict[tuple, float]]:
    """task -> {(doc_id, filter): acc} of the run's hf lm-eval samples."""
    folder = _child_artifact(runs, run_id, "lm_eval", "hf", dest / run_id)
    found = {}
    for path in folder.glob("samples_*.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        found[path.stem.removeprefix("samples_")] = {(r["doc_id"], r["filter"]): r["acc"]
                                                      for r in rows if "acc" in r}
    return found


def _drop_verdict(base: np.ndarray, cand: np.ndarray, threshold: float = 0.02,
                  alpha: float = 0.05, resamples: int = 2000, seed: int = 0) -> str:
    """The documented accuracy decision, computed here from the per-document data: a percentile
    bootstrap of the mean drop over documents, widened by t(n-1)/z, against the threshold."""
    diff = base - cand
    n = len(diff)
    means = diff[np.random.default_rng(seed).integers(0, n, size=(resamples, n))].mean(axis=1)
    estimate = diff.mean()
    q_low, q_high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    widen = student_t.ppf(1 - alpha / 2, n - 1) / norm.ppf(1 - alpha / 2)
    low, high = estimate - widen * (estimate - q_low), estimate + widen * (q_high - estimate)
    return "FAIL" if low > threshold else "PASS" if high <= threshold else "INCONCLUSIVE"


def test_second_calibration_seed_passes_at_default_thresholds(runs, tmp_path, gate):
    result = gate(runs, runs["gptq-s1"], "--baseline", runs["gptq-s0"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("| ") and "**" in line}
    assert "**PASS**" in rows["perplexity increase %"]
    assert "**PASS**" in rows["KL divergence (nats/token)"]
    base = _accuracy(runs, runs["gptq-s0"], tmp_path)
    cand = _accuracy(runs, runs["gptq-s1"], tmp_path)
    assert sorted(base) == sorted(cand) == ["arc_easy", "piqa"]
    expected = {}
    for task in ("piqa", "arc_easy"):
        keys = sorted(base[task], key=str)
        assert len(keys) == 60 and sorted(cand[task], key=str) == keys
        expected[task] = _drop_verdict(np.array([base[task][k] for k in keys], float),
                                       np.array([cand[task][k] for k in keys], float))
        assert "McNemar p = " in rows[f"{task} acc drop"]
        assert f"**{expected[task]}**" in rows[f"{task} acc drop"]
    # 60 documents cannot show a 2-point accuracy drop either way: never a FAIL
    assert "FAIL" not in expected.values()
    undecided = "INCONCLUSIVE" in expected.values()
    assert ("## quench gate: INCONCLUSIVE" if undecided else "## quench gate: PASS") in (
        result.stdout)
    strict = gate(runs, runs["gptq-s1"], "--baseline", runs["gptq-s0"], "--strict")
    assert strict.returncode == (1 if undecided else 0), strict.stdout + strict.stderr


def test_a_threshold_at_the_estimate_is_inconclusive(runs, tmp_path, gate):
    """The perplexity increase of 3-bit RTN over fp32, computed here from the per-window NLLs,
    set as the threshold: the interval straddles it, so the verdict can only be INCONCLUSIVE."""
    windows = {}
    for name in ("rtn-w3", "none"):
        path = _child_artifact(runs, runs[name], "evaluate", "per_window.npz", tmp_path / name)
        with np.load(path) as arrays:
            windows[name] = {k: arrays[k] for k in arrays.files}
    cand, base = windows["rtn-w3"], windows["none"]
    assert np.array_equal(cand["tokens"], base["tokens"])
    delta = np.asarray(cand["nll_sum"], float) - np.asarray(base["nll_sum"], float)
    estimate = float(100 * np.expm1(delta.sum() / np.asarray(cand["tokens"], float).sum()))
    assert estimate > 0 and np.ptp(delta / cand["tokens"]) > 0  # a regression, windows vary
    recipe = tmp_path / "gate.yaml"
    recipe.write_text(f"extends: {RECIPES / 'tinystories-none.yaml'}\n"
                      f"gate: {{max_perplexity_increase_pct: {estimate!r}, "
                      "max_kl_divergence: null, max_accuracy_drop: null}\n")
    result = gate(runs, runs["rtn-w3"], "--baseline", runs["none"], "--recipe", str(recipe))
    assert result.returncode == 0, result.stdout + result.stderr  # not strict: not a failure
    assert "## quench gate: INCONCLUSIVE" in result.stdout
    assert "- perplexity increase % is inconclusive" in result.stdout
    strict = gate(runs, runs["rtn-w3"], "--baseline", runs["none"], "--recipe", str(recipe),
                  "--strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr


def test_three_bit_rtn_is_a_regression_against_fp32(runs, tmp_path, gate):
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


def test_identical_candidate_passes(runs, gate):
    result = gate(runs, runs["gptq-s0"], "--baseline", runs["gptq-s0"], "--strict")
    assert result.returncode == 0 and "## quench gate: PASS" in result.stdout
    assert "INCONCLUSIVE" not in result.stdout and "FAIL" not in result.stdout


def test_missing_baseline_is_an_error_not_a_pass(runs, gate):
    missing = gate(runs, runs["gptq-s0"], "--baseline", "0" * 32)
    assert missing.returncode == 2 and "not found in MLflow" in missing.stderr
    alias = gate(runs, runs["gptq-s0"], "--baseline", "tinystories@baseline")
    assert alias.returncode == 2 and "tinystories@baseline" in alias.stderr


def test_registry_alias_and_recipe_resolve_to_runs(runs, tmp_path, gate):
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


def test_runs_on_different_windows_cannot_be_paired(runs, gate):
    other = run_quench("run", str(RECIPES / "tinystories-none.yaml"),
                       *_args(runs["out"], windows=40), "name=none-40")
    assert other.returncode == 0, other.stderr[-3000:]
    result = gate(runs, run_id_of(other), "--baseline", runs["none"])
    assert result.returncode == 2 and "not comparable" in result.stderr
    assert "windows: 40 vs 48" in result.stderr


def test_a_run_of_another_base_model_is_refused_unless_declared(runs, tiny_model, tmp_path,
                                                                gate):
    other = perturbed_copy(tiny_model, tmp_path / "other-model")
    result = run_quench("run", str(RECIPES / "tinystories-none.yaml"), *_args(runs["out"]),
                        "name=other-model", f"model.id={other}")
    assert result.returncode == 0, result.stderr[-3000:]
    refused = gate(runs, run_id_of(result), "--baseline", runs["none"])
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "not the same base model (weights differ)" in refused.stderr
    assert run_id_of(result) in refused.stderr and runs["none"] in refused.stderr
    declared = tmp_path / "cross.yaml"
    declared.write_text(f"extends: {RECIPES / 'tinystories-none.yaml'}\n"
                        "gate: {allow_cross_model: true}\n")
    allowed = gate(runs, run_id_of(result), "--baseline", runs["none"], "--recipe",
                   str(declared))
    assert allowed.returncode in (0, 1), allowed.stdout + allowed.stderr
    assert "cross-model comparison" in allowed.stdout


def test_an_artifact_replaced_in_the_store_is_refused(runs, tmp_path, gate):
    """The hostile case: the candidate's per_window.npz overwritten by the baseline's in the
    artifact store would turn FAIL into PASS; its manifest's sha256 gives it away."""
    client = MlflowClient(_uri(runs["out"]))

    def stored(run_id: str) -> Path:
        parent = client.get_run(run_id)
        [child] = client.search_runs([parent.info.experiment_id],
                                     f"tags.mlflow.parentRunId = '{run_id}' and "
                                     "attributes.run_name = 'evaluate'")
        return Path(child.info.artifact_uri.removeprefix("file://")) / "per_window.npz"

    target, source = stored(runs["rtn-w3"]), stored(runs["none"])
    saved = target.read_bytes()
    try:
        target.write_bytes(source.read_bytes())
        result = gate(runs, runs["rtn-w3"], "--baseline", runs["none"])
    finally:
        target.write_bytes(saved)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "per_window.npz is not the file its evaluate stage wrote" in result.stderr
