"""The manifest.json every stage directory holds: the only thing later stages read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


@dataclass
class Manifest:
    """A stage output: its directory and the parsed manifest.json."""

    dir: Path
    data: dict[str, Any]

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        """The manifest in `directory`, or None when it is absent or unreadable."""
        try:
            return cls(directory, json.loads((directory / MANIFEST).read_text()))
        except (OSError, ValueError):
            return None

    @property
    def key(self) -> str:
        return self.data["key"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def skipped(self) -> bool:
        return self.status.startswith("skipped")

    @property
    def outputs(self) -> dict[str, Any]:
        return self.data.get("outputs", {})

    @property
    def metrics(self) -> dict[str, float]:
        return self.data.get("metrics", {})

    def path(self, output: str) -> Path:
        """An output path; relative ones are relative to the stage directory."""
        value = Path(self.outputs[output])
        return value if value.is_absolute() else self.dir / value
