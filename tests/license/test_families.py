"""The most-downloaded base-model families (families.yaml): each representative card resolves to
its license and gives the expected verdict for a quantized derivative under both policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from quench.license.inherit import walk
from quench.license.kb import knowledge_base
from quench.license.policy import evaluate
from tests.license.conftest import write_card

FAMILIES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "families.yaml").read_text())
POLICIES = {"commercial_public": ("commercial", "public"),
            "research_internal": ("research", "internal")}


def test_at_least_forty_families_each_with_a_source() -> None:
    assert len(FAMILIES) >= 40
    assert len({f["family"] for f in FAMILIES}) == len(FAMILIES)
    for row in FAMILIES:
        assert row["sources"] and all(s.startswith("https://") for s in row["sources"]), row
        assert row["license"] in knowledge_base(), row


@pytest.mark.parametrize("row", FAMILIES, ids=[f["family"] for f in FAMILIES])
def test_family_verdict(row: dict[str, Any], tmp_path: Path, card_mirror) -> None:
    folder = write_card(tmp_path / "model", row["card"], row.get("files"))
    declared = {row["model"]: row["declared"]} if "declared" in row else {}
    lineage = walk(folder, row["model"], declared)
    assert lineage.base.licenses == [row["license"]], [e.__dict__ for e in lineage.base.evidence]
    for key, (use, distribution) in POLICIES.items():
        verdict = evaluate(lineage, use, distribution, False,
                           row.get("artifact", "acme-quant-w4a16"), quantized=True)
        shown = [f"{f.level}: {f.reason} [{f.cite}]" for f in verdict.findings]
        assert not verdict.unknown, (key, shown)
        assert verdict.status == row[key], (key, shown)
        if "obligation" in row:
            assert any(row["obligation"] in o["text"] for o in verdict.obligations), (
                verdict.obligations)
