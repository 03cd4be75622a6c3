#!/usr/bin/env python3
"""Writes the reference pages of docs/reference/ from the code, so they cannot drift from it.

    python scripts/gen_reference.py          # (re)writes the four pages
    python scripts/gen_reference.py --check  # exit 1 listing the pages that differ

- recipe.md: every recipe field, from the pydantic models of `quench.recipe.Recipe` (their
  `Field(description=...)` strings are the single source), with every registered method's and
  engine's options;
- sweep.md: the sweep file (`quench.sweep.spec.SweepSpec`), strategies and executors;
- cli.md: every `quench` command, from the argparse parser (`quench.cli.build_parser`);
- compatibility.md: `quench/compat/matrix.yaml` (GPUs, formats, the verdict of every cell,
  the rules with their sources).

A field without a description is an error (exit 2, naming it). The output is deterministic:
no dates, no absolute paths, a fixed terminal width for argparse. Each page is built by its
module of scripts/reference/; this file is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "scripts"):  # quench, and the reference package beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from reference.cli_page import cli_page  # noqa: E402
from reference.compat_page import compatibility_page  # noqa: E402
from reference.fields import MissingDescription, field_table  # noqa: E402
from reference.recipe_page import recipe_page  # noqa: E402
from reference.sweep_page import sweep_page  # noqa: E402

__all__ = ["OUT_DIR", "MissingDescription", "field_table", "main", "missing_descriptions",
           "pages", "stale_pages"]

OUT_DIR = ROOT / "docs" / "reference"


def pages() -> dict[str, str]:
    """Every reference page (file name -> content); MissingDescription names undocumented
    fields."""
    missing: list[str] = []
    result = {
        "recipe.md": recipe_page(missing),
        "sweep.md": sweep_page(missing),
        "cli.md": cli_page(),
        "compatibility.md": compatibility_page(),
    }
    if missing:
        raise MissingDescription(", ".join(sorted(set(missing))))
    return result


def missing_descriptions() -> list[str]:
    """Fields of the documented models that have no description (empty when all do)."""
    try:
        pages()
    except MissingDescription as exc:
        return str(exc).split(", ")
    return []


def stale_pages(generated: dict[str, str], out_dir: Path = OUT_DIR) -> list[str]:
    """The pages whose file differs from what the code generates (or is missing)."""
    stale = []
    for name, content in generated.items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale


def write_pages(generated: dict[str, str]) -> None:
    """Writes the pages that changed, naming each."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in stale_pages(generated):
        (OUT_DIR / name).write_text(generated[name], encoding="utf-8")
        print(f"wrote docs/reference/{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the pages that differ")
    args = parser.parse_args(argv)
    try:
        generated = pages()
    except MissingDescription as exc:
        print(f"error: fields without a description: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        write_pages(generated)
        return 0
    stale = stale_pages(generated)
    for name in stale:
        print(f"docs/reference/{name} differs from the code; run `make docs-reference`",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
