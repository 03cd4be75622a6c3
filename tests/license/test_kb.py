"""The knowledge base: every entry cites its clauses, and the names cards use map onto it."""

from __future__ import annotations

import pytest

from pipeline.license.detect import detect_folder
from pipeline.license.kb import identify_text, knowledge_base, normalize

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
