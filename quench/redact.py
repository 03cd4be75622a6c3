"""Secret redaction: token-like values never reach a report, a log, MLflow or a pending record."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from quench.owned_files import write_atomic

MASK = "[REDACTED]"

# Tokens recognisable by their shape alone.
TOKEN_SHAPES = re.compile(
    r"\bhf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI-style
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bdapi[0-9a-f]{32}\b"  # Databricks
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWTs
)
# `user:password@` in a URI: the user stays, the password goes.
URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']+:)[^/\s@\"']+@")
BEARER = re.compile(
    r"(?i)(?P<head>\bbearer\s+|\bauthorization\s*[=:]\s*(?:basic\s+|token\s+)?)"
    r"[A-Za-z0-9._~+/=-]{12,}"
)
# A value after a secret-sounding name: PASSWORD=..., aws_secret_access_key: ..., "api_key": "..."
NAMED = re.compile(
    r"(?i)(?P<head>\b(?:[A-Za-z0-9]+[_-])*(?:password|passwd|secret|secret[_-]access[_-]key"
    r"|api[_-]?key|access[_-]token|auth[_-]token|session[_-]token|tracking[_-]token"
    r"|hf[_-]token|hub[_-]token|client[_-]secret)[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<value>[^\s\"',;&}]{4,})"
)
# Environment variables whose values are secrets wherever they show up.
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "OPENAI_API_KEY",
    "DATABRICKS_TOKEN", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING",
)
MIN_SECRET = 6  # shorter environment values would mask ordinary words


def redact(text: str) -> str:
    """The text with every token-like value replaced by [REDACTED]."""
    if not text:
        return text
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= MIN_SECRET and value in text:
            text = text.replace(value, MASK)
    text = TOKEN_SHAPES.sub(MASK, text)
    text = URI_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    return NAMED.sub(lambda m: m["head"] + (m["value"] if m["value"] == MASK else MASK), text)


def redact_data(data: Any) -> Any:
    """A JSON-like value with every string (keys too) redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) come out redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact_file(path: Path) -> None:
    """Rewrites a text file redacted, atomically, when it holds a secret (missing: nothing)."""
    try:
        text = path.read_bytes().decode(errors="surrogateescape")
    except OSError:
        return
    clean = redact(text)
    if clean != text:
        write_atomic(path, clean.encode(errors="surrogateescape"))
