"""Publishing by declaration (`Stage.publishes`): the report files and the model folder, and a
new stage that declares publishes is published without the runner naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import quench.runner.run as run_module
from quench.contract.manifest import Manifest
from quench.contract.stage import Publishes, Stage, StageContext, StageResult
from quench.recipe import load_recipe
from quench.runner.graph import Node
from quench.runner.publish import publish
from quench.stages import STAGES, get_stage

from ..conftest import DEFAULT_RECIPE


def _entry(root: Path, name: str, files: dict[str, str], outputs: dict[str, Any],
           status: str = "ran") -> Manifest:
    """A stage folder holding `files` (name -> text) and a manifest with `outputs`."""
    folder = root / name
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    folder.mkdir(parents=True, exist_ok=True)
    return Manifest(folder, {"key": name, "status": status, "outputs": outputs})


def _graph_entries(root: Path, export_status: str) -> list[tuple[Publishes | None, Manifest]]:
    """The real stages' declarations over fixed stage folders (quantize, export, license,
    report), as the runner hands them to publish()."""
    quantize = _entry(root, "quantize", {"model/model.safetensors": "q-weights",
                                         "model/config.json": "q-config",
                                         "model/tokenizer.json": "tok",
                                         "model/generation_config.json": "gen"},
                      {"model_dir": "model"})
    skipped = export_status.startswith("skipped")
    export = _entry(root, "export", {} if skipped else {
        "ckpt/rank0.safetensors": "e-weights", "ckpt/config.json": "e-config"},
        {} if skipped else {"model_dir": "ckpt"}, export_status)
    license_ = _entry(root, "license", {"LICENSE.txt": "license text"},
                      {"artifact_files": {"LICENSE": "LICENSE.txt"}})
    report = _entry(root, "report", {"report.md": "# md", "report.json": "{}",
                                     "model_card.md": "card"},
                    {"report_md": "report.md", "report_json": "report.json",
                     "artifact_files": {"README.md": "model_card.md"}})
    return [(get_stage(name).publishes, m) for name, m in
            (("quantize", quantize), ("export", export), ("license", license_),
             ("report", report))]


def _published(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


def test_without_export_the_quantized_checkpoint_is_published(tmp_path):
    run_dir = tmp_path / "run"
    publish(run_dir, _graph_entries(tmp_path / "cache", "skipped: no target"))
    assert _published(run_dir) == {"report.json": "{}", "report.md": "# md"}
    assert _published(run_dir / "model") == {
        "LICENSE": "license text", "README.md": "card", "config.json": "q-config",
        "generation_config.json": "gen", "model.safetensors": "q-weights",
        "tokenizer.json": "tok"}


def test_an_export_replaces_the_checkpoint_and_keeps_its_tokenizer(tmp_path):
    run_dir = tmp_path / "run"
    publish(run_dir, _graph_entries(tmp_path / "cache", "ran"))
    assert _published(run_dir / "model") == {
        "LICENSE": "license text", "README.md": "card", "config.json": "e-config",
        "generation_config.json": "gen", "rank0.safetensors": "e-weights",
        "tokenizer.json": "tok"}


class _MakeStage(Stage):
    """A test stage writing a one-file checkpoint it declares as the model folder."""

    name = "test-publish-make"
    publishes = Publishes(model_dir="weights")

    def run(self, ctx: StageContext) -> StageResult:
        (ctx.out_dir / "w").mkdir()
        (ctx.out_dir / "w" / "weights.bin").write_text("made")
        return StageResult(outputs={"weights": "w"})


class _NotesStage(Stage):
    """A test stage no runner code knows, declaring a file for <output>/<run>/."""

    name = "test-publish-notes"
    publishes = Publishes(files={"notes.txt": "notes"})

    def run(self, ctx: StageContext) -> StageResult:
        made = ctx.inputs["made"].path("weights") / "weights.bin"
        (ctx.out_dir / "notes.txt").write_text(f"notes on {made.read_text()}")
        return StageResult(outputs={"notes": "notes.txt"})


@pytest.fixture
def new_stages_graph(monkeypatch):
    """A graph of two stages the runner's code never names, registered for this test only."""
    with STAGES.temporary(_MakeStage), STAGES.temporary(_NotesStage):
        monkeypatch.setattr(run_module, "PIPELINE", (
            Node("make", _MakeStage.name), Node("notes", _NotesStage.name, {"made": "make"})))
        yield


def test_a_new_stage_declaring_publishes_is_published(mirror, tmp_path, new_stages_graph):
    recipe = load_recipe(DEFAULT_RECIPE, [f"output.dir={tmp_path}", "tracking.backend=none"])
    summary = run_module.run_pipeline(recipe)
    assert (summary.run_dir / "notes.txt").read_text() == "notes on made"
    assert _published(summary.run_dir / "model") == {"weights.bin": "made"}
    assert summary.tracking == {}  # no stage in this graph closes a tracker run
    nodes = json.loads((summary.run_dir / "run.json").read_text())["nodes"]
    assert {n: v["status"] for n, v in nodes.items()} == {"make": "ran", "notes": "ran"}
