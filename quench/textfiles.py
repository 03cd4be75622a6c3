"""Reading user-supplied files (calibration and evaluation text, a model's config.json) with
errors that name the file, line and what is expected, instead of a decoder traceback."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

from quench.errors import QuenchError

BINARY_PROBE_BYTES = 8192  # a NUL byte in the first 8 KiB: not a text file
# A local text or jsonl dataset is read whole; beyond this, a parquet file or a hub dataset.
MAX_TEXT_BYTES = 1024**3
# config.json fields quench and transformers do arithmetic with: positive integers when present.
CONFIG_INTS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
               "num_hidden_layers", "head_dim", "vocab_size", "max_position_embeddings")


def _where(key: str, path: Path) -> str:
    return f"{key}: {path}" if key else str(path)


def read_utf8(path: Path, key: str = "") -> str:
    """A text file's content; binary or non-UTF-8 content is a QuenchError naming the line."""
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise QuenchError(f"{_where(key, path)}: {size:,} bytes; a local text or jsonl "
                              f"file may be at most {MAX_TEXT_BYTES:,} bytes (1 GiB): use a "
                              ".parquet file or a hub dataset")
        raw = path.read_bytes()
    except OSError as exc:
        raise QuenchError(f"{_where(key, path)}: cannot read ({exc.strerror})") from None
    if is_gzip(path):
        raw = _gunzip(raw, path, key)
    if b"\0" in raw[:BINARY_PROBE_BYTES]:
        raise QuenchError(f"{_where(key, path)}: a binary file (NUL bytes), not UTF-8 text; "
                          "allowed: a UTF-8 .txt (one record per line), .jsonl or .parquet")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise QuenchError(
            f"{_where(key, path)}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def is_gzip(path: Path) -> bool:
    """A `.gz` file: read through gzip (quench's bundled excerpts are `.txt.gz`/`.jsonl.gz`)."""
    return path.suffix.lower() == ".gz"


def _gunzip(raw: bytes, path: Path, key: str) -> bytes:
    """The decompressed content, at most MAX_TEXT_BYTES; a corrupt file is a QuenchError."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise QuenchError(f"{_where(key, path)}: not a readable gzip file ({exc})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise QuenchError(f"{_where(key, path)}: more than {MAX_TEXT_BYTES:,} bytes uncompressed; "
                          "use a .parquet file or a hub dataset")
    return data


def read_file_texts(path: Path, field: str, key: str = "") -> list[str]:
    """The text records of a .txt (lines), .jsonl/.json (one object per line) or .parquet;
    each may be gzip-compressed (`.txt.gz`, `.jsonl.gz`) except parquet."""
    suffix = (path.with_suffix("") if is_gzip(path) else path).suffix.lower()
    if suffix == ".parquet" and is_gzip(path):
        raise QuenchError(f"{_where(key, path)}: a gzip-compressed parquet file; parquet "
                          "compresses its columns itself: use the .parquet file")
    if suffix in (".jsonl", ".json"):
        return _jsonl_texts(path, field, key)
    if suffix == ".parquet":
        return _parquet_texts(path, field, key)
    return read_utf8(path, key).replace("\r\n", "\n").split("\n")


def _jsonl_texts(path: Path, field: str, key: str) -> list[str]:
    texts = []
    for lineno, line in enumerate(read_utf8(path, key).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise QuenchError(f"{_where(key, path)}:{lineno}: not a JSON object per line "
                              f"({getattr(exc, 'msg', exc)})") from None
        if not isinstance(record, dict):
            raise QuenchError(f"{_where(key, path)}:{lineno}: expected a JSON object with "
                              f"{field!r}, got {type(record).__name__}")
        if field not in record:
            shown = sorted(record)[:20]
            raise QuenchError(f"{_where(key, path)}:{lineno}: no field {field!r} (has {shown}); "
                              "set text_field")
        texts.append(str(record[field]))
    return texts


def _parquet_texts(path: Path, field: str, key: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if field not in names:
            raise QuenchError(f"{_where(key, path)}: no column {field!r} (has {names[:20]}); "
                              "set text_field")
        column = parquet.read(columns=[field]).column(field)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise QuenchError(f"{_where(key, path)}: not a readable parquet file "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return [str(v) for v in column.to_pylist()]


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (a model's config.json); QuenchError otherwise."""
    text = read_utf8(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise QuenchError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise QuenchError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_config_types(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The config, if the fields quench computes with have their types (else QuenchError)."""
    for name in CONFIG_INTS:
        value = config.get(name)
        if value is not None and (type(value) is not int or value < 1):
            raise QuenchError(f"{path}: {name} must be a positive integer, got {value!r:.80}")
    for name, kind, noun in (("architectures", list, "list"), ("auto_map", dict, "object"),
                             ("quantization_config", dict, "object")):
        value = config.get(name)
        if value is not None and not isinstance(value, kind):
            raise QuenchError(f"{path}: {name} must be a JSON {noun}, got "
                              f"{type(value).__name__}")
    return config
