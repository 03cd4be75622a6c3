"""Policy: does the recipe's intended use and distribution fit every license in the lineage?

Each finding is pass, warn or fail and cites the clause behind it. Unknown licenses fail unless
the recipe allows them; they are never taken for a permissive one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

from quench.license.inherit import Lineage
from quench.license.kb import License, knowledge_base
from quench.license.naming import name_matches

Level = Literal["pass", "warn", "fail"]


@dataclass
class Finding:
    level: Level
    reason: str
    cite: str | None = None


@dataclass
class Verdict:
    """The outcome for one artifact: findings, effective licenses and what they oblige."""

    licenses: list[str]
    findings: list[Finding] = field(default_factory=list)
    obligations: list[dict[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def status(self) -> Level:
        levels = {f.level for f in self.findings}
        return "fail" if "fail" in levels else "warn" if "warn" in levels else "pass"

    @property
    def commercial_ok(self) -> bool | None:
        """False if any license forbids commercial use; None if a license is unknown."""
        kb = knowledge_base()
        if any(not kb[i].commercial_ok for i in self.licenses):
            return False
        return None if self.unknown else True

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "licenses": self.licenses,
                "commercial_ok": self.commercial_ok, "unknown": self.unknown,
                "findings": [f.__dict__ for f in self.findings],
                "obligations": self.obligations, "notices": self.notices}


def evaluate(
    lineage: Lineage, intended_use: str, distribution: str, allow_unknown: bool,
    artifact_name: str, quantized: bool = True,
) -> Verdict:
    """Applies the recipe's policy to the lineage; `quantized`: the artifact is a quantization
    of the base (not an unchanged copy), where a naming rule's reach is a judgement call."""
    kb = knowledge_base()
    ids = sorted({i for m in lineage.models for i in m.licenses})
    verdict = Verdict(licenses=ids)
    _unknowns(lineage, allow_unknown, verdict)
    _repackages(lineage, intended_use, distribution, verdict)
    _relaxations(lineage, verdict)
    _incompatible([kb[i] for i in ids], verdict)
    distributed = distribution != "none"
    if distributed:
        _stacked([kb[i] for i in ids], distribution, verdict)
    for lic in (kb[i] for i in ids):
        _use(lic, intended_use, verdict)
        if distributed:
            _distribution(lic, distribution, verdict)
        if lic.name_prefix and (distributed or intended_use == "commercial"):
            _naming(lic, artifact_name, distribution, quantized, verdict)
        if lic.user_limit and intended_use == "commercial":
            verdict.obligations.append({"license": lic.id, "text": (
                f"Above {lic.user_limit.monthly_active_users:,} monthly active users a separate "
                "license from the licensor is needed."), "cite": lic.user_limit.cite})
        verdict.obligations += [
            {"license": lic.id, "text": o.text, "cite": o.cite}
            for o in lic.obligations if o.when == "use" or distributed
        ]
        verdict.notices += [n for n in lic.notices if n not in verdict.notices]
    if not verdict.findings:
        verdict.findings.append(Finding("pass", (
            f"{', '.join(ids)}: {intended_use} use with distribution {distribution} is allowed")))
    return verdict


def _unknowns(lineage: Lineage, allow_unknown: bool, verdict: Verdict) -> None:
    level: Level = "warn" if allow_unknown else "fail"
    for m in lineage.models:
        for said in m.unrecognized:
            verdict.findings.append(Finding("warn", f"{m.model}: unrecognized license {said}"))
        inherited = None if m.licenses else _inherited(lineage, m, frozenset())
        if inherited:
            verdict.findings.append(Finding("warn", (
                f"{m.model} declares no license of its own: as a derivative of "
                f"{', '.join(m.parents)} it carries their terms ({', '.join(inherited)}); "
                "declare it with license.declared to confirm")))
        elif not m.licenses:
            why = m.missing or "no license in its model card, LICENSE file or SOURCE.md"
            hints = f" ({'; '.join(m.hints)})" if m.hints else ""
            verdict.unknown.append(m.model)
            verdict.findings.append(Finding(level, (
                f"{m.model}: license unknown: {why}{hints}. Declare it with "
                f"license.declared or accept the risk with license.allow_unknown: true")))
        elif len(m.licenses) > 1:
            verdict.findings.append(Finding("warn", (
                f"{m.model}: its sources disagree ({', '.join(m.licenses)}); all of them apply")))
    for problem in lineage.problems:
        verdict.findings.append(Finding(level, problem))


def _restrictive(lic: License) -> bool:
    return lic.adds_restrictions or not lic.commercial_ok or lic.name_prefix is not None


def _repackages(lineage: Lineage, intended_use: str, distribution: str,
                verdict: Verdict) -> None:
    """A permissive label on a model whose name says it comes from a restrictive family, with
    no base_model to check it against, is never a silent pass: a repackage keeps its base's
    license. It warns for research and internal use and fails commercial use or public
    distribution until the recipe declares the lineage."""
    kb = knowledge_base()
    for m in lineage.models:
        own = [i for i in m.licenses if i != m.family]
        if (m.family is None or m.parents or m.declared or not own
                or not _restrictive(kb[m.family]) or any(_restrictive(kb[i]) for i in own)):
            continue
        risky = intended_use == "commercial" or distribution == "public"
        markers = f" ({', '.join(m.repackaging)} in its name or tags)" if m.repackaging else ""
        verdict.findings.append(Finding("fail" if risky else "warn", (
            f"{m.model} is labelled {', '.join(own)} but looks like a derivative of the "
            f"{m.family} family{markers} and names no base_model: a repackage or fine-tune "
            f"keeps its base's license. Declare the lineage with license.base_models "
            f"({{{m.model}: [<the base's hub id>]}}) or its license with license.declared"),
            kb[m.family].redistribution_cite))


