"""Detection: what license a checkpoint folder declares, and where it says so.

Sources, strongest first: the model card's front matter (license, license_name, license_link,
base_model, base_model_relation), LICENSE / USE_POLICY / NOTICE files, the mirror's SOURCE.md
provenance note, and the recipe's `license.declared`. config.json only yields hints: a
`model_type` never decides a license.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quench.gguf import is_gguf, read_gguf
from quench.license.families import family_of, repackaging_markers
from quench.license.kb import by_link, identify_text, knowledge_base, normalize
from quench.license.refs import parse_refs

LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md")
POLICY_FILES = ("USE_POLICY.md", "USE_POLICY", "ACCEPTABLE_USE_POLICY.md")
NOTICE_FILES = ("NOTICE", "NOTICE.md", "NOTICE.txt")
FAMILY_HINTS = {  # config.json model_type -> the license family such checkpoints often carry
    "llama": "a Llama-architecture model (Meta's Llama licenses apply only to Meta's weights)",
    "llama4": "Llama 4 (Llama 4 Community License)",
    "gemma": "Gemma (Gemma Terms of Use)", "gemma2": "Gemma (Gemma Terms of Use)",
    "gemma3": "Gemma (Gemma Terms of Use)", "mistral": "a Mistral model (several licenses)",
    "qwen2": "a Qwen model (Apache-2.0, Qwen or Qwen Research licenses)",
}


@dataclass
class Evidence:
    """One statement about a model's license: where it was read, what it said, what it means."""

    source: str
    said: str
    license: str | None  # kb id, None when not recognized


@dataclass
class ModelLicense:
    """What one model (the base or an ancestor) declares."""

    model: str
    folder: str | None
    evidence: list[Evidence] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    relation: str | None = None
    hints: list[str] = field(default_factory=list)
    missing: str | None = None  # why no folder/card could be read (e.g. offline)
    files: dict[str, str] = field(default_factory=dict)  # LICENSE/NOTICE/USE_POLICY -> path
    family: str | None = None  # the license its name/tags point to (a cross-check only)
    repackaging: list[str] = field(default_factory=list)  # gguf, gptq, merge, ... in its names
    declared: bool = False  # the recipe's license.declared speaks for it
    names: list[str] = field(default_factory=list)  # its id, card model_name and tags
    declared_parents: list[str] = field(default_factory=list)  # from license.base_models

    @property
    def licenses(self) -> list[str]:
        """The distinct kb ids found (several: the sources disagree, and all apply); an id
        another found one supersedes (cc-by-nc-4.0 beside its AUP addendum) is dropped."""
        found = {e.license for e in self.evidence if e.license}
        kb = knowledge_base()
        return sorted(found - {s for i in found for s in kb[i].supersedes})

    @property
    def unrecognized(self) -> list[str]:
        return [f"{e.source}: {e.said!r}" for e in self.evidence if e.license is None]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "folder": self.folder, "licenses": self.licenses,
                "evidence": [e.__dict__ for e in self.evidence], "parents": self.parents,
                "relation": self.relation, "hints": self.hints, "missing": self.missing,
                "family": self.family, "repackaging": self.repackaging}


FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.DOTALL)
NEXT_FRONT_MATTER = re.compile(r"\A\s*---\s*\n(.*?)\n---\s*(\n|\Z)", re.DOTALL)  # right after


def read_front_matter_blocks(card: Path) -> list[dict[str, Any]]:
    """Every front-matter block at the top of a card: hub tools read only the first, so a
    second one (a merge of two cards) is evidence that must not go unread."""
    text = card.read_text(encoding="utf-8", errors="replace")
    blocks: list[dict[str, Any]] = []
    while (match := (NEXT_FRONT_MATTER if blocks else FRONT_MATTER).match(text)) is not None \
            and len(blocks) < 4:
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            if not blocks:
                raise ValueError(f"{card}: front matter is not valid YAML ({exc})") from None
            break
        blocks.append(data if isinstance(data, dict) else {})
        text = text[match.end():]
    return blocks


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _card_evidence(meta: dict[str, Any]) -> list[Evidence]:
    found = []
    for raw in _as_list(meta.get("license")):
        if raw.lower() in ("other", "unknown"):  # the name or link then says which
            name, link = meta.get("license_name"), meta.get("license_link")
            lic = normalize(name) or by_link(link)
            said = f"{raw} ({name or 'no license_name'}, {link or 'no license_link'})"
            found.append(Evidence("README.md front matter", said, lic))
        else:
            found.append(Evidence("README.md front matter", raw, normalize(raw)))
    return found


