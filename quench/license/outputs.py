"""The files an artifact carries for its license: LICENSE (from the base) and NOTICE."""

from __future__ import annotations

from pathlib import Path

from quench.license.inherit import Lineage
from quench.license.kb import knowledge_base
from quench.license.policy import Verdict


def license_text(lineage: Lineage, verdict: Verdict) -> str:
    """The base's own LICENSE file when it has one; else each license's text, or where to get it."""
    base_file = lineage.base.files.get("LICENSE")
    if base_file and len(verdict.licenses) <= 1:
        return Path(base_file).read_text(encoding="utf-8", errors="replace")
    files = {lic: m.files["LICENSE"] for m in lineage.models if "LICENSE" in m.files
             for lic in m.licenses}
    kb = knowledge_base()
    parts = []
    for lic_id in verdict.licenses:
        lic = kb[lic_id]
        text = (Path(files[lic_id]).read_text(encoding="utf-8", errors="replace")
                if lic_id in files else lic.full_text())
        if text is None:
            text = (f"{lic.name}\n\nThe full text was not among the base model's files. "
                    f"Obtain it from {lic.url} and include it before distributing this model.\n")
        parts.append(text if len(verdict.licenses) == 1 else f"===== {lic.name} =====\n\n{text}")
    if verdict.unknown:
        parts.append("===== Unknown =====\n\nNo license was found for: "
                     + ", ".join(verdict.unknown) + "\n")
    return "\n\n".join(parts)


def notice_text(lineage: Lineage, verdict: Verdict, artifact_name: str, change: str) -> str:
    """Attributions, the statement of change, required notices and upstream NOTICE files."""
    kb = knowledge_base()
    names = ", ".join(kb[i].name for i in verdict.licenses) or "unknown"
    lines = [artifact_name, "", f"This model is a modified (quantized) version of "
             f"{lineage.base.model}: {change}", "", f"Licensed under: {names}."]
    for m in lineage.ancestors:
        lines.append(f"Derived from {m.model} ({', '.join(m.licenses) or 'license unknown'}).")
    if verdict.notices:
        lines += ["", "Required notices:", *verdict.notices]
    for m in lineage.models:
        if "NOTICE" in m.files:
            upstream = Path(m.files["NOTICE"]).read_text(encoding="utf-8", errors="replace")
            lines += ["", f"----- NOTICE of {m.model} -----", upstream.rstrip()]
    return "\n".join(lines) + "\n"
