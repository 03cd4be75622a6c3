"""`quench validate` = `quench run`: for every corpus case whose cards are on this machine, the
pre-flight reaches the license stage's verdict, and warns with the same findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from quench.errors import RecipeError, StageError
from quench.preflight import check_recipe
from quench.recipe import load_recipe
from quench.runner.run import run_pipeline
from tests.conftest import DEFAULT_RECIPE
from tests.license.test_corpus import CASES, POLICIES

PARITY = CASES  # every card shape: the two paths must never drift apart


def _recipe_file(case: dict[str, Any], key: str, out: Path) -> Path:
    use, distribution = POLICIES[key]
    recipe = {
        "extends": str(DEFAULT_RECIPE),
        "name": "parity",
        "model": {"id": case["model"]},
        "license": {"intended_use": use, "distribution": distribution,
                    "artifact_name": case["artifact"], "declared": case.get("declared", {}),
                    "base_models": case.get("base_models", {})},
        "output": {"dir": str(out)},
        "tracking": {"backend": "none"},
    }
    path = out.parent / f"{key}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _validate(recipe_path: Path) -> tuple[str, list[str]]:
    """The pre-flight's verdict (fail or not) and its license warnings."""
    try:
        warnings = check_recipe(load_recipe(str(recipe_path)), for_run=False)
    except RecipeError as exc:
        assert "license:" in str(exc), exc
        return "fail", []
    return "ok", sorted(w for w in warnings if w.startswith("license: "))


def _run(recipe_path: Path, out: Path) -> tuple[str, list[str]]:
    """The license stage's verdict (fail or not) and its warning findings, from license.json."""
    try:
        run_pipeline(load_recipe(str(recipe_path)), until="license")
    except StageError:
        return "fail", []
    entry = next((out / "cache" / "license").iterdir())
    verdict = json.loads((entry / "license.json").read_text())["verdict"]
    return "ok", sorted(f"license: {f['reason']}" + (f" [{f['cite']}]" if f.get("cite") else "")
                        for f in verdict["findings"] if f["level"] == "warn")


@pytest.mark.parametrize("case", PARITY, ids=[c["id"] for c in PARITY])
def test_validate_reaches_the_runs_verdict(case: dict[str, Any], tmp_path: Path, card_mirror,
                                           tiny_model: Path, monkeypatch) -> None:
    mirror = Path(card_mirror(case["model"], case["card"], case.get("files"))).parents[2]
    (mirror / "data").symlink_to(tiny_model.parents[1] / "data")  # calibration/eval texts
    folder = mirror / "models" / case["model"]
    for f in tiny_model.iterdir():  # real weights under the case's card (not its provenance)
        if f.name != "SOURCE.md" and (not (folder / f.name).exists() or f.name == "config.json"):
            (folder / f.name).unlink(missing_ok=True)
            (folder / f.name).symlink_to(f)
    for hub_id, card in (case.get("parents") or {}).items():
        card_mirror(hub_id, card)
    for key in POLICIES:
        out = tmp_path / key / "out"
        out.parent.mkdir(parents=True)
        recipe_path = _recipe_file(case, key, out)
        validated, run = _validate(recipe_path), _run(recipe_path, out)
        assert validated == run, key
        assert validated[0] == ("fail" if case[key] == "fail" else "ok"), key


def test_until_rejects_an_unknown_stage(tiny_model: Path, tmp_path: Path) -> None:
    recipe = load_recipe(str(DEFAULT_RECIPE), [f"output.dir={tmp_path}", "tracking.backend=none"])
    with pytest.raises(Exception, match="--until: unknown stage 'licence'"):
        run_pipeline(recipe, until="licence")


def test_a_parent_card_out_of_reach_is_named_with_what_the_run_decides(
        tmp_path: Path, card_mirror, tiny_model: Path) -> None:
    """Offline, a parent not in the mirror: validate warns naming it; the run fails on it; a
    license.declared entry for it settles both the same way."""
    case = {"model": "acme/Llama-3.1-8B-Acme", "artifact": "Llama-3.1-8B-Acme-W4",
            "card": {"license": "llama3.1", "base_model": "meta-llama/Llama-3.1-8B"}}
    mirror = Path(card_mirror(case["model"], case["card"])).parents[2]
    (mirror / "data").symlink_to(tiny_model.parents[1] / "data")
    folder = mirror / "models" / case["model"]
    for f in tiny_model.iterdir():
        if f.name not in ("SOURCE.md", "README.md"):
            (folder / f.name).unlink(missing_ok=True)
            (folder / f.name).symlink_to(f)
    out = tmp_path / "commercial_public" / "out"
    out.parent.mkdir(parents=True)
    recipe_path = _recipe_file(case, "commercial_public", out)
    warnings = check_recipe(load_recipe(str(recipe_path)), for_run=False)
    shown = " ".join(warnings)
    assert "the card of meta-llama/Llama-3.1-8B is not on this machine" in shown, warnings
    assert "a run offline fails on it" in shown and "license.declared settles it" in shown
    assert _run(recipe_path, out)[0] == "fail"
    declared = {**case, "declared": {"meta-llama/Llama-3.1-8B": "llama3.1"}}
    out2 = tmp_path / "declared" / "out"
    out2.parent.mkdir(parents=True)
    recipe_path = _recipe_file(declared, "commercial_public", out2)
    assert _validate(recipe_path)[0] == _run(recipe_path, out2)[0] == "ok"
