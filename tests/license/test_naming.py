"""Naming rules compared as people write names, a quantization's name as a warning with the
clause, and silent derivatives carrying their parents' terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.license.assess import assess
from quench.license.naming import name_matches
from quench.recipe.schema import Recipe
from tests.license.conftest import write_card
from tests.license.test_cases import fails, verdict_for


@pytest.mark.parametrize(("name", "prefix", "expected"), [
    ("Llama-3.1-8B-Acme-W4A16", "Llama", "match"),
    ("Llama3.1-8B", "Llama", "match"),
    ("Llama-3-8B-Acme", "Llama 3", "match"),  # separators are one
    ("Llama_3_8B", "Llama 3", "match"),
    ("llama3.1-8b-w4a16", "Llama", "near"),  # case differs: no silent pass
    ("Llama3-8B", "Llama 3", "near"),  # a separator missing
    ("Llama 30B", "Llama 3", "near"),  # not "Llama 3" followed by a name
    ("Meta-Llama-3-8B", "Llama", "miss"),
    ("acme-8b", "Llama", "miss"),
])
def test_name_matching(name: str, prefix: str, expected: str) -> None:
    assert name_matches(name, prefix) == expected


def _quantized(folder: Path, **policy) -> object:
    recipe = Recipe.model_validate({"name": policy.pop("name", "acme-8b-w4a16"),
                                    "model": {"id": str(folder)},
                                    "quantization": {"method": "rtn", "scheme": "W4A16"},
                                    "license": policy})
    return assess(recipe, folder)[1]


def _findings(verdict, level: str) -> list[str]:
    return [f"{f.reason} [{f.cite}]" for f in verdict.findings if f.level == level]


def test_a_quantization_without_the_prefix_warns_with_the_clause(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "llama", {"license": "llama3.1"})
    verdict = _quantized(folder, intended_use="commercial", distribution="public")
    assert not fails(verdict)
    warned = [w for w in _findings(verdict, "warn") if "must begin with 'Llama'" in w]
    assert warned and "judgement call" in warned[0] and "s.1.b.i" in warned[0]
    copy = verdict_for(folder, intended_use="commercial", distribution="public")
    assert any("must begin with 'Llama'" in f for f in fails(copy))  # an unchanged copy fails


def test_a_near_miss_name_warns_instead_of_passing(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "llama", {"license": "llama3.1"})
    verdict = verdict_for(folder, intended_use="commercial", distribution="public",
                          artifact_name="llama3.1-8b-acme")
    near = [w for w in _findings(verdict, "warn") if "close to, but not" in w]
    assert near and "s.1.b.i" in near[0]
    assert not fails(verdict)
    exact = verdict_for(folder, intended_use="commercial", distribution="public",
                        artifact_name="Llama-3.1-8B-Acme")
    assert exact.status == "pass"


def test_a_silent_derivative_carries_its_known_parents_terms(tmp_path, card_mirror) -> None:
    card_mirror("meta-llama/Llama-3.1-8B", {"license": "llama3.1"})
    card_mirror("mistralai/Mistral-7B-v0.1", {"license": "apache-2.0"})
    child = write_card(tmp_path / "merge", {
        "base_model": ["meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1"]})
    verdict = verdict_for(child, intended_use="research", distribution="none")
    assert verdict.unknown == [] and verdict.status == "warn"
    assert verdict.licenses == ["apache-2.0", "llama3.1"]
    assert any("declares no license of its own" in w for w in _findings(verdict, "warn"))
    assert any("Llama" in o["text"] or o["license"] == "llama3.1"
               for o in verdict.obligations)  # the parent's obligations come along


def test_a_silent_derivative_of_an_unknown_parent_stays_unknown(tmp_path, card_mirror) -> None:
    card_mirror("meta-llama/Llama-3.1-8B", {"license": "llama3.1"})
    child = write_card(tmp_path / "merge", {
        "base_model": ["meta-llama/Llama-3.1-8B", "org/absent"]})
    verdict = verdict_for(child, intended_use="research", distribution="none")
    assert str(child) in verdict.unknown and "org/absent" in verdict.unknown
    assert verdict.status == "fail"
