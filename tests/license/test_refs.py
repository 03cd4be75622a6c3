"""base_model references as real cards write them (URLs, revisions, lists) reach the parent's
card and the recipe's `license.declared` like a plain hub id."""

from __future__ import annotations

import pytest

from quench.license.refs import ModelRef, declared_for, parse_ref, parse_refs
from tests.license.conftest import write_card
from tests.license.test_cases import fails, verdict_for


@pytest.mark.parametrize(("raw", "expected"), [
    ("meta-llama/Llama-3.1-8B", ModelRef("meta-llama/Llama-3.1-8B")),
    ("  meta-llama/Llama-3.1-8B \n", ModelRef("meta-llama/Llama-3.1-8B")),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B", ModelRef("meta-llama/Llama-3.1-8B")),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B/", ModelRef("meta-llama/Llama-3.1-8B")),
    ("huggingface.co/meta-llama/Llama-3.1-8B", ModelRef("meta-llama/Llama-3.1-8B")),
    ("https://hf.co/Qwen/Qwen2.5-7B", ModelRef("Qwen/Qwen2.5-7B")),
    ("http://www.huggingface.co/models/org/name", ModelRef("org/name")),
    ("https://huggingface.co/mistralai/Mistral-7B-v0.1/tree/main",
     ModelRef("mistralai/Mistral-7B-v0.1", "main")),
    ("https://huggingface.co/org/name/blob/3f2a1b0/README.md", ModelRef("org/name", "3f2a1b0")),
    ("https://huggingface.co/org/name?library=transformers", ModelRef("org/name")),
    ("org/name@v1.0", ModelRef("org/name", "v1.0")),
    ("/local/models/x", ModelRef("/local/models/x")),
])
def test_a_reference_becomes_a_hub_id_with_its_revision(raw: str, expected: ModelRef) -> None:
    assert parse_ref(raw) == expected
    assert parse_ref(str(expected)) == expected  # the string form round-trips


def test_list_and_comma_forms_are_split_in_order_without_repeats() -> None:
    value = ["https://huggingface.co/a/x", "b/y, c/z", "a/x", " "]
    assert [str(r) for r in parse_refs(value)] == ["a/x", "b/y", "c/z"]
    assert parse_refs(None) == [] and [str(r) for r in parse_refs("a/x\nb/y")] == ["a/x", "b/y"]


def test_declared_applies_to_its_hub_id_with_or_without_a_revision() -> None:
    declared = {"org/name": "mit", "org/pinned@v2": "apache-2.0"}
    assert declared_for(declared, "org/name@main") == "mit"
    assert declared_for(declared, "org/pinned@v2") == "apache-2.0"
    assert declared_for(declared, "org/other") is None


def test_a_parent_given_as_a_url_is_found_and_its_terms_apply(tmp_path, card_mirror):
    card_mirror("meta-llama/Llama-3.1-8B", {"license": "llama3.1"})
    child = write_card(tmp_path / "child", {
        "license": "apache-2.0",
        "base_model": "https://huggingface.co/meta-llama/Llama-3.1-8B/tree/main"})
    verdict = verdict_for(child, intended_use="commercial", distribution="public")
    assert "llama3.1" in verdict.licenses  # the parent was reached through its URL
    assert verdict.unknown == []
    assert any("s.1.b.i" in f for f in fails(verdict))  # the Llama naming rule binds


def test_declared_by_hub_id_covers_a_url_parent_offline(tmp_path, card_mirror):
    child = write_card(tmp_path / "child", {
        "license": "apache-2.0", "base_model": ["https://huggingface.co/org/absent/tree/v1"]})
    assert verdict_for(child).unknown == ["org/absent@v1"]
    declared = verdict_for(child, declared={"https://huggingface.co/org/absent": "mit"})
    assert declared.status == "pass" and declared.licenses == ["apache-2.0", "mit"]
