"""Before any interval: two runs are comparable only when they quantize the same base model
(by content, not by name), with the same tokenizer, and were scored on the same evaluation
data under the same protocol; otherwise the gate refuses (exit 2), naming both sides."""

from __future__ import annotations

from typing import Any

from quench.gate.data import RunData
from quench.gate.errors import GateError

MODEL_KEYS = {"weights_sha256": "weights", "tokenizer_sha256": "tokenizer"}
# what makes two perplexity evaluations the same: the text, its windows and their token ids
PROTOCOL_KEYS = ("text_sha256", "windows_sha256", "window", "stride", "windows", "bos_id",
                 "joiner")
CROSS_MODEL_KEY = "gate.allow_cross_model"


def _side(run: RunData) -> str:
    return f"{run.run_id} ({run.name})"


def _short(value: Any) -> str:
    return f"{value[:12]}..." if isinstance(value, str) and len(value) > 16 else repr(value)


def check_lineage(cand: RunData, base: RunData, allow_cross_model: bool) -> list[str]:
    """Raises GateError when the runs are not comparable; notes for an allowed cross-model
    comparison."""
    models = {}
    for role, run in (("candidate", cand), ("baseline", base)):
        models[role] = run.report.get("base_model") or {}
        if not models[role].get("weights_sha256"):
            raise GateError(f"{role} run {_side(run)} records no base-model digest (base_model "
                            "in its report.json, written by quench since lineage checks "
                            "began): re-run it to gate it")
    mine, theirs = models["candidate"], models["baseline"]
    differ = [what for key, what in MODEL_KEYS.items() if mine.get(key) != theirs.get(key)]
    notes = []
    if differ:
        sides = (f"candidate {_side(cand)} quantizes {mine.get('id')!r} (weights "
                 f"{_short(mine.get('weights_sha256'))}, tokenizer "
                 f"{_short(mine.get('tokenizer_sha256'))}), baseline {_side(base)} "
                 f"{theirs.get('id')!r} (weights {_short(theirs.get('weights_sha256'))}, "
                 f"tokenizer {_short(theirs.get('tokenizer_sha256'))})")
        if not allow_cross_model:
            raise GateError(f"not the same base model ({' and '.join(differ)} differ): {sides}. "
                            f"Set {CROSS_MODEL_KEY}: true in the recipe to compare different "
                            "models on purpose")
        notes.append(f"cross-model comparison ({CROSS_MODEL_KEY}): {sides}")
    _check_protocol(cand, base)
    return notes


def _check_protocol(cand: RunData, base: RunData) -> None:
    mine, theirs = cand.protocol, base.protocol
    if not mine and not theirs:
        return
    if not mine or not theirs:
        missing = cand if not mine else base
        raise GateError(f"run {_side(missing)} has no perplexity protocol in its report, the "
                        "other has: they were not evaluated the same way")
    differ = [k for k in PROTOCOL_KEYS if mine.get(k) != theirs.get(k)]
    if differ:
        detail = "; ".join(f"{k}: {_short(mine.get(k))} vs {_short(theirs.get(k))}"
                           for k in differ)
        raise GateError(f"candidate {_side(cand)} and baseline {_side(base)} were evaluated on "
                        f"different data or protocol ({detail}): not comparable")
