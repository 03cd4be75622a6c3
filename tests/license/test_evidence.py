"""Evidence beyond the `license:` key: the model's name and tags, the gated prompt, and the
lineage a recipe declares for a repackage that names no base_model."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.license.assess import assess
from quench.license.families import family_of, repackaging_markers
from quench.license.inherit import walk
from quench.license.policy import evaluate
from tests.license.conftest import write_card
from tests.license.test_cases import fails, recipe


@pytest.mark.parametrize(("name", "family"), [
    ("TheBloke/Llama-2-7B-Chat-GGUF", "llama2"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1"),
    ("acme/llama3.2-1b-merge", "llama3.2"),
    ("acme/Meta-Llama-3-70B-AWQ", "llama3"),
    ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "llama3.3"),
    ("google/gemma-2-9b-it", "gemma"),
    ("acme/llama-30b", None),  # LLaMA 1, not a Llama 3
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", None),
    ("mistralai/Mistral-7B-v0.1", None),  # several Mistral licenses: the name says nothing
])
def test_family_of_a_name(name: str, family: str | None) -> None:
    found = family_of([name])
    assert (found[0] if found else None) == family


def test_repackaging_markers() -> None:
    assert repackaging_markers(["TheBloke/Llama-2-7B-Chat-GGUF", "gptq", "text-generation"]) \
        == ["gguf", "gptq"]
    assert repackaging_markers(["acme/Mergekit-tools", "awqward"]) == []


def _assess(folder: Path, model: str, **policy):
    """The verdict for a local card read under the hub id `model` (as a mirror would)."""
    r = recipe(model, **policy)
    lineage = walk(folder, model, r.license.declared, r.license.base_models)
    return evaluate(lineage, r.license.intended_use, r.license.distribution,
                    r.license.allow_unknown, r.name, quantized=True)


def test_a_permissive_label_on_a_llama2_repackage_is_never_a_silent_pass(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "gguf", {"license": "mit", "tags": ["gguf", "llama"]})
    model = "TheBloke/Llama-2-7B-Chat-GGUF"
    commercial = _assess(folder, model, intended_use="commercial", distribution="public")
    assert commercial.status == "fail"
    assert "llama2" in commercial.licenses  # the name's family joins the evidence
    assert any("looks like a derivative of the llama2 family (gguf in its name or tags)" in f
               and "license.base_models" in f for f in fails(commercial))
    assert any("sources disagree" in f.reason for f in commercial.findings)
    research = _assess(folder, model, intended_use="research", distribution="none")
    assert research.status == "warn" and not fails(research)


def test_declaring_the_lineage_lifts_the_repackage_finding(tmp_path, card_mirror) -> None:
    card_mirror("meta-llama/Llama-2-7b-chat-hf", {"license": "llama2"})
    folder = write_card(tmp_path / "gguf", {"license": "mit"})
    model = "TheBloke/Llama-2-7B-Chat-GGUF"
    verdict = _assess(folder, model, intended_use="commercial", distribution="public",
                      base_models={model: ["https://huggingface.co/meta-llama/Llama-2-7b-chat-hf"]})
    assert not any("looks like a derivative" in f.reason for f in verdict.findings)
    assert "llama2" in verdict.licenses  # now through the parent's own card
    declared = _assess(folder, model, intended_use="commercial", distribution="public",
                       declared={model: "llama2"})
    assert not any("looks like a derivative" in f.reason for f in declared.findings)


def test_a_llama2_label_on_a_llama3_merge_is_caught_offline(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "merge", {"license": "llama2", "tags": ["merge"]})
    verdict = _assess(folder, "acme/Llama-3-8B-merge", intended_use="research",
                      distribution="none")
    assert verdict.licenses == ["llama2", "llama3"]
    assert any("sources disagree (llama2, llama3)" in f.reason for f in verdict.findings)


def test_a_name_alone_never_decides_a_license(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "bare", {})
    verdict = _assess(folder, "acme/Llama-2-7B-finetune", intended_use="research",
                      distribution="none")
    assert verdict.licenses == [] and verdict.status == "fail"
    assert any("suggest the llama2 family; not assumed" in f.reason for f in verdict.findings)


def test_the_gated_prompt_is_evidence(tmp_path: Path) -> None:
    prompt = "### LLAMA 2 COMMUNITY LICENSE AGREEMENT\nBy clicking you agree..."
    folder = write_card(tmp_path / "gated", {"license": "apache-2.0",
                                             "extra_gated_prompt": prompt})
    _, verdict = assess(recipe(str(folder), intended_use="research"), folder)
    assert verdict.licenses == ["apache-2.0", "llama2"]
    assert any("sources disagree" in f.reason for f in verdict.findings)


def test_a_second_front_matter_block_is_heard(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n---\nlicense: llama2\n"
                                      "---\n\n# a merged card\n---\nnot: front matter\n---\n")
    _, verdict = assess(recipe(str(folder), intended_use="research"), folder)
    assert verdict.licenses == ["apache-2.0", "llama2"]
    assert any("sources disagree" in f.reason for f in verdict.findings)


def _gguf(path: Path, name: str, license_id: str, base_repo_url: str | None = None) -> Path:
    """A one-tensor GGUF file whose header says `general.license` (and a base model's URL)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_string("general.license", license_id)
    if base_repo_url:
        writer.add_uint32("general.base_model.count", 1)
        writer.add_string("general.base_model.0.repo_url", base_repo_url)
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_metadata_is_evidence_and_its_base_model_is_walked(tmp_path: Path,
                                                                card_mirror) -> None:
    """general.license and general.base_model.* of a GGUF file: the label is cross-checked
    against the name's family, and a base model named only in the header is walked."""
    (tmp_path / "a").mkdir()
    bare = _gguf(tmp_path / "a" / "llama-2-7b-chat.Q4_K_M.gguf", "Llama 2 7B Chat", "mit")
    lineage = walk(bare, "someone/Llama-2-7B-Chat-GGUF", {})
    assert lineage.base.evidence[0].source == "GGUF metadata general.license"
    verdict = evaluate(lineage, "commercial", "public", False, "acme-7b", quantized=True)
    assert verdict.status == "fail"
    assert any("looks like a derivative of the llama2 family" in f for f in fails(verdict))
    card_mirror("meta-llama/Llama-2-7b-chat-hf", {"license": "llama2"})
    (tmp_path / "b").mkdir()
    based = _gguf(tmp_path / "b" / "llama-2-7b-chat.Q4_K_M.gguf", "Llama 2 7B Chat", "llama2",
                  "https://huggingface.co/meta-llama/Llama-2-7b-chat-hf")
    lineage = walk(based, "someone/Llama-2-7B-Chat-GGUF", {})
    assert [m.model for m in lineage.ancestors] == ["meta-llama/Llama-2-7b-chat-hf"]
    verdict = evaluate(lineage, "commercial", "public", False, "acme-7b", quantized=True)
    assert verdict.status == "pass", fails(verdict)
