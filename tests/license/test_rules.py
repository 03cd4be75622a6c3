"""rules.yaml: every evidence rule names the corpus cases and tests that need it, and they exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.license.test_corpus import CASES

HERE = Path(__file__).parent
RULES = yaml.safe_load((HERE / "rules.yaml").read_text())
CASE_IDS = {c["id"] for c in CASES}


@pytest.mark.parametrize("rule", RULES, ids=[r["rule"][:60] for r in RULES])
def test_every_rule_has_a_case_that_exists(rule: dict) -> None:
    assert rule.get("cases") or rule.get("tests"), rule["rule"]
    for case in rule.get("cases", []):
        assert case in CASE_IDS, case
    for ref in rule.get("tests", []):
        file, _, function = ref.partition("::")
        source = (HERE / file).read_text()
        assert re.search(rf"^def {re.escape(function)}\(", source, re.MULTILINE), ref
