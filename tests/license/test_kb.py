"""The knowledge base: every entry cites its clauses, and the names cards use map onto it."""

from __future__ import annotations

import pytest

from quench.license.assess import assess
from quench.license.detect import detect_folder
from quench.license.kb import by_link, identify_text, knowledge_base, normalize
from quench.recipe.schema import Recipe

from .conftest import write_card

CARD_NAMES = {
    "apache-2.0": "apache-2.0", "MIT": "mit", "bsd-3-clause": "bsd-3-clause", "BSD": "bsd-3-clause",
    "gpl-3.0": "gpl-3.0", "AGPL-3.0-only": "agpl-3.0", "llama2": "llama2", "llama3": "llama3",
    "llama3.1": "llama3.1", "llama3.2": "llama3.2", "llama3.3": "llama3.3", "llama4": "llama4",
    "gemma": "gemma", "mrl": "mrl", "qwen": "qwen", "tongyi-qianwen": "tongyi-qianwen",
    "qwen-research": "qwen-research", "deepseek": "deepseek", "openrail": "openrail",
    "bigscience-openrail-m": "openrail", "creativeml-openrail-m": "openrail",
    "openrail++": "openrail++", "cc-by-4.0": "cc-by-4.0", "CC-BY-SA-4.0": "cc-by-sa-4.0",
    "cc-by-nc-4.0": "cc-by-nc-4.0", "cc-by-nc-sa-4.0": "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0": "cc-by-nd-4.0", "cc-by-nc-nd-4.0": "cc-by-nc-nd-4.0",
    # license / license_name spellings on the cards of the most-downloaded base-model families
    "Apache License Version 2.0": "apache-2.0",  # Mistral 7B, Qwen2.5/3, Falcon 7B/40B, OLMo...
    "mit": "mit", "MIT License": "mit",  # Phi, DeepSeek-V3/R1
    "gemma-terms-of-use": "gemma", "bigcode-openrail-m": "openrail",  # Gemma; StarCoder
    "tongyi-qianwen-license-agreement": "tongyi-qianwen",  # Qwen-7B/14B (Qwen 1)
    "Qwen LICENSE AGREEMENT": "qwen",  # Qwen2.5-72B
    "bigscience-bloom-rail-1.0": "bigscience-bloom-rail-1.0",  # BLOOM
    "flux-1-dev-non-commercial-license": "flux-1-dev-non-commercial-license",  # FLUX.1 [dev]
    "stabilityai-ai-community": "stabilityai-ai-community",  # SD 3/3.5, SDXL Turbo, SVD
    "nvidia-open-model-license": "nvidia-open-model-license",  # Nemotron, Cosmos
    "Falcon 2 11B TII License": "falcon-2-11b",  # Falcon 2
    "yi-license": "yi-license",  # Yi-6B/34B (2023)
    "Databricks Open Model License": "databricks-open-model",  # DBRX
}


def test_every_entry_cites_its_clauses():
    for lic in knowledge_base().values():
        assert lic.use_cite and lic.redistribution_cite, lic.id
        assert not lic.share_alike or lic.share_alike_cite, lic.id
        assert all(o.cite for o in lic.obligations), lic.id
        assert lic.markers, f"{lic.id}: no text markers to recognize a LICENSE file by"


@pytest.mark.parametrize(("name", "expected"), CARD_NAMES.items())
def test_card_license_names_normalize(name, expected):
    assert normalize(name) == expected


def test_unknown_names_stay_unknown():
    assert normalize("other") is None and normalize("proprietary") is None


def test_license_texts_are_recognized():
    apache = knowledge_base()["apache-2.0"].full_text()
    assert apache and identify_text(apache) == "apache-2.0"
    assert identify_text("Attribution-NonCommercial-ShareAlike 4.0 International\n") == (
        "cc-by-nc-sa-4.0")
    assert identify_text("GNU AFFERO GENERAL PUBLIC LICENSE\n Version 3, 19 November 2007") == (
        "agpl-3.0")
    assert identify_text("some text with no license in it") is None


def test_bundled_model_license_from_mirror_provenance(tiny_model):
    found = detect_folder(tiny_model, "raincandy-u/TinyStories-656K")
    assert found.licenses == ["apache-2.0"]
    assert found.evidence[0].source.startswith("SOURCE.md")


