"""Inheritance: walk a model's base_model chain and collect what every ancestor declares.

Quantization does not change a license, and a merge inherits the restrictions of all its
parents, so the artifact answers to the union of everything found here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quench.license.detect import ModelLicense, detect_folder, detect_path, undetected
from quench.license.refs import declared_for, normalized_keys, parse_ref, parse_refs
from quench.sources import find_model_in_mirror, is_offline

CARD_FILES = ["README.md", "LICENSE*", "LICENCE*", "USE_POLICY*", "NOTICE*"]
MAX_DEPTH = 8


@dataclass
class Lineage:
    """The base model and every ancestor reachable through base_model, nearest first."""

    base: ModelLicense
    ancestors: list[ModelLicense] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[ModelLicense]:
        return [self.base, *self.ancestors]

    @property
    def offline_misses(self) -> list[ModelLicense]:
        return [m for m in self.models if m.missing and "offline" in m.missing]

    def to_json(self) -> dict[str, Any]:
        return {"models": [m.to_json() for m in self.models], "problems": self.problems}


def find_card_folder(ref: str) -> tuple[Path | None, str | None]:
    """A local folder holding a model's card files, or None and why it could not be found."""
    local = Path(ref).expanduser()
    if local.is_dir():
        return local.resolve(), None
    parsed = parse_ref(ref)
    mirrored = find_model_in_mirror(parsed.repo_id)
    if mirrored is not None:
        return mirrored, None
    if is_offline():
        return None, "not a local folder, not in the mirror, and HF_HUB_OFFLINE is set (offline)"
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:  # the card and license files only, never the weights
        return Path(snapshot_download(parsed.repo_id, revision=parsed.revision,
                                      allow_patterns=CARD_FILES)), None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        return None, f"could not fetch its card from the hub ({type(exc).__name__}: {exc})"


def walk(base_folder: Path, base_model: str, declared: dict[str, str],
         base_models: dict[str, list[str]] | None = None) -> Lineage:
    """Detects the base's license (folder or GGUF file), then each ancestor's, breadth first;
    `base_models` (the recipe's license.base_models) adds parents a card does not name."""
    declared = normalized_keys(declared)
    extra = {str(parse_ref(k)): [str(r) for r in parse_refs(v)]
             for k, v in (base_models or {}).items()}
    lineage = Lineage(detect_path(base_folder, base_model, declared_for(declared, base_model)))
    _add_parents(lineage.base, extra)
    seen = {base_model, str(base_folder)}
    queue = [(parent, 1) for parent in lineage.base.parents]
    while queue:
        ref, depth = queue.pop(0)
        if ref in seen:
            continue
        seen.add(ref)
        if depth > MAX_DEPTH:
            lineage.problems.append(f"base_model chain deeper than {MAX_DEPTH} at {ref!r}")
            continue
        folder, why = find_card_folder(ref)
        found = (detect_folder(folder, ref, declared_for(declared, ref)) if folder
                 else undetected(ref, why or "not found", declared_for(declared, ref)))
        _add_parents(found, extra)
        lineage.ancestors.append(found)
        queue += [(parent, depth + 1) for parent in found.parents]
    return lineage


def _add_parents(model: ModelLicense, extra: dict[str, list[str]]) -> None:
    """The recipe's license.base_models for this model, after the parents its card names."""
    for ref in extra.get(str(parse_ref(model.model)), []):
        if ref not in model.parents:
            model.parents.append(ref)
            model.declared_parents.append(ref)
