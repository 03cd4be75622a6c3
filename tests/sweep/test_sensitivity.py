"""The sensitivity strategy: its ignore patterns under compressed-tensors' own matcher on the
real TinyStories modules, its phase-2 ranking and size budget on hand-built trial records, and
one real phase-1 trial whose checkpoint must quantize only the measured layer group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from compressed_tensors.utils.match import is_match, match_name
from safetensors import safe_open

from quench.errors import QuenchError
from quench.recipe.load import read_recipe_data
from quench.sweep.jobs import FINISHED, TrialOutcome
from quench.sweep.layer_groups import keep_pattern
from quench.sweep.mixed_precision import GroupResult, full_precision_costs, plan
from quench.sweep.space import Point, Space, point_id
from quench.sweep.spec import BudgetSpec
from quench.sweep.strategies import STRATEGIES, SweepContext
from quench.sweep.strategies.sensitivity import IGNORE_KEY, SensitivityStrategy
from quench.sweep.trial import TrialRecord, trial_recipe, write_trial
from tests.conftest import DEFAULT_RECIPE, read_json, run_quench

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # a TinyStories decoder layer's


def resolved_run(tmp: Path, model_dir: Path) -> dict[str, Any]:
    """A run.json whose resolve stage's manifest names `model_dir` (what a run leaves)."""
    folder = tmp / "cache" / "resolve" / "k"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"outputs": {"model_dir": str(model_dir)}}))
    return {"nodes": {"resolve": {"dir": str(folder)}}}


def baseline(run_info: dict[str, Any], dense: float, own_size: float) -> TrialRecord:
    """The sweep's baseline trial: `dense` the base model's size, `own_size` its checkpoint's."""
    report = {"metrics": {"baseline": {"size_bytes": dense},
                          "candidate": {"size_bytes": own_size}}}
    outcome = TrialOutcome("baseline", FINISHED, 0, 1.0, report=report, run_info=run_info)
    return TrialRecord("baseline", {}, "b", "b.yaml", outcome=outcome,
                       metrics={"size_bytes": own_size})


def strategy(base: dict[str, Any], max_trials: int, record: TrialRecord | None = None,
             **options: Any) -> SensitivityStrategy:
    cls = STRATEGIES.get("sensitivity")
    assert cls is SensitivityStrategy
    return cls(cls.options_model.model_validate(options), Space({}, []),
               BudgetSpec(max_trials=max_trials), 0, SweepContext(base, record))


def finished(point: Point, kl: float, size: float) -> TrialRecord:
    outcome = TrialOutcome(point_id(point), FINISHED, 0, 1.0)
    return TrialRecord(point_id(point), point, "t", "t.yaml", outcome=outcome,
                       metrics={"kl_divergence": kl, "size_bytes": size})


def quantizable(model: torch.nn.Module, ignore: list[str]) -> set[str]:
    return {name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and is_match(name, module, ["Linear"], ignore)}