def _inherited(lineage: Lineage, model: Any, seen: frozenset[str]) -> list[str] | None:
    """The licenses a model without one of its own carries from its parents (a silent
    derivative), when every parent's license is known, itself or through its own parents."""
    if not model.parents or model.missing:
        return None
    found: set[str] = set()
    for ref in model.parents:
        parent = next((a for a in lineage.ancestors if a.model == ref), None)
        if parent is None or parent.model in seen:
            return None
        licenses = parent.licenses or _inherited(lineage, parent, seen | {model.model})
        if not licenses:
            return None
        found.update(licenses)
    return sorted(found)


def _relaxations(lineage: Lineage, verdict: Verdict) -> None:
    """A child that declares a looser license than an ancestor does not shed its restrictions."""
    kb = knowledge_base()
    own = set(lineage.base.licenses)
    for parent in lineage.ancestors:
        for pid in set(parent.licenses) - own:
            if kb[pid].adds_restrictions or kb[pid].share_alike or not kb[pid].commercial_ok:
                verdict.findings.append(Finding("warn", (
                    f"{lineage.base.model} declares {', '.join(sorted(own)) or 'nothing'} but "
                    f"its parent {parent.model} is {pid}: the parent's terms still apply "
                    "to every derivative"), kb[pid].redistribution_cite))


def _incompatible(licenses: list[License], verdict: Verdict) -> None:
    """Share-alike terms cannot be met together with a different restrictive license."""
    for a, b in combinations(licenses, 2):
        for x, y in ((a, b), (b, a)):
            clash = (x.share_alike and (y.share_alike or y.adds_restrictions)) or (
                x.no_added_restrictions and y.adds_restrictions)
            if clash:
                cite = x.share_alike_cite or x.redistribution_cite
                verdict.findings.append(Finding("fail", (
                    f"incompatible parents: {x.id} requires derivatives under its own terms "
                    f"with no further restrictions, and {y.id} adds its own"), cite))
                break


def _stacked(licenses: list[License], distribution: str, verdict: Verdict) -> None:
    """Two licenses that each limit how the whole derivative may be used cannot both be handed
    on as the one license recipients get: distributing such a merge needs the licensors' say."""
    limiting = [lic for lic in licenses if lic.use != "any"]
    if len(limiting) < 2:
        return
    verdict.findings.append(Finding("fail" if distribution == "public" else "warn", (
        f"{' and '.join(lic.id for lic in limiting)} each govern all use of the derivative; "
        f"no single license satisfies both for distribution {distribution}"),
        "; ".join(lic.use_cite for lic in limiting)))


def _use(lic: License, intended_use: str, verdict: Verdict) -> None:
    if lic.use == "any":
        return
    if intended_use == "commercial":
        verdict.findings.append(Finding("fail", (
            f"{lic.id} allows {lic.use} use only; license.intended_use is commercial"),
            lic.use_cite))
    elif intended_use == "internal":
        verdict.findings.append(Finding("warn", (
            f"{lic.id} allows {lic.use} use only: internal use must stay within it "
            "(evaluation and research, no production or revenue)"), lic.use_cite))


def _distribution(lic: License, distribution: str, verdict: Verdict) -> None:
    level: Level = "fail" if distribution == "public" else "warn"
    if not lic.redistribution or not lic.share_derivatives:
        verdict.findings.append(Finding(level, (
            f"{lic.id} does not allow sharing a modified (quantized) model; "
            f"license.distribution is {distribution}"), lic.redistribution_cite))
    if lic.share_alike and distribution == "public":
        verdict.findings.append(Finding("warn", (
            f"{lic.id} is share-alike: the quantized model must be published under it"),
            lic.share_alike_cite))


def _naming(lic: License, name: str, distribution: str, quantized: bool,
            verdict: Verdict) -> None:
    """The license's name prefix: a miss fails public distribution of an unchanged copy; for a
    quantization (arguably not a new model the rule names) it warns with the clause."""
    assert lic.name_prefix is not None
    prefix, cite = lic.name_prefix.prefix, lic.name_prefix.cite
    match = name_matches(name, prefix)
    if match == "match":
        return
    if match == "near":
        verdict.findings.append(Finding("warn", (
            f"artifact name {name!r} is close to, but not, the {prefix!r} prefix {lic.id} "
            "requires (case or separators differ); set license.artifact_name to begin with "
            f"{prefix!r} exactly"), cite))
        return
    level: Level = "fail" if distribution == "public" and not quantized else "warn"
    why = (" (the artifact is a quantization: whether the rule binds a quantized copy is "
           "a judgement call, so this warns)" if quantized and distribution == "public" else "")
    verdict.findings.append(Finding(level, (
        f"artifact name {name!r} must begin with {prefix!r} under {lic.id}; "
        f"set license.artifact_name{why}"), cite))
