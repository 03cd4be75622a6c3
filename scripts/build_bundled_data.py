"""Builds quench's bundled data excerpts (quench/bundled/data/) from the public datasets.

quench's default recipes calibrate on WikiText-2 validation, score perplexity on WikiText-2
test and run lm-eval's piqa, arc_easy and lambada_openai. So that they work on a machine with
no mirror and no hub, the package ships small excerpts of those, each the *first* records of
its source, so results over the excerpt's start equal results over the full set's start.

Input: the offline mirror ($QUENCH_MIRROR/data/..., the sources' published formats), or with
--from-hub the Hugging Face hub through `datasets`. Output: per dataset a folder with a
gzip file (mtime 0, fixed level: a rebuild from the same input gives the same bytes) and a
SOURCE.md, and index.yaml listing them all.

Usage: python scripts/build_bundled_data.py [--mirror DIR | --from-hub] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from quench.evals import lambada, llmfoundry, piqa
from quench.evals.io import read_jsonl
from quench.evals.wikitext import TITLE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "quench" / "bundled" / "data"
# SmolLM2's tokenizer reads ~4.26 characters a token on WikiText-2 raw test (measured): 320,000
# characters are ~75,000 tokens, ~290 windows of 256 (the recipes score at most 256).
TEST_MIN_CHARS = 320_000
# Calibration draws up to 512 records (recipes' num_samples) plus 4 held out: twice that.
VALID_MIN_RECORDS = 1024
LM_EVAL_DOCS = 1000  # recipes score `limit: 300` documents; lm-eval takes the first ones
GZIP_LEVEL = 9

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Spec:
    """One excerpt: where it comes from, how it is cut, and what its license says."""

    name: str
    file: str
    format: str  # "lines" or "jsonl"
    source: str  # upstream dataset and split
    hub: tuple[str, str | None, str]  # datasets.load_dataset(path, config, split=...)
    mirror: tuple[str, ...]  # files under $QUENCH_MIRROR
    license: str
    license_note: str
    cut: str  # how the excerpt is taken, for SOURCE.md


WIKITEXT_LICENSE = (
    "WikiText is Wikipedia text; its authors (Merity et al., 2016) publish it under the "
    "Creative Commons Attribution-ShareAlike License, and the Hugging Face card of "
    "`Salesforce/wikitext` lists `cc-by-sa-3.0` (and `gfdl`). This excerpt is a derived work "
    "under the same license (CC BY-SA 3.0); the changes are listed above.")

SPECS = (
    Spec("wikitext2", "wiki.test.txt.gz", "lines",
         "WikiText-2 raw v1 (Merity et al., 2016, 'Pointer Sentinel Mixture Models'), test split",
         ("Salesforce/wikitext", "wikitext-2-raw-v1", "test"),
         ("data/wikitext2_raw_test/wiki.test.raw",), "CC-BY-SA-3.0", WIKITEXT_LICENSE,
         f"the first whole articles (an article starts at a ` = Title = ` line) until at least "
         f"{TEST_MIN_CHARS:,} characters; blank lines dropped, one paragraph or heading a line, "
         "LF line ends (the text of each line unchanged), for perplexity"),
    Spec("wikitext2-valid", "wiki.valid.tokens.txt.gz", "lines",
         "WikiText-2 v1 (tokenized, `<unk>` for rare words; Merity et al., 2016), validation "
         "split", ("Salesforce/wikitext", "wikitext-2-v1", "validation"),
         ("data/wikitext2_valid_calibration/valid.txt",), "CC-BY-SA-3.0", WIKITEXT_LICENSE,
         f"the first whole articles until at least {VALID_MIN_RECORDS:,} non-empty lines; blank "
         "lines dropped, LF line ends (the text of each line unchanged), for calibration"),
    Spec("piqa", "piqa.jsonl.gz", "jsonl",
         "PIQA (Bisk et al., AAAI 2020), validation split",
         ("baber/piqa", None, "validation"),
         ("data/piqa/valid.jsonl", "data/piqa/valid-labels.lst"), "AFL-3.0",
         "Academic Free License v3.0, as the PIQA release states (`ybisk/ybisk.github.io`, "
         "`piqa/README.md` and `piqa/data/README.md`).",
         f"the first {LM_EVAL_DOCS} documents in order, each question joined with its label "
         "line as the fields lm-eval's `piqa` task reads: goal, sol1, sol2, label (0/1) "
         "(quench.evals.piqa.convert)"),
    Spec("arc_easy", "arc_easy.jsonl.gz", "jsonl",
         "AI2 Reasoning Challenge (ARC; Clark et al., 2018), Easy set, test split",
         ("allenai/ai2_arc", "ARC-Easy", "test"),
         ("data/arc_easy_llmfoundry_icl/arc_easy.jsonl",), "CC-BY-SA-4.0",
         "Creative Commons Attribution-ShareAlike 4.0 (the Hugging Face card of "
         "`allenai/ai2_arc`: `cc-by-sa-4.0`). This excerpt is shared under the same license.",
         f"the first {LM_EVAL_DOCS} documents in order, as the fields lm-eval's `arc_easy` "
         "task reads: question, choices {text, label A-E}, answerKey (from llm-foundry's "
         "{query, choices, gold} layout by quench.evals.llmfoundry.arc; question ids dropped)"),
    Spec("lambada_openai", "lambada_openai.jsonl.gz", "jsonl",
         "LAMBADA (Paperno et al., ACL 2016), test split as pre-processed by OpenAI for GPT-2 "
         "(the data of lm-eval's `lambada_openai`)", ("EleutherAI/lambada_openai", "default",
                                                     "test"),
         ("data/lambada_openai/lambada_test.jsonl",), "CC-BY-4.0",
         "LAMBADA is released under Creative Commons Attribution 4.0 (as its dataset cards "
         "restate, e.g. the LAMBADA card on the hub; the original Zenodo record was not read "
         "here). The card of `EleutherAI/lambada_openai` (OpenAI's pre-processing) lists "
         "`mit`. Attribution: Paperno et al. (2016); OpenAI (GPT-2 pre-processing).",
         f"the first {LM_EVAL_DOCS} documents in order, {{\"text\"}} records as lm-eval's "
         "`lambada_openai` reads them (quench.evals.lambada.convert)"),
)


def articles(lines: list[str]) -> list[list[str]]:
    """Groups WikiText lines into articles, each starting at a top-level ` = Title = ` line."""
    found: list[list[str]] = []
    for line in lines:
        if TITLE.match(line) or not found:
            found.append([])
        found[-1].append(line)
    return found


def first_articles(lines: list[str], min_chars: int = 0, min_records: int = 0) -> list[str]:
    """The lines of the first whole articles that reach both minimums."""
    kept: list[str] = []
    for article in articles(lines):
        if len(kept) >= min_records and sum(len(x) + 1 for x in kept) >= min_chars:
            break
        kept += article
    if len(kept) < min_records or sum(len(x) + 1 for x in kept) < min_chars:
        raise SystemExit(f"the source has too little text ({len(kept)} records)")
    return kept


def text_lines(raw: str) -> list[str]:
    """Non-empty lines without their line ends (what quench.text_sources.load_texts yields)."""
    return [line for line in raw.replace("\r\n", "\n").split("\n") if line.strip()]


def adapted(convert: Callable[[list[Path], Path], int], sources: list[Path]) -> Rows:
    """The rows a quench.evals adapter writes for lm-eval, read back."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "adapted.jsonl"
        convert(sources, dest)
        return read_jsonl(dest)


