"""Builders of hostile or broken inputs: each writes into a test's temp folder and returns the
recipe file and overrides to validate with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..conftest import DEFAULT_RECIPE

GPTQ = DEFAULT_RECIPE.parent / "tinystories-gptq-w4a16.yaml"
VLLM = "target={engine: vllm, gpu: cpu}"
Inputs = tuple[Path, list[str]]


def anchor_bomb(levels: int = 9, width: int = 10) -> str:
    """The billion-laughs recipe: level i lists `width` aliases of level i-1."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\nmodel: {id: x}\n"


def recipe_text(tmp: Path, text: str | bytes, name: str = "r.yaml") -> Inputs:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path, []


def child_recipe(tmp: Path, body: str) -> Inputs:
    """A recipe extending the default one with `body` appended."""
    return recipe_text(tmp, f"extends: {DEFAULT_RECIPE}\n{body}")


def data_file(tmp: Path, name: str, content: bytes, *overrides: str) -> Inputs:
    """GPTQ (which calibrates) on a calibration file holding `content`."""
    path = tmp / name
    path.write_bytes(content)
    return GPTQ, [f"calibration.source={path}", "calibration.num_samples=2", *overrides]


def perplexity_file(tmp: Path, content: bytes) -> Inputs:
    path = tmp / "eval.txt"
    path.write_bytes(content)
    return DEFAULT_RECIPE, [f"evaluation.perplexity.dataset={path}"]


def bad_parquet(tmp: Path) -> Inputs:
    return data_file(tmp, "calib.parquet", b"PAR1 this is not parquet at all PAR1")


def parquet_without_text(tmp: Path) -> Inputs:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "calib.parquet"
    pq.write_table(pa.table({"body": ["one", "two", "three"]}), path)
    return GPTQ, [f"calibration.source={path}", "calibration.num_samples=2"]


def model_with_config(tmp: Path, config: str) -> Inputs:
    folder = tmp / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    return DEFAULT_RECIPE, [f"model.id={folder}"]


def tiny_config() -> dict:
    from quench.sources import find_model_in_mirror

    folder = find_model_in_mirror("raincandy-u/TinyStories-656K")
    return json.loads((folder / "config.json").read_text())


def config_with(tmp: Path, **fields: object) -> Inputs:
    return model_with_config(tmp, json.dumps({**tiny_config(), **fields}))


def custom_code_model(tmp: Path) -> Inputs:
    """A copy of the tiny model whose config.json names custom code (auto_map)."""
    from quench.sources import find_model_in_mirror

    folder = tmp / "custom"
    shutil.copytree(find_model_in_mirror("raincandy-u/TinyStories-656K"), folder)
    config = folder / "config.json"
    config.chmod(0o644)
    config.write_text(json.dumps({**tiny_config(),
                                  "auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}))
    return DEFAULT_RECIPE, [f"model.id={folder}"]


def symlink_loop(tmp: Path) -> Inputs:
    (tmp / "loop-a").symlink_to(tmp / "loop-b")
    (tmp / "loop-b").symlink_to(tmp / "loop-a")
    return DEFAULT_RECIPE, [f"output.dir={tmp / 'loop-a' / 'out'}"]


def huge_calibration(tmp: Path) -> Inputs:
    """A sparse calibration file just over the 1 GiB bound (no disk space used)."""
    from quench.textfiles import MAX_TEXT_BYTES

    path = tmp / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(MAX_TEXT_BYTES + 1)
    return GPTQ, [f"calibration.source={path}", "calibration.num_samples=2"]
