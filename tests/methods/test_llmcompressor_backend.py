"""The llm-compressor backend: each method's progress hook agrees with its modifiers, and a
real GPTQ oneshot on the tiny model fills the bar the backend counts, one step per module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quench import progress
from quench.methods import get_method, method_names
from quench.methods.llmcompressor_backend import oneshot_kwargs
from quench.methods.quantizing import Calibration
from quench.models import load_model, load_tokenizer


def _llmcompressor_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """Every scheme of every llm-compressor method, with each weight rounding it offers."""
    cases = []
    for name in method_names():
        method = get_method(name)
        caps = method.capabilities
        if caps.backend != "llmcompressor" or not caps.loads_model or name == "llmcompressor":
            continue  # the raw recipe method's YAML gets the spinner, whatever it holds
        fields = method.options_model.model_fields
        roundings = [{"weights": w} for w in ("rtn", "gptq")] if "weights" in fields else [{}]
        cases += [(name, scheme, raw) for scheme in method.schemes for raw in roundings]
    return cases


@pytest.mark.parametrize(("name", "scheme", "raw"), _llmcompressor_cases())
def test_logs_each_module_exactly_when_a_gptq_modifier_runs(name, scheme, raw):
    from llmcompressor.modifiers.gptq import GPTQModifier

    method = get_method(name)
    options = method.parse_options(raw)
    gptq = any(isinstance(m, GPTQModifier) for m in method.modifiers(scheme, options))
    assert method.logs_each_module(scheme, options) == gptq


def test_calibration_reaches_oneshot_only_with_a_dataset():
    settings = {"num_samples": 8, "max_seq_length": 64, "seed": 0, "pipeline": "auto",
                "trust_remote_code": False}
    assert oneshot_kwargs(Calibration(dataset=None, **settings)) == {
        "trust_remote_code_model": False}
    kwargs = oneshot_kwargs(Calibration(dataset=[], **{**settings, "pipeline": "basic"}))
    assert kwargs == {"dataset": [], "num_calibration_samples": 8, "max_seq_length": 64,
                      "pipeline": "basic", "trust_remote_code_model": False}


class Recorder:
    """A progress reporter keeping what the backend shows."""

    def __init__(self) -> None:
        self.tasks: list[list[Any]] = []

    def start(self, description: str, total: float | None) -> None:
        self.tasks.append([description, total, 0])

    def advance(self, amount: float) -> None:
        self.tasks[-1][2] += amount

    def stop(self) -> None:
        pass


def test_gptq_fills_a_bar_of_its_modules(tiny_model: Path, mirror: Path):
    import datasets
    from compressed_tensors.utils import match_named_modules

    lines = [x for x in (mirror / "data/wikitext2_valid_calibration/valid.txt")
             .read_text().splitlines() if x.strip()][:8]
    ids = load_tokenizer(tiny_model)(lines, truncation=True, max_length=64)["input_ids"]
    calibration = Calibration(dataset=datasets.Dataset.from_dict({"input_ids": ids}),
                              num_samples=8, max_seq_length=64, seed=0, pipeline="auto",
                              trust_remote_code=False)
    method = get_method("gptq")
    options = method.parse_options({})
    model = load_model(tiny_model, "float32")
    modules = sum(1 for _ in match_named_modules(model, *method.targets(options)))
    recorder = Recorder()
    previous = progress.attach(recorder)
    try:
        done = method.quantize(model, "W4A16", options, calibration)
    finally:
        progress.attach(previous)
        method.release()
    assert done.quantized
    assert recorder.tasks == [["modules quantized (GPTQ)", modules, modules]]