def from_mirror(spec: Spec, mirror: Path) -> list[str] | Rows:
    """The full source records from the mirror's files, in the excerpt's format."""
    files = [mirror / f for f in spec.mirror]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"{spec.name}: not in the mirror: {', '.join(missing)}")
    if spec.format == "lines":
        return text_lines(files[0].read_text(encoding="utf-8"))
    convert = {"piqa": piqa.convert, "arc_easy": llmfoundry.arc,
               "lambada_openai": lambada.convert}[spec.name]
    return adapted(convert, files)


def from_hub(spec: Spec) -> list[str] | Rows:
    """The full source records from the hub (needs network; not exercised offline)."""
    import datasets

    path, config, split = spec.hub
    rows = datasets.load_dataset(path, config, split=split)
    if spec.format == "lines":
        return [str(t).rstrip("\n") for t in rows["text"] if str(t).strip()]
    fields = {"piqa": ("goal", "sol1", "sol2", "label"),
              "arc_easy": ("question", "choices", "answerKey"), "lambada_openai": ("text",)}
    return [{k: row[k] for k in fields[spec.name]} for row in rows]


def excerpt(spec: Spec, records: list[str] | Rows) -> list[str] | Rows:
    """The records the package ships: whole first articles, or the first documents."""
    if spec.name == "wikitext2":
        return first_articles(records, min_chars=TEST_MIN_CHARS)  # type: ignore[arg-type]
    if spec.name == "wikitext2-valid":
        return first_articles(records, min_records=VALID_MIN_RECORDS)  # type: ignore[arg-type]
    if len(records) < LM_EVAL_DOCS:
        raise SystemExit(f"{spec.name}: only {len(records)} documents")
    return records[:LM_EVAL_DOCS]


