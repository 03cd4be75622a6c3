"""The corpus of real card shapes (corpus.yaml): every case's verdict for a quantized artifact
under commercial/public and research/internal use, and the obligations it must carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from quench.license.inherit import walk
from quench.license.policy import evaluate
from tests.license.conftest import write_card

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text())
POLICIES = {"commercial_public": ("commercial", "public"),
            "research_internal": ("research", "internal")}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any], tmp_path: Path, card_mirror) -> None:
    for hub_id, card in (case.get("parents") or {}).items():
        card_mirror(hub_id, card)
    folder = write_card(tmp_path / "model", case["card"], case.get("files"))
    lineage = walk(folder, case["model"], case.get("declared", {}), case.get("base_models"))
    for key, (use, distribution) in POLICIES.items():
        verdict = evaluate(lineage, use, distribution, False, case["artifact"], quantized=True)
        shown = [f"{f.level}: {f.reason} [{f.cite}]" for f in verdict.findings]
        assert verdict.status == case[key], (key, shown)
        if key == "commercial_public":
            if "phrase" in case:
                assert any(case["phrase"] in s for s in shown), shown
            for notice in case.get("notices", []):
                assert any(notice in n for n in verdict.notices), verdict.notices
            for text in case.get("obligations", []):
                assert any(text in o["text"] for o in verdict.obligations), verdict.obligations
