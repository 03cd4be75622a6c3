"""compatibility.md: the GPUs, formats, verdict of every cell and rules of the compat matrix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from .common import ROOT, anchor, code, md, page, table

MATRIX = "quench/compat/matrix.yaml"
VERDICT_TEXT = {"ok": "ok", "warn": "warn", "reject": "reject"}
Target = tuple[str, str | None]  # (engine, backend)
Family = tuple[str, str]  # (producer, quantization family)

VERDICTS_INTRO = (
    "Each cell is the verdict of the first matching rule (its number in "
    "[Rules](#rules)) for a recipe whose checkpoint is of that quantization family, "
    "with `target.gpu` of that architecture. `ok` runs; `warn` runs with the rule's "
    "caveat; `reject` stops `quench validate` and `quench run` before any work; "
    "`not checked` means no rule covers the cell (`quench validate` warns that no "
    "documented support was found). Without `target.gpu`, rules that name an "
    "architecture do not apply. Families with identical verdicts share a row.")
ROTATIONS_INTRO = (
    "A checkpoint with QuIP's online rotations (`quantization.options.rotation: quip`) "
    "asks the engine to apply them (the cell's `transform` is `online`; SpinQuant's "
    "are fused into the weights and follow the tables above):")


def comment_blocks(text: str) -> tuple[str, dict[str, str], dict[int, list[str]]]:
    """The file's header comment, the comment above each top-level key, and every comment
    block by the line number (1-based) of the line after it."""
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    above: dict[str, str] = {}
    blocks: dict[int, list[str]] = {}
    for i, line in enumerate(lines):
        block = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.insert(0, lines[j].strip().lstrip("#").strip())
            j -= 1
        if block and not line.strip().startswith("#"):
            blocks[i + 1] = block
            key = re.match(r"^([A-Za-z][\w-]*):", line)
            if key and (j < 0 or lines[j].strip() == "") and j + 1 > len(header):
                above[key.group(1)] = " ".join(block)
    return " ".join(header), above, blocks


def rule_lines(text: str) -> list[int]:
    """The 1-based first line of every entry of `rules:`, in order."""
    root = yaml.compose(text)
    for key, value in root.value:
        if key.value == "rules":
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _conditions(rule: dict[str, Any]) -> str:
    parts = []
    for key in ("engine", "backend", "format", "quant", "arch", "transform"):
        if key in rule:
            values = rule[key] if isinstance(rule[key], list) else [rule[key]]
            parts.append(f"{key} " + ", ".join(code(v) for v in values))
    return "; ".join(parts) or "anything"


def _rule_groups(text: str, rules: list[dict[str, Any]]
                 ) -> list[tuple[str, str, list[int]]]:
    """Rules grouped by the `# --- title ---` comments above them: (title, intro, indexes)."""
    _, _, blocks = comment_blocks(text)
    groups: list[tuple[str, str, list[int]]] = []
    for index, line in enumerate(rule_lines(text)):
        block = " ".join(blocks.get(line, []))
        if "---" in block or not groups:
            inner = block.split("---")
            title_text = " ".join(inner[1].split()) if len(inner) > 1 else "Rules"
            rest = " ".join(" ".join(inner[2:]).split()) if len(inner) > 2 else ""
            head, intro = _split_title(title_text)
            intro = " ".join(t for t in (intro, rest) if t)
            groups.append((head, intro, []))
        groups[-1][2].append(index)
    return groups


def _split_title(text: str) -> tuple[str, str]:
    """A group comment as a heading and an intro: `GGUF: why` -> (GGUF, why); a comment of
    several sentences keeps them all as the intro, under its first words."""
    colon, paren = text.find(": "), text.find("(")
    if colon != -1 and (paren == -1 or colon < paren):
        head, intro = text[:colon], text[colon + 2:]
    elif ". " in text:
        head, intro = text.split("(")[0].split(". ")[0].strip(), text
    else:
        head, intro = text, ""
    if head[:1].islower() and not head[1:2].isupper():  # "the reference engine", not "vLLM"
        head = head[:1].upper() + head[1:]
    return head, intro[:1].upper() + intro[1:]


def target_label(target: Target) -> str:
    """`engine/backend`, or the engine alone when it has no backends."""
    engine, backend = target
    return f"{engine}/{backend}" if backend else engine


def gpus_block(data: dict[str, Any], above: dict[str, str]) -> list[str]:
    rows = []
    for name, spec in data["gpus"].items():
        plan = spec.get("plan", {})
        sized = ", ".join(f"{v}: {m} GiB, {p} USD/h" for v, (m, p) in plan.items())
        rows.append([code(name), spec["arch"], str(spec.get("compute", "")), sized])
    return ["## GPUs and architectures {#gpus}", md(above.get("gpus")),
            table(["`target.gpu`", "architecture", "compute capability",
                   "`quench plan` sizes (memory, price)"], rows)]


def engines_block(data: dict[str, Any]) -> list[str]:
    rows = [[code(e), ", ".join(code(b) for b in s["backends"] if b) or "none",
             code(s["default"]) if s["default"] else "none"]
            for e, s in data["engines"].items()]
    return ["## Engines and backends {#engines}",
            "`target.backend` must be one of the engine's backends; unset, the default is used.",
            table(["engine", "backends", "default"], rows)]


def methods_block(data: dict[str, Any], above: dict[str, str],
                  targets: list[Target]) -> list[str]:
    """Methods -> producer and family; producer -> checkpoint format per engine/backend."""
    from quench.compat import export_format

    method_rows = []
    for method, schemes in data["methods"].items():
        for scheme, (producer, quant) in schemes.items():
            method_rows.append([code(method), code(scheme), code(producer), code(quant)])
    export_rows = [[code(p)] + [code(export_format(p, e, b)) for e, b in targets]
                   for p in data["exports"]]
    return ["## Methods, schemes and checkpoint formats {#methods}", md(above.get("methods")),
            table(["method", "scheme", "producer", "quantization family"], method_rows),
            "### Checkpoint format per engine {#formats}", md(above.get("exports")),
            table(["producer"] + [code(target_label(t)) for t in targets], export_rows)]


def notices_block(data: dict[str, Any], above: dict[str, str]) -> list[str]:
    rows = [[code(k), md(v["note"]), md(v["source"])]
            for k, v in data.get("notices", {}).items()]
    if not rows:
        return []
    return ["## Notices {#notices}", md(above.get("notices")),
            table(["engine/backend", "note", "source"], rows)]


@dataclass
class VerdictGrid:
    """What the verdict tables need: the architectures (their columns), every quantization
    family with the first method and scheme making it, the families of rotating methods and
    each rule's number (by `id`)."""

    archs: list[str]
    families: dict[Family, tuple[str, str]]
    rotating: set[Family]
    number: dict[int, int]

    def cells(self, target: Target, transform: str, family: Family) -> tuple[str, ...]:
        """The verdict of one family on every architecture: `ok (3)`, or `not checked`."""
        from quench.compat import Cell, export_format, first_rule

        engine, backend = target
        producer, quant = family
        method, scheme = self.families[family]
        texts = []
        for arch in self.archs:
            cell = Cell(method, scheme, producer, quant, export_format(producer, engine, backend),
                        engine, backend, arch, arch, transform)
            rule = first_rule(cell)
            texts.append(f"{VERDICT_TEXT[rule['verdict']]} ({self.number[id(rule)]})"
                         if rule else "not checked")
        return tuple(texts)

    def rows(self, target: Target, transform: str, keys: list[Family]) -> list[list[str]]:
        """A row per set of identical verdicts, labelled with its families."""
        grouped: dict[tuple[str, ...], list[str]] = {}
        for family in keys:
            grouped.setdefault(self.cells(target, transform, family), []).append(family[1])
        return [[self.label(quants)] + list(cells) for cells, quants in grouped.items()]

    def label(self, quants: list[str]) -> str:
        """The families of a row; all of a producer's (more than 3) as one phrase."""
        if len(quants) == len(self.families):
            return "every family"
        by_quant = {quant: producer for producer, quant in self.families}
        parts: list[str] = []
        done: set[str] = set()
        for quant in quants:
            if quant in done:
                continue
            producer = by_quant[quant]
            mine = [q for (p, q) in self.families if p == producer]
            if len(mine) > 3 and set(mine) <= set(quants):
                parts.append(f"every `{producer}` family")
                done.update(mine)
            else:
                parts.append(code(quant))
                done.add(quant)
        return ", ".join(parts)