def serialize(spec: Spec, records: list[str] | Rows) -> bytes:
    if spec.format == "lines":
        return "".join(f"{line}\n" for line in records).encode("utf-8")
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0, a fixed level."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0,
                       compresslevel=GZIP_LEVEL) as fh:
        fh.write(data)
    return buffer.getvalue()


def source_md(spec: Spec, entry: dict[str, Any], origin: str, raw_bytes: int) -> str:
    """The folder's provenance note: upstream, license, what was cut and how, checksums."""
    return "\n".join([
        f"# {spec.name}: a bundled excerpt of {spec.source}",
        "",
        f"- Upstream: {spec.source}; on the Hugging Face hub `{spec.hub[0]}`"
        + (f" (config `{spec.hub[1]}`)" if spec.hub[1] else "") + f", split `{spec.hub[2]}`.",
        f"- Built from: {origin}, by `scripts/build_bundled_data.py`.",
        f"- Excerpt: {spec.cut}.",
        f"- License: {spec.license}. {spec.license_note}",
        "",
        "| file | bytes (gzip) | bytes (text) | records | sha256 (gzip file) |",
        "| --- | --- | --- | --- | --- |",
        f"| {spec.file} | {entry['bytes']} | {raw_bytes} | {entry['records']} | "
        f"`{entry['sha256']}` |",
        "",
    ])


def origin_of(spec: Spec, mirror: Path | None) -> str:
    if mirror is None:
        return "the Hugging Face hub (`datasets.load_dataset`)"
    digests = ", ".join(f"`{f}` (sha256 `{sha256(mirror / f)}`)" for f in spec.mirror)
    return f"the offline mirror's copies of the published files: {digests}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_one(spec: Spec, mirror: Path | None, out: Path) -> dict[str, Any]:
    """Writes one folder (gzip file + SOURCE.md); returns its index entry."""
    records = excerpt(spec, from_mirror(spec, mirror) if mirror else from_hub(spec))
    raw = serialize(spec, records)
    packed = gzip_bytes(raw)
    folder = out / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / spec.file).write_bytes(packed)
    entry = {"file": f"{spec.name}/{spec.file}", "format": spec.format, "records": len(records),
             "bytes": len(packed), "sha256": hashlib.sha256(packed).hexdigest(),
             "license": spec.license, "source": spec.source}
    (folder / "SOURCE.md").write_text(source_md(spec, entry, origin_of(spec, mirror), len(raw)),
                                      encoding="utf-8")
    return entry


def build(mirror: Path | None, out: Path) -> dict[str, dict[str, Any]]:
    """Writes every excerpt and index.yaml under `out`."""
    index = {spec.name: build_one(spec, mirror, out) for spec in SPECS}
    header = ("# Written by scripts/build_bundled_data.py: the data excerpts quench ships.\n"
              "# Each folder's SOURCE.md gives upstream, license and how it was cut.\n")
    body = yaml.safe_dump({"datasets": index}, sort_keys=False, allow_unicode=True, width=100)
    (out / "index.yaml").write_text(header + body, encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=os.environ.get("QUENCH_MIRROR"),
                        help="the offline mirror (default: $QUENCH_MIRROR)")
    parser.add_argument("--from-hub", action="store_true", help="read the hub, not a mirror")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    mirror = None if args.from_hub else args.mirror
    if mirror is None and not args.from_hub:
        parser.error("no mirror: pass --mirror DIR, set $QUENCH_MIRROR, or use --from-hub")
    index = build(Path(mirror) if mirror else None, args.out)
    for name, entry in index.items():
        print(f"{name}: {entry['records']} records, {entry['bytes']:,} bytes -> {entry['file']}")
    print(f"total {sum(e['bytes'] for e in index.values()):,} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
