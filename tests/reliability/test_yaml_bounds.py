"""Bounds that must hold fast: the anchor bomb, deep nesting and unknown lm-eval tasks are
rejected in well under the time a user would wait, and every recipe we ship still loads."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest

from quench.errors import RecipeError
from quench.recipe import load_recipe
from quench.recipe.yaml_bounds import MAX_NODES, load_bounded
from quench.strict import shorten

from ..conftest import REPO
from .cases import anchor_bomb


def test_anchor_bomb_is_rejected_before_it_expands(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(anchor_bomb(9, 10))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="aliases") as info:
        load_recipe(path)
    print(f"anchor bomb rejected in {time.perf_counter() - start:.3f} s")  # no timed assert
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    assert len(str(info.value)) < 300


def test_aliases_within_the_bound_still_work():
    data = load_bounded("base: &b {x: 1}\nfirst: *b\nsecond: {<<: *b, y: 2}\n", "t")
    assert data == {"base": {"x": 1}, "first": {"x": 1}, "second": {"x": 1, "y": 2}}
    wide = "a: &a [" + ", ".join(["1"] * 100) + "]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    assert len(load_bounded(wide, "t")["b"]) == 100  # 10,000 values < MAX_NODES
    assert MAX_NODES >= 10_000


def test_merge_keys_may_be_overridden_without_a_duplicate_error():
    assert load_bounded("b: &b {x: 1}\nc: {<<: *b, x: 2}\n", "t")["c"] == {"x": 2}


def test_recursion_is_an_error_not_a_traceback():
    with pytest.raises(RecipeError, match="nested more than"):
        load_bounded("[" * 100_000, "t")


def test_shown_values_are_cut():
    assert shorten("x" * 10) == repr("x" * 10)
    cut = shorten("y" * 1_000_000)
    assert len(cut) < 120 and "(1000000 characters)" in cut


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").rglob("*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_every_shipped_recipe_still_loads(recipe):
    if recipe.parent.name == "base":
        pytest.skip("a base file, extended by the others")
    assert load_recipe(recipe).name


def test_unknown_lm_eval_task_is_rejected_without_indexing_lm_eval_again():
    """The first check on a machine indexes lm-eval's tasks once (~13 s) into a cache file;
    every later one, in a new process as a user's next command, never imports lm-eval (0.2 s
    measured here: speed is shown, not asserted)."""
    code = (
        "import json, time\n"
        "from quench.evals.check import check_tasks\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    check_tasks(['pika'])\n"
        "except Exception as exc:\n"
        "    import sys\n"
        "    print(json.dumps([time.perf_counter() - start, str(exc), 'lm_eval' in sys.modules]))\n"
    )
    run = [sys.executable, "-c", code]
    subprocess.run(run, cwd=REPO, capture_output=True, check=True, timeout=120)  # warm
    second = subprocess.run(run, cwd=REPO, capture_output=True, text=True, check=True,
                            timeout=60)
    seconds, message, imported = json.loads(second.stdout)
    assert "unknown task 'pika'" in message and "piqa" in message
    assert not imported  # answered from the index file
    print(f"unknown task rejected in {seconds:.2f} s")


def test_a_recursive_alias_is_rejected_not_expanded_forever():
    with pytest.raises(RecipeError, match="aliases"):
        load_bounded("a: &a [*a]\n", "t")
