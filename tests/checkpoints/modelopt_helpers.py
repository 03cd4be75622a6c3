"""Real ModelOpt quantization of the tiny model (fp32, CPU) and its two exports, for the tests."""

from __future__ import annotations

from pathlib import Path

from quench.methods import get_method
from quench.methods.quantizing import Calibration
from quench.models import load_model, load_tokenizer
from quench.recipe import load_recipe
from quench.stages.export import export_modelopt
from tests.conftest import REPO

RECIPES = {"FP8": "fp8", "INT8_SQ": "int8-sq", "INT4_AWQ": "int4-awq", "W4A8_AWQ": "w4a8-awq"}
CALIBRATION_TEXT = "data/wikitext2_valid_calibration/valid.txt"


def calibration_set(mirror: Path, tokenizer_dir: Path, samples: int = 8, length: int = 64):
    """A few tokenized WikiText-2 validation records, as the calibrate stage stores them."""
    import datasets

    lines = [x for x in (mirror / CALIBRATION_TEXT).read_text().splitlines() if x.strip()]
    ids = load_tokenizer(tokenizer_dir)(lines[:samples], truncation=True,
                                        max_length=length)["input_ids"]
    return datasets.Dataset.from_dict({"input_ids": ids})


def quantize(scheme: str, mirror: Path, model_dir: Path, out: Path) -> tuple[Path, list[str]]:
    """The modelopt method on the tiny model: quantize, save (fake-quantized), tokenizer too."""
    method, options = get_method("modelopt"), recipe(scheme).quantization.options
    model = load_model(model_dir, "float32")
    calibration = Calibration(dataset=calibration_set(mirror, model_dir), num_samples=8,
                              max_seq_length=64, seed=0, pipeline="auto",
                              trust_remote_code=False)
    done = method.quantize(model, scheme, options, calibration)
    method.save(model, out, done.quantized, "5GB")
    load_tokenizer(model_dir).save_pretrained(out)
    return out, list(done.warnings)


def recipe(scheme: str, *overrides: str):
    return load_recipe(REPO / "recipes" / f"tinystories-modelopt-{RECIPES[scheme]}.yaml",
                       list(overrides))


def export(quantized: Path, out: Path, kind: str, scheme: str) -> Path:
    """ModelOpt's export (unified HF or TensorRT-LLM checkpoint) as the export stage writes it."""
    export_modelopt(quantized, out, kind, recipe(scheme))
    return out
