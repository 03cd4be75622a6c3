"""LICENSE and NOTICE follow from the lineage: the base's own text, required notices, upstream."""

from __future__ import annotations

from quench.license.inherit import walk
from quench.license.outputs import license_text, notice_text
from quench.license.policy import evaluate

from .conftest import write_card

LLAMA_TEXT = "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nVersion Release Date: July 23, 2024\n"


def _outputs(folder, model="acme/model"):
    lineage = walk(folder, model, {})
    verdict = evaluate(lineage, "commercial", "public", False, "Llama-3.1-Acme")
    return (license_text(lineage, verdict),
            notice_text(lineage, verdict, "Llama-3.1-Acme", "weights quantized (gptq, W4A16)."))


def test_llama_base_keeps_its_license_file_and_gets_its_notices(tmp_path, card_mirror):
    folder = write_card(tmp_path / "m", {"license": "llama3.1"},
                        {"LICENSE": LLAMA_TEXT, "NOTICE": "Upstream notice line\n"})
    license_, notice = _outputs(folder)
    assert license_ == LLAMA_TEXT
    assert "Built with Llama" in notice
    assert "Llama 3.1 is licensed under the Llama 3.1 Community License" in notice
    assert "Upstream notice line" in notice and "weights quantized (gptq, W4A16)." in notice


def test_bundled_text_when_the_base_ships_none(tmp_path, card_mirror):
    license_, _ = _outputs(write_card(tmp_path / "m", {"license": "apache-2.0"}))
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in license_


def test_merge_lists_every_license_and_says_where_a_text_is_missing(tmp_path, card_mirror):
    card_mirror("org/a", {"license": "apache-2.0"})
    card_mirror("org/b", {"license": "cc-by-4.0"})
    merge = write_card(tmp_path / "merge", {"license": "apache-2.0",
                                            "base_model": ["org/a", "org/b"]})
    license_, notice = _outputs(merge)
    assert "===== Apache License 2.0 =====" in license_
    assert "===== Creative Commons Attribution 4.0 =====" in license_
    assert "creativecommons.org/licenses/by/4.0/legalcode" in license_
    assert "Derived from org/a (apache-2.0)." in notice and "Derived from org/b" in notice
