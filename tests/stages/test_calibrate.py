"""The calibrate stage on real files: seeded draws, truncation, lineage, empty input."""

from __future__ import annotations

import datasets
import pytest

from quench.contract.manifest import Manifest
from quench.contract.stage import StageContext
from quench.errors import StageError
from quench.recipe import load_recipe
from quench.stages import get_stage

from ..conftest import DEFAULT_RECIPE


def _run(tmp_path, tiny_model, source, **calibration):
    overrides = [f"calibration.source={source}"]
    overrides += [f"calibration.{k}={v}" for k, v in calibration.items()]
    recipe = load_recipe(DEFAULT_RECIPE, overrides)
    model = Manifest(tmp_path, {"key": "m", "status": "ran",
                                "outputs": {"model_dir": str(tiny_model)}})
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    stage = get_stage("calibrate")
    return out, stage.run(StageContext(recipe, {"model": model}, out, stage.config(recipe)))


def test_seeded_truncated_draw_with_lineage(tmp_path, mirror, tiny_model):
    source = mirror / "data" / "wikitext2_valid_calibration" / "valid.txt"
    out, result = _run(tmp_path, tiny_model, source, num_samples=16, max_seq_length=32, seed=3)
    lineage = result.outputs["lineage"]
    assert lineage["num_samples"] == 16 and lineage["seed"] == 3
    assert lineage["digest"] == {"valid.txt": (
        "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8")}
    data = datasets.load_from_disk(str(out / "tokenized"))
    assert len(data) == 16 and max(len(x) for x in data["input_ids"]) <= 32
    assert lineage["truncated_samples"] > 0
    _, again = _run(tmp_path, tiny_model, source, num_samples=16, max_seq_length=32, seed=3)
    _, other = _run(tmp_path, tiny_model, source, num_samples=16, max_seq_length=32, seed=4)
    assert again.outputs["record_indices"] == result.outputs["record_indices"]
    assert other.outputs["record_indices"] != result.outputs["record_indices"]


def test_empty_file_and_too_few_records_are_named(tmp_path, tiny_model):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(StageError, match=r"calibration.source: .*empty.txt holds no non-empty"):
        _run(tmp_path, tiny_model, empty)
    few = tmp_path / "few.txt"
    few.write_text("one\ntwo\n")
    with pytest.raises(StageError, match="calibration.num_samples: asked for 64, but .* only 2"):
        _run(tmp_path, tiny_model, few)


def test_a_source_with_exactly_num_samples_records_leaves_none_held_out(tmp_path, tiny_model):
    exact = tmp_path / "exact.txt"
    exact.write_text("".join(f"Once upon a time there was a dog number {i}.\n" for i in range(8)))
    out, result = _run(tmp_path, tiny_model, exact, num_samples=8)
    assert len(datasets.load_from_disk(str(out / "tokenized"))) == 8
    assert result.outputs["heldout_input_ids"] == []


def test_parquet_source_with_a_named_column(tmp_path, tiny_model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "calib.parquet"
    rows = [f"Once upon a time there was a cat number {i}." for i in range(20)]
    pq.write_table(pa.table({"body": rows, "id": list(range(20))}), source)
    out, result = _run(tmp_path, tiny_model, source, num_samples=8, text_field="body")
    assert result.outputs["lineage"]["records_available"] == 20
    assert len(datasets.load_from_disk(str(out / "tokenized"))) == 8
    assert len(result.outputs["heldout_input_ids"]) == 4