NEW_LICENSE_TEXTS = {  # the opening lines of each license as published
    "FLUX.1 [dev] Non-Commercial License\nBlack Forest Labs, Inc. (\u201cwe\u201d or "
    "\u201cour\u201d or \u201cCompany\u201d) is pleased to make available": (
        "flux-1-dev-non-commercial-license"),
    "STABILITY AI COMMUNITY LICENSE AGREEMENT\n\nLast Updated: July 5, 2024": (
        "stabilityai-ai-community"),
    "NVIDIA Open Model License Agreement\nThis NVIDIA Open Model License Agreement (the "
    "\u201cAgreement\u201d)": "nvidia-open-model-license",
    "BigScience RAIL License v1.0\ndated May 19, 2022\n ... Attachment A\nUse Restrictions": (
        "bigscience-bloom-rail-1.0"),
    "Falcon 2 11B TII License Version 1.0\n\nMay 2024": "falcon-2-11b",
    "Qwen RESEARCH LICENSE AGREEMENT\n\nQwen RESEARCH LICENSE AGREEMENT Release Date: "
    "September 19, 2024": "qwen-research",
    "Qwen LICENSE AGREEMENT\n \nQwen LICENSE AGREEMENT Release Date: September 19, 2024": "qwen",
    "Tongyi Qianwen LICENSE AGREEMENT\n\nTongyi Qianwen Release Date: August 3, 2023": (
        "tongyi-qianwen"),
    "Databricks Open Model License\n\nBy using, reproducing, modifying, distributing, performing "
    "or displaying\nany portion or element of DBRX": "databricks-open-model",
    "Yi Series Models License Agreement\n  Version: 1.0\n  Date of Release: November 1, 2023": (
        "yi-license"),
}


@pytest.mark.parametrize(("text", "expected"), NEW_LICENSE_TEXTS.items(),
                         ids=list(NEW_LICENSE_TEXTS.values()))
def test_new_license_texts_are_recognized(text, expected):
    assert identify_text(text) == expected


def test_card_license_links_are_recognized():
    assert by_link("https://huggingface.co/Qwen/Qwen2-72B-Instruct/blob/main/LICENSE") == (
        "tongyi-qianwen")
    assert by_link("https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/LICENSE") == "qwen"
    assert by_link("https://www.nvidia.com/en-us/agreements/enterprise-software/"
                   "nvidia-open-model-license/") == "nvidia-open-model-license"
    assert by_link("https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md") == (
        "flux-1-dev-non-commercial-license")


def _verdict(folder, **policy):
    recipe = Recipe.model_validate({"name": policy.pop("name", "acme-8b-w4a16"),
                                    "model": {"id": str(folder)}, "license": policy})
    return assess(recipe, folder)[1]


def _decided(verdict) -> str:
    return " | ".join(f"{f.level}: {f.reason} [{f.cite}]" for f in verdict.findings)


