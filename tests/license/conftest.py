"""Small model folders with hand-written model cards, and a mirror that holds the parents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


def write_card(folder: Path, front: dict | None, files: dict[str, str] | None = None) -> Path:
    """A model folder with README.md front matter (and extra files such as LICENSE)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "config.json").exists():
        (folder / "config.json").write_text('{"model_type": "llama"}')
    body = "# a model\n"
    if front is not None:
        body = f"---\n{yaml.safe_dump(front)}---\n\n{body}"
    for name, text in {"README.md": body, **(files or {})}.items():
        (folder / name).unlink(missing_ok=True)  # never write through a link to shared files
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def card_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Writes parents into a temporary mirror ($QUENCH_MIRROR/models/<org>/<name>), offline."""
    mirror = tmp_path / "mirror"
    (mirror / "models").mkdir(parents=True)
    monkeypatch.setenv("QUENCH_MIRROR", str(mirror))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def add(hub_id: str, front: dict | None, files: dict[str, str] | None = None) -> Path:
        return write_card(mirror / "models" / hub_id, front, files)

    return add
