"""Secrets never leave quench unredacted: token shapes, URI passwords, named secrets and the
values of secret environment variables, in text, JSON data, log lines and files. (The run-level
check, a recipe description holding a token, is in test_tracking_outage.py: it shares that
module's pipeline run.)"""

from __future__ import annotations

import json
import logging

import pytest

from quench.redact import MASK, RedactingFormatter, redact, redact_data, redact_file
from quench.tracking.pending import run_record

SECRETS = [  # (text, what must be gone, what must stay)
    ("token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345 here", "hf_AbCd", "token "),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", ""),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtn",
     "aws_secret_access_key = "),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtn",
     "AWS_SECRET_ACCESS_KEY="),
    ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123", ""),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11", ""),
    ("key sk-proj-AbCdEfGhIjKlMnOpQrStUv1234", "sk-proj-AbC", "key "),
    ("https://alice:s3cr3t-pw@mlflow.example.com:5000/", "s3cr3t-pw",
     "https://alice:[REDACTED]@mlflow.example.com:5000/"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefghijkl", "eyJhbGciOiJIUzI1NiJ9",
     "Authorization: Bearer "),
    ("MLFLOW_TRACKING_PASSWORD=hunter2hunter2", "hunter2", "MLFLOW_TRACKING_PASSWORD="),
    ('{"api_key": "abcd-1234-efgh"}', "abcd-1234", '{"api_key": "'),
]
HARMLESS = [  # things quench writes that look a little like secrets and must stay whole
    "max_tokens: 128", "pad_token: <pad>", "kl_exact_tokens=4096", "basic quantization",
    "sqlite:////tmp/out/mlflow.db", "postgresql+psycopg2://quench@127.0.0.1:5432/mlflow",
    "key 3f786850e387550fdab836ed7e6dc881de23001b",  # a cache key (sha1-sized hex)
    "http://127.0.0.1:5000", "the token budget is 4096",
]


@pytest.mark.parametrize(("text", "gone", "kept"), SECRETS)
def test_secret_shapes_are_redacted(text, gone, kept):
    out = redact(text)
    assert gone not in out and MASK in out and out.startswith(kept)
    assert redact(out) == out  # redacting twice changes nothing


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_values_are_left_alone(text):
    assert redact(text) == text


def test_secret_environment_values_are_redacted_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "plainword-that-is-secret")
    assert redact("sent plainword-that-is-secret along") == f"sent {MASK} along"


def test_json_data_stays_valid_and_keeps_its_shape():
    data = {"description": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "n": 3, "ok": True,
            "uris": ["https://u:pw123456@h/x", None]}
    clean = redact_data(data)
    assert clean == {"description": MASK, "n": 3, "ok": True, "uris": [f"https://u:{MASK}@h/x",
                                                                       None]}
    text = json.dumps(data)
    assert json.loads(redact(text)) == clean


def test_log_lines_and_tracebacks_are_redacted():
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError("login failed for https://bob:pa55word99@host/api")
    except ValueError:
        record = logging.LogRecord("quench", logging.ERROR, __file__, 1,
                                   "using %s", ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",), True)
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "hf_AbCd" not in line and "pa55word99" not in line and "ValueError" in line


def test_files_are_rewritten_redacted_and_others_untouched(tmp_path):
    log = tmp_path / "quench.log"
    log.write_bytes(b"ok line\n\xff binary byte, token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345\n")
    clean = tmp_path / "clean.log"
    clean.write_text("nothing secret\n")
    before = clean.stat().st_mtime_ns
    redact_file(log)
    redact_file(clean)
    redact_file(tmp_path / "missing.log")
    assert log.read_bytes() == b"ok line\n\xff binary byte, token [REDACTED]\n"
    assert clean.stat().st_mtime_ns == before


def test_tracking_records_hold_redacted_params_and_tags():
    run = run_record("r", {"quench.error": "failed at https://x:topsecret1@h"},
                     params={"description": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "n": 2,
                             "none": None})
    assert run["params"] == {"description": MASK, "n": "2"}
    assert run["tags"] == {"quench.error": f"failed at https://x:{MASK}@h"}