def _file_evidence(folder: Path, result: ModelLicense) -> None:
    for group, kind in ((LICENSE_FILES, "LICENSE"), (POLICY_FILES, "USE_POLICY"),
                        (NOTICE_FILES, "NOTICE")):
        path = next((folder / n for n in group if (folder / n).is_file()), None)
        if path is None:
            continue
        result.files[kind] = str(path)
        if kind == "LICENSE":
            text = path.read_text(encoding="utf-8", errors="replace")
            result.evidence.append(Evidence(path.name, text.strip()[:80], identify_text(text)))


def _provenance_evidence(folder: Path) -> list[Evidence]:
    """A mirror folder's SOURCE.md may state the upstream license on a `License:` line."""
    path = folder / "SOURCE.md"
    if not path.is_file():
        return []
    match = re.search(r"^[-*\s]*License:\s*([^\s(,;]+)", path.read_text(), re.MULTILINE)
    if not match:
        return []
    raw = match.group(1).rstrip(".")
    return [Evidence("SOURCE.md (mirror provenance)", raw, normalize(raw))]


def _gated_prompt_evidence(meta: dict[str, Any], result: ModelLicense) -> None:
    """A gated repo's access prompt often quotes the license it is gated by."""
    prompt = meta.get("extra_gated_prompt")
    lic = identify_text(prompt) if isinstance(prompt, str) else None
    if lic:
        result.evidence.append(Evidence("README.md extra_gated_prompt", prompt.strip()[:80], lic))


def _name_evidence(result: ModelLicense) -> None:
    """The family the name and tags point to: evidence only beside a declared license (run
    again when more evidence arrives: it replaces what it found before)."""
    result.evidence = [e for e in result.evidence if e.source != "model name and tags"]
    result.hints = [h for h in result.hints if "suggest the" not in h]
    result.repackaging = repackaging_markers(result.names)
    found = family_of(result.names)
    if found is None:
        return
    result.family, text = found
    if result.evidence:  # a cross-check of what the card says, never a license on its own
        result.evidence.append(Evidence("model name and tags", text, result.family))
    else:
        result.hints.append(f"its name or tags ({text!r}) suggest the {result.family} "
                            "family; not assumed")


def detect_folder(folder: Path, model: str, declared: str | None = None) -> ModelLicense:
    """Everything a checkpoint folder says about its license and its parents."""
    result = ModelLicense(model=model, folder=str(folder))
    card = folder / "README.md"
    blocks = read_front_matter_blocks(card) if card.is_file() else []
    meta = blocks[0] if blocks else {}
    result.evidence += _card_evidence(meta)
    for extra in blocks[1:]:  # a second block's license is heard, and disagreement reported
        result.hints.append("README.md has more than one front-matter block; hub tools read "
                            "only the first")
        result.evidence += [Evidence("README.md second front-matter block", e.said, e.license)
                            for e in _card_evidence(extra)]
    result.parents = [str(ref) for ref in parse_refs(meta.get("base_model"))]
    relation = meta.get("base_model_relation")
    result.relation = str(relation) if relation else None
    _file_evidence(folder, result)
    if not result.evidence:
        result.evidence += _provenance_evidence(folder)
    _gated_prompt_evidence(meta, result)
    result.names = [model, *_as_list(meta.get("model_name")), *_as_list(meta.get("tags"))]
    _name_evidence(result)
    if declared:
        result.evidence.append(Evidence("recipe license.declared", declared, normalize(declared)))
        result.declared = True
    config = folder / "config.json"
    if not result.licenses and config.is_file():
        model_type = str(json.loads(config.read_text()).get("model_type", ""))
        if model_type in FAMILY_HINTS:
            result.hints.append(f"config.json model_type {model_type!r} suggests "
                                f"{FAMILY_HINTS[model_type]}; not assumed")
    return result


def detect_path(path: Path, model: str, declared: str | None = None) -> ModelLicense:
    """detect_folder for a checkpoint folder; for a GGUF file, its metadata and its folder."""
    if not is_gguf(path):
        return detect_folder(path, model, declared)
    info = read_gguf(path)
    result = detect_folder(path.parent, model, declared)  # a card or LICENSE beside the file
    result.folder = str(path)
    said = info.license_name or info.license
    if said:
        lic = normalize(info.license_name) or normalize(info.license) or by_link(info.license_link)
        result.evidence.insert(0, Evidence("GGUF metadata general.license", said, lic))
    result.names += [path.name, *([info.name] if info.name else [])]
    _name_evidence(result)
    result.parents += [str(p) for p in parse_refs(info.base_models)
                       if str(p) not in result.parents]
    return result


def undetected(model: str, why: str, declared: str | None = None) -> ModelLicense:
    """A model whose folder could not be read: only the recipe's declaration can speak for it."""
    result = ModelLicense(model=model, folder=None, missing=why)
    if declared:
        result.evidence.append(Evidence("recipe license.declared", declared, normalize(declared)))
        result.declared = True
    return result
