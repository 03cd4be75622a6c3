"""docs/reference/ is generated from the code (scripts/gen_reference.py): a committed page that
differs from what the code generates, or a documented field without a description, fails here."""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel, Field

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_reference.py"
FIX = "run `make docs-reference` (python scripts/gen_reference.py) and commit docs/reference/"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(gen: ModuleType) -> dict[str, str]:
    return gen.pages()


def test_every_documented_field_has_a_description(gen: ModuleType) -> None:
    missing = gen.missing_descriptions()
    assert not missing, f"fields without a Field(description=...): {', '.join(missing)}"


def test_the_committed_pages_are_what_the_code_generates(gen: ModuleType,
                                                         generated: dict[str, str]) -> None:
    assert set(generated) == {"recipe.md", "sweep.md", "cli.md", "compatibility.md"}
    stale = gen.stale_pages(generated)
    diffs = []
    for name in stale:
        path = gen.OUT_DIR / name
        old = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        diff = difflib.unified_diff(old, generated[name].splitlines(), f"docs/reference/{name}",
                                    "generated", lineterm="", n=1)
        diffs.append("\n".join(list(diff)[:30]))
    assert not stale, (f"docs/reference/ is out of date ({', '.join(stale)}): {FIX}\n"
                       + "\n".join(diffs))


def test_pages_start_with_the_generated_note_and_one_title(generated: dict[str, str]) -> None:
    for name, text in generated.items():
        lines = text.splitlines()
        assert lines[0].startswith("<!-- Generated from ") and "do not edit by hand" in lines[0]
        titles = [line for line in lines if line.startswith("# ")]
        assert len(titles) == 1, (name, titles)


def test_a_field_without_a_description_is_named(gen: ModuleType) -> None:
    class Undocumented(BaseModel):
        documented: int = Field(1, description="Has one.")
        bare: int = 2

    missing: list[str] = []
    gen.field_table(Undocumented, "section.", missing)
    assert len(missing) == 1 and "Undocumented.bare" in missing[0], missing


def test_a_stale_or_missing_page_is_listed(gen: ModuleType, generated: dict[str, str],
                                           tmp_path: Path) -> None:
    for name, text in generated.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert gen.stale_pages(generated, tmp_path) == []
    (tmp_path / "cli.md").write_text(generated["cli.md"] + "edited by hand\n", encoding="utf-8")
    (tmp_path / "sweep.md").unlink()
    assert gen.stale_pages(generated, tmp_path) == ["sweep.md", "cli.md"]
