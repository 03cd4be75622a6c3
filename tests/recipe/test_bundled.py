"""Every bundled recipe and sweep validates, and bundled names work from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quench.bundled import bundled_dir
from quench.errors import QuenchError, RecipeError
from quench.preflight import check_recipe
from quench.recipe import load_recipe
from quench.recipe.catalog import copy_bundled, render_list
from quench.recipe.find import bundled_file, bundled_files, find_file
from quench.sources import resolve_spec
from quench.sweep.load import prepare, read_sweep

RECIPES = sorted(p for p in bundled_dir("recipes").rglob("*.yaml") if p.parent.name != "base")
SWEEPS = sorted(bundled_dir("sweeps").glob("*.yaml"))
HUB_ONLY = "is not in the mirror"  # an example's 8B hub model, offline: a warning, not an error


def _needs(path: Path, mirror_has_tiny: bool, smollm2: bool) -> str | None:
    """Why a bundled file cannot be checked here (its model is not on this machine), or None."""
    if path.name.startswith("tinystories") and not mirror_has_tiny:
        return "TinyStories-656K comes from the offline mirror (QUENCH_MIRROR)"
    if path.name.startswith("smollm2") and not smollm2:
        return "SmolLM2 is not fetched (quench setup models)"
    return None


@pytest.fixture(scope="module")
def models_here() -> tuple[bool, bool]:
    """Whether the mirror's TinyStories model and the fetched SmolLM2 model are here."""
    mirror = os.environ.get("QUENCH_MIRROR")
    tiny = bool(mirror) and (Path(mirror) / "models" / "tinystories-656k").is_dir()
    try:
        resolve_spec(load_recipe("smollm2-none").model)
    except QuenchError:
        return tiny, False
    return tiny, True


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_bundled_recipe_validates(path: Path, models_here):
    """Errors fail; warnings (an example's hub model not mirrored offline) are allowed."""
    reason = _needs(path, *models_here)
    if reason:
        if os.environ.get("CI") and "SmolLM2" in reason:
            pytest.fail(reason)
        pytest.skip(reason)
    warnings = check_recipe(load_recipe(path), for_run=False)
    if path.parent.name != "examples":
        assert not [w for w in warnings if HUB_ONLY in w], warnings


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_bundled_sweep_validates(path: Path, models_here):
    """prepare() loads the base and baseline recipes and checks every trial it can know."""
    reason = _needs(path, *models_here)
    if reason:
        pytest.skip(reason)
    prepared = prepare(path, read_sweep(path))
    assert prepared.space is not None and prepared.base_recipe.name


def test_the_list_names_every_file_once_with_a_description():
    files = bundled_files()
    names = [f.name for f in files]
    assert len(names) == len(set(names)) == len(RECIPES) + len(SWEEPS)
    assert all(f.description for f in files), [f.name for f in files if not f.description]
    text = render_list(files)
    assert all(f"  {name} " in text for name in names)
    assert "base" not in names  # fragments (base/) are extended, not run


@pytest.mark.parametrize("ref", ["smollm2-none", "smollm2-none.yaml", "recipes/smollm2-none.yaml"])
def test_a_bundled_name_is_found_from_any_folder(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_file(ref) == bundled_dir("recipes") / "smollm2-none.yaml"


def test_a_local_file_wins_over_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smollm2-none.yaml").write_text("name: mine\n")
    assert find_file("smollm2-none.yaml") == Path("smollm2-none.yaml")
    assert bundled_file("../recipes/smollm2-none.yaml") is None  # no escape from the folder


def test_an_unknown_name_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError, match=r"recipe file not found: nope.yaml .*quench recipes"):
        find_file("nope.yaml")


def test_copy_writes_an_editable_file_that_runs_from_its_folder(tmp_path, monkeypatch):
    """The copy keeps `extends: smollm2-smoothquant-w8a8.yaml`; it resolves to the bundled
    parent, so the copy loads with the same settings as the bundled recipe."""
    monkeypatch.chdir(tmp_path)
    copied = copy_bundled("smollm2-default", None)
    assert copied == Path("smollm2-default.yaml")
    assert copied.read_text() == (bundled_dir("recipes") / "smollm2-default.yaml").read_text()
    assert load_recipe(copied) == load_recipe("smollm2-default")
    with pytest.raises(RecipeError, match="exists; pass --force"):
        copy_bundled("smollm2-default", str(tmp_path))
    assert copy_bundled("tinystories-w4", "sweep.yaml").read_text().startswith("#")


def test_the_cli_lists_copies_and_refuses_with_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QUENCH_MIRROR"}

    def quench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "quench", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    listed = quench("recipes")
    assert listed.returncode == 0 and "smollm2-default" in listed.stdout
    assert "examples (GPU hosts):" in listed.stdout and "tinystories-w4" in listed.stdout
    copied = quench("recipes", "copy", "smollm2-lm-eval", "mine.yaml")
    assert copied.returncode == 0 and (tmp_path / "mine.yaml").is_file(), copied.stderr
    again = quench("recipes", "copy", "smollm2-lm-eval", "mine.yaml")
    assert again.returncode == 2 and "mine.yaml exists" in again.stderr
    typo = quench("recipes", "copy", "smollm2-defualt")
    assert typo.returncode == 2 and "did you mean smollm2-default" in typo.stderr
