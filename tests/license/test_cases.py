"""The license policy on a table of small model cards: what passes, warns and fails, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.license.assess import assess
from quench.recipe.schema import Recipe

from .conftest import write_card


def recipe(model: str, **policy) -> Recipe:
    return Recipe.model_validate({"name": policy.pop("name", "acme-8b-w4a16"),
                                  "model": {"id": model}, "license": policy})


def verdict_for(folder: Path, **policy):
    _, verdict = assess(recipe(str(folder), **policy), folder)
    return verdict


def fails(verdict) -> list[str]:
    return [f"{f.reason} [{f.cite}]" for f in verdict.findings if f.level == "fail"]


CASES = [
    # (case, card front matter, policy, expected status, a phrase the deciding finding holds)
    ("apache base, commercial, public", {"license": "apache-2.0"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed"),
    ("llama3.1 base, commercial, Llama-prefixed name", {"license": "llama3.1"},
     {"intended_use": "commercial", "distribution": "public",
      "artifact_name": "Llama-3.1-8B-Acme-W4A16"}, "pass", "allowed"),
    ("llama3.1 base, public, name without Llama", {"license": "llama3.1"},
     {"intended_use": "commercial", "distribution": "public"}, "fail", "s.1.b.i"),
    ("llama3.1 base, internal, name without Llama", {"license": "llama3.1"},
     {"intended_use": "commercial", "distribution": "internal"}, "warn", "must begin with 'Llama'"),
    ("cc-by-nc-4.0 base, commercial", {"license": "cc-by-nc-4.0"},
     {"intended_use": "commercial"}, "fail", "CC BY-NC 4.0 s.2(a)(1)"),
    ("cc-by-nc-4.0 base, research", {"license": "cc-by-nc-4.0"},
     {"intended_use": "research", "distribution": "public"}, "pass", "allowed"),
    ("cc-by-nd-4.0 base, public", {"license": "cc-by-nd-4.0"},
     {"intended_use": "research", "distribution": "public"}, "fail", "not Share, Adapted"),
    ("license: other + license_name", {"license": "other", "license_name": "mistral research "
     "license"}, {"intended_use": "commercial"}, "fail", "Research Purposes"),
    ("no license anywhere", {}, {}, "fail", "license unknown"),
    ("no license, unknown allowed", {}, {"allow_unknown": True}, "warn", "license unknown"),
    ("unrecognized license string", {"license": "acme-proprietary-7"}, {}, "fail",
     "license unknown"),
]


@pytest.mark.parametrize(("case", "front", "policy", "status", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_policy_table(tmp_path, card_mirror, case, front, policy, status, phrase):
    folder = write_card(tmp_path / "model", front)
    verdict = verdict_for(folder, **policy)
    assert verdict.status == status, verdict.to_json()["findings"]
    deciding = [f for f in verdict.findings if f.level == status]
    assert any(phrase in f"{f.reason} [{f.cite}]" for f in deciding), deciding


def test_llama31_obligations_and_notices(tmp_path, card_mirror):
    folder = write_card(tmp_path / "model", {"license": "llama3.1"})
    verdict = verdict_for(folder, intended_use="commercial", distribution="public",
                          artifact_name="Llama-3.1-Acme")
    assert verdict.commercial_ok is True
    assert "Built with Llama" in verdict.notices
    cites = {o["cite"] for o in verdict.obligations}
    assert {"Llama 3.1 Community License s.1.b.i", "Llama 3.1 Community License s.1.b.iii",
            "Llama 3.1 Community License s.2 (Additional Commercial Terms)"} <= cites


def test_merge_of_research_and_noncommercial_parents_fails(tmp_path, card_mirror):
    card_mirror("mistralai/Research-7B", {"license": "other", "license_name": "mrl",
                                          "license_link": "https://mistral.ai/licenses/MRL-0.1.md"})
    card_mirror("someone/nc-7b", {"license": "cc-by-nc-4.0"})
    merge = write_card(tmp_path / "merge", {
        "license": "other", "license_name": "mrl",
        "base_model": ["mistralai/Research-7B", "someone/nc-7b"], "base_model_relation": "merge"})
    commercial = verdict_for(merge, intended_use="commercial", distribution="none")
    assert commercial.status == "fail" and commercial.commercial_ok is False
    assert any("cc-by-nc-4.0 allows non-commercial use only" in f for f in fails(commercial))
    assert any("mrl allows research-only use only" in f for f in fails(commercial))
    public = verdict_for(merge, intended_use="research", distribution="public")
    assert public.status == "fail"
    assert any("each govern all use" in f and "Mistral AI Research License s.3.2" in f
               for f in fails(public))


def test_child_cannot_shed_a_parents_restrictions(tmp_path, card_mirror):
    card_mirror("someone/nc-base", {"license": "cc-by-nc-4.0"})
    child = write_card(tmp_path / "child",
                       {"license": "apache-2.0", "base_model": "someone/nc-base"})
    verdict = verdict_for(child, intended_use="commercial")
    assert verdict.licenses == ["apache-2.0", "cc-by-nc-4.0"]
    assert verdict.status == "fail"
    assert any("the parent's terms still apply" in f.reason for f in verdict.findings)


def test_gpl_with_llama_parent_is_incompatible(tmp_path, card_mirror):
    card_mirror("meta-llama/Llama-3.1-8B", {"license": "llama3.1"})
    child = write_card(tmp_path / "child", {"license": "gpl-3.0",
                                            "base_model": "meta-llama/Llama-3.1-8B"})
    verdict = verdict_for(child, intended_use="research", distribution="none")
    assert any("incompatible parents: gpl-3.0" in f for f in fails(verdict))


def test_license_file_text_is_recognized_and_disagreement_reported(tmp_path, card_mirror):
    text = "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, 2024\n"
    folder = write_card(tmp_path / "model", {"license": "apache-2.0"}, {"LICENSE": text})
    verdict = verdict_for(folder, artifact_name="Llama-x")
    assert verdict.licenses == ["apache-2.0", "llama3.1"]
    assert any("sources disagree" in f.reason for f in verdict.findings)


def test_parent_not_available_offline_is_unknown(tmp_path, card_mirror):
    child = write_card(tmp_path / "child", {"license": "apache-2.0", "base_model": "org/absent"})
    verdict = verdict_for(child)
    assert verdict.unknown == ["org/absent"]
    assert any("HF_HUB_OFFLINE" in f for f in fails(verdict))
    declared = verdict_for(child, declared={"org/absent": "mit"})
    assert declared.status == "pass" and declared.licenses == ["apache-2.0", "mit"]


def test_config_hint_is_reported_never_assumed(tmp_path, card_mirror):
    folder = write_card(tmp_path / "model", None)
    verdict = verdict_for(folder)
    assert verdict.licenses == [] and verdict.commercial_ok is None
    assert any("model_type 'llama'" in f for f in fails(verdict))