def verdict_grid(data: dict[str, Any]) -> VerdictGrid:
    from quench.methods import METHODS, get_method

    families: dict[Family, tuple[str, str]] = {}
    rotating: set[Family] = set()
    for method, schemes in data["methods"].items():
        found = get_method(method) if method in METHODS else None
        for scheme, (producer, quant) in schemes.items():
            families.setdefault((producer, quant), (method, scheme))
            if found is not None and "rotation" in found.options_model.model_fields:
                rotating.add((producer, quant))
    archs = list(dict.fromkeys(spec["arch"] for spec in data["gpus"].values()))
    number = {id(rule): i + 1 for i, rule in enumerate(data["rules"])}
    return VerdictGrid(archs, families, rotating, number)


def verdicts_block(data: dict[str, Any], targets: list[Target]) -> list[str]:
    """A verdict table per engine/backend, then one for online rotations."""
    grid = verdict_grid(data)
    body = ["## Verdicts by engine and architecture {#verdicts}", VERDICTS_INTRO]
    for target in targets:
        name = target_label(target)
        body.append(f"### {code(name)} {{#verdicts-{anchor(name)}}}")
        body.append(table(["quantization family"] + grid.archs,
                          grid.rows(target, "none", list(grid.families))))
    rotating = [k for k in grid.families if k in grid.rotating]
    rot_rows = [[code(target_label(target))] + row for target in targets
                for row in grid.rows(target, "online", rotating)]
    return body + ["### With online rotations {#verdicts-online-rotations}", ROTATIONS_INTRO,
                   table(["engine", "quantization family"] + grid.archs, rot_rows)]


def rules_block(text: str, rules: list[dict[str, Any]]) -> list[str]:
    body = ["## Rules {#rules}",
            "In order: the first rule whose keys all match a cell decides it. A key that is "
            "absent (or `*`) matches anything; a list matches any of its members."]
    for title, intro, indexes in _rule_groups(text, rules):
        body.append(f"### {md(title)} {{#rules-{anchor(title.split('(')[0])}}}")
        if intro:
            body.append(md(intro))
        body.append(table(["#", "when", "verdict", "note", "source"],
                          [[str(i + 1), _conditions(rules[i]), rules[i]["verdict"],
                            md(rules[i]["note"]), md(rules[i]["source"])] for i in indexes]))
    return body


def compatibility_page() -> str:
    from quench.compat import matrix

    text = (ROOT / MATRIX).read_text(encoding="utf-8")
    data = matrix()
    header, above, _ = comment_blocks(text)
    targets = [(e, b) for e, s in data["engines"].items() for b in s["backends"]]
    body = [md(header) + " The tables below are read from the file; the verdict tables apply "
            "its rules to every cell."]
    body += gpus_block(data, above) + engines_block(data)
    body += methods_block(data, above, targets) + notices_block(data, above)
    body += verdicts_block(data, targets) + rules_block(text, data["rules"])
    return page("Compatibility matrix", f"`{MATRIX}`", body)