def test_probe_pattern_leaves_exactly_one_group_quantizable(tiny_model: Path,
                                                            tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    layers = model.config.num_hidden_layers
    assert layers >= 2
    s = strategy({"quantization": {"options": {}}}, 10,
                 baseline(resolved_run(tmp_path, tiny_model), 1000.0, 500.0))
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    for g in range(layers):
        ignore = s.probe_point(g)[IGNORE_KEY]
        assert ignore[0] == "lm_head"
        expected = {n for n in linears if n.startswith(f"model.layers.{g}.")}
        assert expected and quantizable(model, ignore) == expected
    # the index ends at a dot: layer 1's pattern must not catch layer 10 or 11 (re.match
    # anchors only the start), and the prefix may be any parent path
    pattern = keep_pattern([1])
    assert pattern is not None
    assert match_name("model.layers.1.mlp.down_proj", pattern)
    assert match_name("model.language_model.layers.1.self_attn.q_proj", pattern)
    assert not match_name("model.layers.10.mlp.down_proj", pattern)
    assert not match_name("model.layers.11.mlp.down_proj", pattern)
    assert not match_name("lm_head", pattern)


def test_proposals_keep_the_most_sensitive_first_within_budget(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 4}))
    dense, quantized = 1000.0, 400.0
    base = {"quantization": {"options": {"ignore": ["lm_head", "re:.*embed.*"]}}}
    # the sweep's baseline is gate.baseline (method none here): its own checkpoint is the
    # re-saved dense model, which no estimate may take for the quantized size
    s = strategy(base, 7, baseline(resolved_run(tmp_path, model), dense, dense + 50.0),
                 max_size_ratio=0.65)
    history: list[TrialRecord] = []
    first = s.ask(history, 10)
    assert len(first) == 5 and all(p[IGNORE_KEY][:2] == ["lm_head", "re:.*embed.*"]
                                   for p in first)
    assert first[0] == {IGNORE_KEY: ["lm_head", "re:.*embed.*"]}  # the base recipe as it is
    history.append(finished(first[0], 0.5, quantized))
    # kl per group (2 most sensitive, then 0) and the bytes keeping it at full precision adds
    # (d); a probe weighs quantized + sum(d) - d_g; the base folder is 50 bytes lighter than
    # the same weights in a quantized checkpoint (as on TinyStories, where it is ~53 kB)
    measured = {0: (0.05, 150.0), 1: (0.01, 150.0), 2: (0.30, 200.0), 3: (0.02, 150.0)}
    for g, point in enumerate(first[1:]):
        assert point == s.probe_point(g)
        kl, cost = measured[g]
        history.append(finished(point, kl, quantized + 650.0 - cost))
        s.tell(history[-1])
    proposals = s.ask(history, 10)
    # k=0 (400, 0.40) already ran; k=1 keeps group 2: 600 (0.60); k=2 adds group 0: 750
    # (0.75 > 0.65), so it is not proposed
    assert [p[IGNORE_KEY] for p in proposals] == [
        ["lm_head", "re:.*embed.*", keep_pattern([2])]]
    notes = "\n".join(s.context.notes)
    assert "KL 0.3;" in notes and "full precision costs 200 bytes" in notes
    assert "k=1: layers kept at full precision: 2; estimated size ratio 0.600" in notes
    assert "k=0" in notes and "ratio 0.400" in notes and "k=2" not in notes
    assert [s.candidate(r) for r in history] == [True, False, False, False, False]
    done = [*history, *(finished(p, 0.0, 0.0) for p in proposals)]
    assert s.candidate(done[-1])
    assert s.ask(done, 10) == []


def test_full_precision_costs_on_measured_tinystories_sizes() -> None:
    """Sizes measured on TinyStories W4A16 (bench/auto_quantize_compare.py): the base folder
    2,717,459 bytes, all quantized 1,411,547, each layer quantized alone 2,092,222. Keeping
    layer 0 (quantizing layer 1 alone) must be estimated at that measured 2,092,222; the naive
    dense - probe saving (625,237) would give 2,036,784."""
    costs = full_precision_costs([2_092_222.0, 2_092_222.0], 1_411_547.0, 2_717_459.0)
    assert costs == [680_675.0, 680_675.0]
    groups = [GroupResult(0, [0], 0.037, costs[0]), GroupResult(1, [1], 0.033, costs[1])]
    plans = plan(groups, 2_717_459.0, 1_411_547.0, 3, None)
    assert [(p.k, p.kept_layers, p.size_bytes) for p in plans] == [
        (0, [], 1_411_547.0), (1, [0], 2_092_222.0)]
    assert full_precision_costs([900.0, None], 400.0, 1000.0) == [100.0, None]


