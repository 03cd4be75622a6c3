"""What every registered engine declares: one unavailable_reason signature, a capability
record that matches its class, and which upstream folder it loads."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from quench.contract.manifest import Manifest
from quench.engines import ENGINES, Engine, EngineCapabilities, ServedEngine, get_engine


@pytest.mark.parametrize("name", ENGINES.names())
def test_one_signature_and_callable_without_options(name: str):
    engine = get_engine(name)
    base = inspect.signature(Engine.unavailable_reason)
    assert inspect.signature(type(engine).unavailable_reason) == base
    assert engine.unavailable_reason() == engine.unavailable_reason({})
    assert inspect.signature(type(engine).model_unsupported_reason) == \
        inspect.signature(Engine.model_unsupported_reason)


@pytest.mark.parametrize("name", ENGINES.names())
def test_capabilities_match_the_class(name: str):
    engine = get_engine(name)
    caps = engine.capabilities
    assert isinstance(caps, EngineCapabilities)
    assert caps.served == isinstance(engine, ServedEngine)
    assert not (caps.benchmark or caps.builds) or caps.served


def test_hf_is_the_in_process_reference():
    assert get_engine("hf").capabilities == EngineCapabilities()


def test_loads_from_the_build_only_when_the_engine_builds(tmp_path: Path):
    model = Manifest(tmp_path / "q", {"status": "ran", "outputs": {"model_dir": "model"}})
    build = Manifest(tmp_path / "b", {"status": "ran", "outputs": {"model_dir": "engine"}})
    both = {"model": model, "build": build}
    assert get_engine("tensorrt-llm").loads_from(both) is build
    assert get_engine("tensorrt-llm").loads_from({"model": model}) is model  # e.g. baselines
    assert get_engine("vllm").loads_from(both) is model
    assert get_engine("hf").loads_from(both) is model