VERDICTS = [
    # (card front matter, policy, status, a phrase of the deciding finding, an obligation cite)
    ({"license": "other", "license_name": "flux-1-dev-non-commercial-license"},
     {"intended_use": "commercial", "distribution": "none"}, "fail",
     "FLUX.1 [dev] Non-Commercial License s.2.b", "FLUX.1 [dev] Non-Commercial License s.8.a-d"),
    ({"license": "other", "license_name": "flux-1-dev-non-commercial-license"},
     {"intended_use": "research", "distribution": "public"}, "pass", "allowed",
     "FLUX.1 [dev] Non-Commercial License s.3.b-c"),
    ({"license": "other", "license_name": "stabilityai-ai-community", "license_link": "LICENSE.md"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "Stability AI Community License s.III (Commercial Use License)"),
    ({"license": "other", "license_name": "nvidia-open-model-license"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "NVIDIA Open Model License s.3.1"),
    ({"license": "bigscience-bloom-rail-1.0"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "BigScience RAIL License v1.0 para. 5 and Attachment A"),
    ({"license": "other", "license_name": "qwen-research"},
     {"intended_use": "commercial", "distribution": "none"}, "fail",
     "Qwen Research License s.2.a", "Qwen Research License s.5.c and s.7.b"),
    ({"license": "other", "license_name": "qwen-research"},
     {"intended_use": "research", "distribution": "public"}, "pass", "allowed",
     "Qwen Research License s.4.b"),
    ({"license": "other", "license_name": "tongyi-qianwen"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "Tongyi Qianwen License s.4 (Restrictions): if you are commercially using the Materials, "
     "and your product or service has more than 100 million monthly active users, You shall "
     "request a license from Us"),
    ({"license": "other", "license_name": "Falcon 2 11B TII License"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "Falcon 2 11B TII License s.6 (Publication)"),
    ({"license": "other", "license_name": "yi-license", "license_link": "LICENSE"},
     {"intended_use": "commercial", "distribution": "none"}, "fail",
     "Yi Series Models License Agreement v1.0 s.2",
     "Yi Series Models License Agreement v1.0 s.2(1)-(3)"),
    ({"license": "other", "license_name": "databricks-open-model-license"},
     {"intended_use": "commercial", "distribution": "public"}, "pass", "allowed",
     "Databricks Open Model License s.2.3 (Use Restrictions)"),
]


@pytest.mark.parametrize(("front", "policy", "status", "phrase", "cite"), VERDICTS,
                         ids=[f"{v[0].get('license_name', v[0]['license'])}-{v[1]['intended_use']}"
                              for v in VERDICTS])
def test_new_license_verdicts(tmp_path, card_mirror, front, policy, status, phrase, cite):
    verdict = _verdict(write_card(tmp_path / "model", front), **policy)
    assert verdict.status == status, _decided(verdict)
    assert any(phrase in f"{f.reason} [{f.cite}]" for f in verdict.findings if f.level == status), (
        _decided(verdict))
    assert cite in {o["cite"] for o in verdict.obligations}


def test_notices_of_new_licenses_reach_the_verdict(tmp_path, card_mirror):
    stability = _verdict(write_card(tmp_path / "sd", {
        "license": "other", "license_name": "stabilityai-ai-community"}),
        intended_use="commercial", distribution="public")
    assert "Powered by Stability AI" in stability.notices
    flux = _verdict(write_card(tmp_path / "flux", {
        "license": "other", "license_name": "flux-1-dev-non-commercial-license"}),
        intended_use="research", distribution="public")
    assert any(n.startswith("The FLUX.1 [dev] Model is licensed by Black Forest Labs")
               for n in flux.notices)
    qwen = _verdict(write_card(tmp_path / "qwen", {"license": "other", "license_name": "qwen"}),
                    intended_use="commercial", distribution="public")
    assert qwen.notices == [
        "Qwen is licensed under the Qwen LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. "
        "All Rights Reserved."]
    assert "Qwen License s.5.b" in {o["cite"] for o in qwen.obligations}


@pytest.mark.parametrize(("lic", "cite"), [
    ("llama2", "Llama 2 Community License s.5.c and s.6 (Term and Termination)"),
    ("llama3", "Meta Llama 3 Community License s.5.c and s.6 (Term and Termination)"),
    ("llama3.1", "Llama 3.1 Community License s.5.c and s.6 (Term and Termination)"),
    ("llama3.2", "Llama 3.2 Community License s.5.c and s.6 (Term and Termination)"),
    ("llama3.3", "Llama 3.3 Community License s.5.c and s.6 (Term and Termination)"),
    ("llama4", "Llama 4 Community License s.5.c and s.6 (Term and Termination)"),
])
def test_llama_termination_on_litigation_applies_to_use(tmp_path, card_mirror, lic, cite):
    assert any(o.cite == cite and o.when == "use" for o in knowledge_base()[lic].obligations)
    verdict = _verdict(write_card(tmp_path / "model", {"license": lic}),
                       intended_use="research", distribution="none")
    assert cite in {o["cite"] for o in verdict.obligations}


ADDED_CARD_NAMES = {  # license / license_name spellings of the families added for issue 16 item 5
    "mnpl": "mnpl", "MNPL-0.1": "mnpl",  # Codestral
    "falcon-llm-license": "falcon-llm-license",  # Falcon 3, Falcon-H1
    "glm-4": "glm-4", "jamba-open-model-license": "jamba-open-model-license",
    "c4ai-cc-by-nc-license": "c4ai-cc-by-nc-4.0-aup",
}


@pytest.mark.parametrize(("name", "expected"), ADDED_CARD_NAMES.items())
def test_added_card_names_normalize(name, expected):
    assert normalize(name) == expected


def test_ambiguous_modified_mit_is_not_taken_for_kimi():
    assert normalize("modified-mit") is None  # MiniMax uses the same name for another text
    minimax = ("Permission is hereby granted, free of charge, ... The above copyright notice and "
               "this permission notice shall be included in all copies ... Our only modification "
               "is that, if the Software ... you shall prominently display \"MiniMax")
    assert identify_text(minimax) == "minimax-modified-mit"  # never plain MIT, never Kimi's
    assert by_link("https://github.com/MiniMax-AI/MiniMax-M2.5/blob/main/LICENSE") == (
        "minimax-modified-mit")
    assert by_link("https://huggingface.co/moonshotai/Kimi-K2-Thinking/blob/main/LICENSE") == (
        "kimi-k2-modified-mit")


ADDED_LICENSE_TEXTS = {  # opening phrases of each license as published (the file decides)
    "OPT-175B LICENSE AGREEMENT\n\nThis License Agreement (as may be amended": "opt-175b",
    "FALCON 180B TII LICENSE VERSION 1.0\nSeptember 2023\nfalconllm.tii.ae": "falcon-180b",
    "# Mistral AI Non-Production License\n": "mnpl",
    "Permission is hereby granted, free of charge, ... The above copyright notice and this "
    "permission notice shall be included in all copies ... Our only modification part is that, "
    "if the Software ... you shall prominently display \"Kimi K2\" on the user interface": (
        "kimi-k2-modified-mit"),
    "Creative Commons Attribution-NonCommercial 4.0 International Public License with "
    "Acceptable Use Addendum By exercising the Licensed Rights": "c4ai-cc-by-nc-4.0-aup",
}


@pytest.mark.parametrize(("text", "expected"), ADDED_LICENSE_TEXTS.items(),
                         ids=list(ADDED_LICENSE_TEXTS.values()))
def test_added_license_texts_are_recognized(text, expected):
    assert identify_text(text) == expected


def test_plain_mit_and_cc_by_nc_texts_stay_themselves():
    assert identify_text("MIT License\n\nPermission is hereby granted, free of charge, ... The "
                         "above copyright notice and this permission notice shall be included "
                         "in all copies") == "mit"
    assert identify_text("Attribution-NonCommercial 4.0 International\n") == "cc-by-nc-4.0"


@pytest.mark.parametrize(("link", "expected"), [
    ("https://mistral.ai/licences/MNPL-0.1.md", "mnpl"),
    ("https://falconllm.tii.ae/falcon-terms-and-conditions.html", "falcon-llm-license"),
    ("https://huggingface.co/THUDM/glm-4-9b/blob/main/LICENSE", "glm-4"),
    ("https://www.ai21.com/licenses/jamba-open-model-license", "jamba-open-model-license"),
    ("https://cohere.com/c4ai-cc-by-nc-license", "c4ai-cc-by-nc-4.0-aup"),
    ("https://huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/LICENSE",
     "kimi-k2-modified-mit"),
    ("https://huggingface.co/spaces/tiiuae/falcon-180b-license/blob/main/LICENSE.txt",
     "falcon-180b"),
])
def test_added_license_links_are_recognized(link, expected):
    assert by_link(link) == expected


def test_cohere_gated_prompt_adds_the_aup_and_supersedes_plain_cc_by_nc(tmp_path, card_mirror):
    folder = write_card(tmp_path / "command-r", {
        "license": "cc-by-nc-4.0", "extra_gated_prompt": (
            "By submitting this form, you agree to the [License Agreement]"
            "(https://cohere.com/c4ai-cc-by-nc-license) and acknowledge ...")})
    found = detect_folder(folder, "CohereForAI/c4ai-command-r-plus")
    assert {e.license for e in found.evidence} >= {"cc-by-nc-4.0", "c4ai-cc-by-nc-4.0-aup"}
    assert found.licenses == ["c4ai-cc-by-nc-4.0-aup"]  # one license, no "sources disagree"
    verdict = _verdict(folder, intended_use="research", distribution="internal")
    assert verdict.status == "pass", _decided(verdict)
    assert any("C4AI Acceptable Use Policy" in o["text"] for o in verdict.obligations)
    commercial = _verdict(folder, intended_use="commercial", distribution="none")
    assert commercial.status == "fail", _decided(commercial)


def test_every_supersedes_names_a_kb_entry():
    kb = knowledge_base()
    assert all(s in kb for lic in kb.values() for s in lic.supersedes)