def test_without_budget_every_prefix_up_to_proposals(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 6}))
    s = strategy({}, 6, baseline(resolved_run(tmp_path, model), 1000.0, 400.0),
                 layers_per_group=2, proposals=3)
    first = s.ask([], 10)
    assert len(first) == 4
    history = [finished(first[0], 0.6, 400.0)] + [
        finished(p, kl, 900.0) for p, kl in zip(first[1:], (0.1, 0.3, 0.2), strict=True)]
    ignores = [p[IGNORE_KEY] for p in s.ask(history, 10)]
    # k=2 keeps groups 1 and 2, quantizing only group 0: that is group 0's probe, already
    # measured, so it is not run again but becomes a candidate
    assert ignores == [["lm_head", keep_pattern([2, 3])]]
    assert history[1].point[IGNORE_KEY] == ["lm_head", keep_pattern([2, 3, 4, 5])]
    assert [s.candidate(r) for r in history] == [True, True, False, False]


def test_check_rejects_a_budget_below_groups_plus_proposals(tiny_model: Path) -> None:
    base = {"model": {"id": str(tiny_model)}}
    with pytest.raises(QuenchError, match=r"budget.max_trials.*needs 4 trials.*allows 3"):
        strategy(base, 3).check()
    strategy(base, 4).check()
    with pytest.raises(QuenchError, match=r"needs 2 trials.*allows 1"):
        strategy(base, 1, layers_per_group=2, proposals=5).check()


def test_unreadable_layer_count_is_a_clear_error(tmp_path: Path) -> None:
    s = strategy({}, 10, baseline({"nodes": {}}, 1.0, 1.0))
    with pytest.raises(QuenchError, match="nodes.resolve.dir"):
        s.ask([], 1)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 8}))
    s = strategy({}, 10, baseline(resolved_run(tmp_path, model), 1.0, 1.0))
    with pytest.raises(QuenchError, match="num_hidden_layers is None"):
        s.ask([], 1)


def test_real_probe_trial_quantizes_only_its_group(tiny_model: Path, tmp_path: Path) -> None:
    base = read_recipe_data(DEFAULT_RECIPE)
    base["output"] = {**(base.get("output") or {}), "dir": str(tmp_path / "out")}
    base["evaluation"]["perplexity"]["max_windows"] = 4
    base["tracking"] = {**(base.get("tracking") or {}), "backend": "none"}
    s = strategy(base, 10, baseline(resolved_run(tmp_path, tiny_model), 1.0, 1.0))
    point = s.probe_point(0)
    data = trial_recipe(base, point, "sens-test")
    path = write_trial(data, tmp_path / "trials", "sensitivity probe, group 0")
    result = run_quench("run", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    run = read_json(tmp_path / "out" / data["name"] / "run.json")
    model_dir = Path(run["nodes"]["quantize"]["dir"]) / "model"
    config = read_json(model_dir / "config.json")["quantization_config"]
    # llm-compressor writes the ignore list out as the module names it matched
    assert set(config["ignore"]) == {"lm_head", *(f"model.layers.1.{m}" for m in LINEARS)}
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    packed = {k.rsplit(".", 1)[0] for k in keys if k.endswith(".weight_packed")}
    assert packed == {f"model.layers.0.{m}" for m in LINEARS}
    assert "model.layers.1.mlp.down_proj.weight" in keys
    report = read_json(tmp_path / "out" / data["name"] / "report.json")
    candidate = report["metrics"]["candidate"]
    assert 0 < candidate["size_bytes"] < report["metrics"]["baseline"]["size_bytes"]
    assert candidate["kl_divergence"] > 0


def test_layer_count_from_a_resolve_stage_with_a_relative_model_dir(tmp_path) -> None:
    """A dequantized GGUF's resolve stage keeps its checkpoint in its own folder ("model")."""
    import json

    from quench.sweep.layer_groups import layer_count_from_run

    stage = tmp_path / "cache" / "resolve" / "abc"
    (stage / "model").mkdir(parents=True)
    (stage / "model" / "config.json").write_text(json.dumps({"num_hidden_layers": 30}))
    (stage / "manifest.json").write_text(json.dumps({"outputs": {"model_dir": "model"}}))
    assert layer_count_from_run({"nodes": {"resolve": {"dir": str(stage)}}}) == 30
