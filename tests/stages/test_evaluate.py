"""The evaluate stage on the tiny model: what a baseline stores, what a candidate reports."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from quench.contract.manifest import Manifest
from quench.contract.stage import StageContext
from quench.gpu import cuda_device_count
from quench.metrics.perplexity import score_windows
from quench.models import load_model
from quench.recipe import load_recipe
from quench.stages import get_stage
from quench.stages.evaluate import prepare_windows

from ..conftest import DEFAULT_RECIPE

# 6 windows of 32 tokens in batches of 4; the exact subset (40) spans windows 0 and 1.
OVERRIDES = ["evaluation.perplexity.window=32", "evaluation.perplexity.stride=32",
             "evaluation.perplexity.max_windows=6", "evaluation.perplexity.batch_size=4",
             "evaluation.perplexity.top_k=16", "evaluation.perplexity.exact_kl_tokens=40"]


@pytest.fixture(scope="module")
def corpus(mirror, tmp_path_factory):
    """The first 30 kB of WikiText-2's test split: enough windows, tokenized in a blink."""
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    text = (mirror / "data" / "wikitext2_raw_test" / "wiki.test.raw").read_text()[:30_000]
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def candidate_model(tiny_model, tmp_path_factory):
    """A real "quantized" checkpoint: the tiny model with seeded noise on every weight."""
    out = tmp_path_factory.mktemp("noisy")
    model = load_model(tiny_model, "float32")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * param.std() * torch.randn(param.shape, generator=gen))
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_model / name, out / name)
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, corpus, tiny_model):
    return _evaluate(tmp_path_factory.mktemp("baseline"), corpus, tiny_model)


def _evaluate(tmp_path, corpus, model_dir, reference=None, *overrides: str):
    dataset = f"evaluation.perplexity.dataset={corpus}"
    changed = {item.partition("=")[0] for item in overrides}  # a key may be given once
    kept = [item for item in OVERRIDES if item.partition("=")[0] not in changed]
    recipe = load_recipe(DEFAULT_RECIPE, [*kept, dataset, *overrides])
    inputs = {"model": Manifest(tmp_path, {"key": "m", "status": "ran",
                                           "outputs": {"model_dir": str(model_dir)}})}
    if reference is not None:
        inputs["reference"] = reference
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    stage = get_stage("evaluate")
    result = stage.run(StageContext(recipe, inputs, out, stage.config(recipe)))
    return Manifest(out, {"key": out.name, "status": "ran", "outputs": result.outputs,
                          "metrics": result.metrics}), recipe


def _float64_kl(recipe, base_dir, cand_dir, positions: int) -> float:
    """KL(base || candidate) on the first scored positions, from both models' float64 logits."""
    windows, _ = prepare_windows(recipe, base_dir)
    rows = []
    for model_dir in (base_dir, cand_dir):
        model = load_model(model_dir, "float32").double()
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(windows.inputs[:2])).logits[:, :-1]
        rows.append(torch.log_softmax(logits.reshape(-1, logits.shape[-1]), -1)[:positions])
    lp, lq = rows
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def test_candidate_gets_exact_kl_on_the_subset_and_the_bounds_ratio(
        tmp_path, corpus, tiny_model, candidate_model, baseline):
    baseline, recipe = baseline
    assert baseline.outputs["exact_kl_tokens"] == 40
    stored = {name: np.load(baseline.path("topk") / f"{name}.npy")
              for name in ("logprobs", "ids", "rest", "exact")}
    assert {k: (v.dtype, v.shape) for k, v in stored.items()} == {
        "logprobs": (np.float16, (6 * 32, 16)), "ids": (np.int32, (6 * 32, 16)),
        "rest": (np.float32, (6 * 32,)), "exact": (np.float16, (40, 2048))}
    candidate, _ = _evaluate(tmp_path, corpus, candidate_model, baseline)
    m = candidate.metrics
    assert m["kl_exact_tokens"] == 40
    assert m["kl_exact_subset"] == pytest.approx(
        _float64_kl(recipe, tiny_model, candidate_model, 40), rel=1e-3)
    assert 0 < m["kl_bound_subset"] <= m["kl_exact_subset"]
    assert m["kl_bound_ratio"] == pytest.approx(m["kl_bound_subset"] / m["kl_exact_subset"])
    assert 0 < m["topk_mass"] < 1 and m["kl_divergence"] > 0
    assert "kl_note" not in candidate.outputs


def test_identical_model_has_no_ratio_and_no_subset_leaves_a_note(
        tmp_path, corpus, tiny_model, baseline):
    same, _ = _evaluate(tmp_path, corpus, tiny_model, baseline[0])
    assert same.metrics["kl_exact_subset"] < 1e-6 and "kl_bound_ratio" not in same.metrics
    assert same.metrics["top1_agreement"] == 1.0
    bare, _ = _evaluate(tmp_path, corpus, tiny_model, None,
                        "evaluation.perplexity.exact_kl_tokens=0")
    unchecked, _ = _evaluate(tmp_path, corpus, tiny_model, bare)
    assert "kl_exact_subset" not in unchecked.metrics and "kl_divergence" in unchecked.metrics
    assert "exact_kl_tokens: 0" in unchecked.outputs["kl_note"]


def test_the_stage_loads_on_the_resolved_device():
    recipe = load_recipe(DEFAULT_RECIPE, ["compute.device=cpu"])
    assert get_stage("evaluate").config(recipe)["device"] == "cpu"


@pytest.mark.skipif(not cuda_device_count(), reason="no CUDA device: scoring on the GPU is "
                    "checked on a GPU host (make gpu-check)")
def test_scores_on_cuda_equal_scores_on_the_cpu(corpus, tiny_model):
    recipe = load_recipe(DEFAULT_RECIPE, [*OVERRIDES, f"evaluation.perplexity.dataset={corpus}"])
    windows, _ = prepare_windows(recipe, tiny_model)
    cpu = score_windows(load_model(tiny_model, "float32"), windows, 4)
    gpu = score_windows(load_model(tiny_model, "float32", device="cuda:0"), windows, 4)
    assert gpu.nll_sum == pytest.approx(cpu.nll_sum, rel=1e-4)
