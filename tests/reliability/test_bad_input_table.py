"""The bad-input table: each row is an input, the exit code `quench validate` must give, the
words its message must contain, and nothing may be written into the output folder.

Validate runs in-process (quench.cli.main), so the whole table takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quench.cli import main

from ..conftest import DEFAULT_RECIPE
from . import cases as c

D = DEFAULT_RECIPE
LONG = "x" * 70_000
TOKEN = "hf_" + "Rk9sT2vLm9XkP4sWn7YbC3dF6gH1jK5aQx"  # the shape of a Hugging Face token
Build = Callable[[Path], c.Inputs]


def given(*overrides: str, recipe: Path = D) -> Build:
    return lambda tmp: (recipe, list(overrides))


TABLE: list[tuple[str, Build, int, list[str]]] = [
    # recipe files: size, aliases, nesting, encoding, duplicates, syntax
    ("anchor-bomb", lambda t: c.recipe_text(t, c.anchor_bomb()), 2,
     ["r.yaml", "aliases", "expand to more than 100,000"]),
    ("10MB-recipe", lambda t: c.recipe_text(t, "#" * 10_000_000 + "\n"), 2,
     ["r.yaml", "10,000,001 bytes", "at most 1,048,576"]),
    ("deep-lists", lambda t: c.recipe_text(t, "a: " + "[" * 5000 + "]" * 5000), 2,
     ["r.yaml:1", "nested more than 64 levels"]),
    ("deep-mappings", lambda t: c.recipe_text(t, "a: " + "{a: " * 5000 + "1" + "}" * 5000), 2,
     ["r.yaml:1", "nested more than 64 levels"]),
    ("latin1-recipe", lambda t: c.recipe_text(t, "model: {id: x}\n\ndescription: caf\xe9\n"
                                              .encode("latin-1")), 2,
     ["r.yaml:3", "not UTF-8", "0xe9"]),
    ("binary-recipe", lambda t: c.recipe_text(t, b"\x00\x01\x02model"), 2,
     ["r.yaml", "not allowed in YAML", "binary"]),
    ("duplicate-top-key", lambda t: c.child_recipe(t, "name: a\nname: b\n"), 2,
     ["r.yaml:3", "duplicate key 'name'", "first set on line 2"]),
    ("duplicate-nested-key", lambda t: c.child_recipe(
        t, "calibration:\n  seed: 1\n  num_samples: 4\n  seed: 2\n"), 2,
     ["r.yaml:5", "duplicate key 'seed'"]),
    ("yaml-syntax", lambda t: c.recipe_text(t, "model: {id: x\nname: y\n"), 2,
     ["not valid YAML", "r.yaml:"]),
    ("not-a-mapping", lambda t: c.recipe_text(t, "- a\n- b\n"), 2, ["must be a mapping"]),
    ("missing-recipe", lambda t: (t / "nope.yaml", []), 2, ["recipe file not found"]),
    ("extends-cycle", lambda t: c.recipe_text(t, "extends: r.yaml\n"), 2, ["cycle"]),
    ("extends-not-a-path", lambda t: c.recipe_text(t, "extends: [a, b]\n"), 2,
     ["extends: expected a file path"]),
    # overrides
    ("repeated-override", given("calibration.seed=1", "calibration.seed=2"), 2,
     ["calibration.seed", "already set by", "calibration.seed=1", "once"]),
    ("override-no-equals", given("calibration.seed"), 2, ["expected key.sub=value"]),
    ("override-through-scalar", given("model.id.x=1"), 2, ["model.id is", "not a mapping"]),
    ("override-too-long", given(f"description={LONG}"), 2,
     ["override description", "70,012 characters", "at most 65,536"]),
    ("override-anchor-bomb", given("description=" + c.anchor_bomb().replace("\n", ", ")
                                   .join("{}")), 2, ["override description", "aliases"]),
    ("override-duplicate-key", given("calibration={seed: 1, seed: 2}"), 2,
     ["override calibration", "duplicate key 'seed'"]),
    # strict types
    ("bool-for-int", given("calibration.num_samples=true"), 2,
     ["calibration.num_samples", "valid integer", "True"]),
    ("string-for-bool", given('model.trust_remote_code="on"'), 2,
     ["model.trust_remote_code", "valid boolean", "'on'"]),
    ("string-for-int", given('evaluation.perplexity.window="256"'), 2,
     ["evaluation.perplexity.window", "valid integer", "'256'"]),
    ("infinite-threshold", given("gate.max_kl_divergence=.inf"), 2,
     ["gate.max_kl_divergence", "finite number"]),
    ("nan-threshold", given("gate.max_accuracy_drop=.nan"), 2,
     ["gate.max_accuracy_drop", "finite number"]),
    ("float-for-int", given("calibration.num_samples=64.5"), 2,
     ["calibration.num_samples", "valid integer"]),
    ("bad-literal", given("model.dtype=float8"), 2, ["model.dtype", "'auto', 'float32'"]),
    ("name-300-chars", given("name=" + "n" * 300), 2,
     ["name", "at most 100 characters", "(300 characters)"]),
    ("name-with-space", given("name=has space"), 2, ["name", "should match pattern"]),
    ("description-too-long", given("description=" + "d" * 20_000), 2,
     ["description", "at most 10000 characters"]),
    ("device-pattern", given("compute.device=tpu"), 2, ["compute.device", "pattern"]),
    # unknown keys and names
    ("unknown-top-key", given("modle.id=x"), 2,
     ["modle: unknown key", "did you mean `model`?", "allowed: name, description, model"]),
    ("unknown-nested-key", given("quantization.shceme=W4A16"), 2,
     ["quantization.shceme: unknown key", "did you mean `scheme`?",
      "allowed: method, scheme, options"]),
    ("unknown-method-option", given("quantization.options.group_sise=32"), 2,
     ["quantization.options.group_sise", "did you mean `group_size`?",
      "allowed: targets, ignore, kv_cache, kv_cache_strategy, group_size"]),
    ("huge-unknown-key", given("k" * 60_000 + "=1"), 2, ["kkkk: unknown key", "allowed: name"]),
    ("huge-method-name", given("quantization.method=" + "m" * 60_000), 2,
     ["quantization.method", "(60000 characters)", "allowed:"]),
    ("unknown-method", given("quantization.method=magic"), 2,
     ["quantization.method", "'magic'", "allowed:", "rtn"]),
    ("scheme-not-allowed", given("quantization.scheme=W8A8"), 2,
     ["quantization.scheme", "allowed: W3A16, W4A16, W8A16"]),
    ("vllm-unknown-option", given(c.VLLM, "target.options.max_modle_len=512"), 2,
     ["target.options.max_modle_len", "did you mean `max_model_len`?", "extra_args"]),
    ("vllm-string-for-int", given(c.VLLM, 'target.options.max_model_len="512"'), 2,
     ["target.options.max_model_len", "valid integer", "'512'"]),
    ("vllm-string-for-bool", given(c.VLLM, 'target.options.enforce_eager="yes"'), 2,
     ["target.options.enforce_eager", "valid boolean"]),
    ("vllm-extra-args-shadow", given(c.VLLM, "target.options.extra_args=[--max-model-len, '9']"),
     2, ["extra_args", "'--max-model-len' is the typed option `max_model_len`"]),
    ("hf-takes-no-options", given("target={engine: hf, options: {port: 1}}"), 2,
     ["target.options.port", "unknown option for engine 'hf'", "allowed: none"]),
    ("trtllm-unknown-option", given("target={engine: tensorrt-llm, gpu: H100, options: "
                                    "{max_batch_sise: 8}}"), 2,
     ["target.options.max_batch_sise", "did you mean `max_batch_size`?"]),
    ("unknown-lm-eval-task", given("evaluation.lm_eval={tasks: [pika]}"), 2,
     ["evaluation.lm_eval.tasks", "unknown task 'pika'", "piqa"]),
    ("repeated-lm-eval-task", given("evaluation.lm_eval={tasks: [piqa, piqa]}"), 2,
     ["evaluation.lm_eval.tasks", "listed more than once: piqa"]),
    ("stride-over-window", given("evaluation.perplexity.stride=999"), 2,
     ["evaluation.perplexity.stride", "must be <= window (256)"]),
    ("prompts-under-concurrency", given("evaluation.throughput={concurrency: [8], "
                                        "num_prompts: 2}"), 2,
     ["evaluation.throughput.num_prompts", "less than the largest concurrency (8)"]),
    # data files (pre-flight, before any model is loaded)
    ("latin1-calibration", lambda t: c.data_file(t, "calib.txt", "one\ntwo\ncaf\xe9\n"
                                                 .encode("latin-1")), 2,
     ["calibration.source", "calib.txt:3", "not UTF-8", "iconv"]),
    ("binary-calibration", lambda t: c.data_file(t, "calib.txt", b"\x89PNG\r\n\x00\x00data"), 2,
     ["calibration.source", "calib.txt", "binary file", "allowed: a UTF-8 .txt"]),
    ("malformed-jsonl", lambda t: c.data_file(t, "calib.jsonl", b'{"text": "a"}\n{"text": \n'),
     2, ["calibration.source", "calib.jsonl:2", "not a JSON object per line"]),
    ("jsonl-not-object", lambda t: c.data_file(t, "calib.jsonl", b'{"text": "a"}\n[1, 2]\n'), 2,
     ["calib.jsonl:2", "expected a JSON object", "list"]),
    ("jsonl-no-field", lambda t: c.data_file(t, "calib.jsonl", b'{"body": "a"}\n'), 2,
     ["calib.jsonl:1", "no field 'text'", "text_field"]),
    ("malformed-parquet", c.bad_parquet, 2,
     ["calibration.source", "calib.parquet", "not a readable parquet file"]),
    ("parquet-no-column", c.parquet_without_text, 2,
     ["calib.parquet", "no column 'text'", "body"]),
    ("huge-calibration", c.huge_calibration, 2,
     ["calibration.source", "huge.txt", "1,073,741,825 bytes", "at most 1,073,741,824"]),
    ("calibration-is-a-folder", given("quantization.method=gptq", "calibration.source=."), 2,
     ["calibration.source", ". is not a file"]),
    ("calibration-missing", given("quantization.method=gptq", "calibration.source=./nope.txt"),
     2, ["calibration.source", "nope.txt is not a file"]),
    ("calibration-too-small", lambda t: c.data_file(t, "calib.txt", b"one line\n"), 2,
     ["calibration.num_samples", "asked for 2", "only 1"]),
    ("latin1-eval-dataset", lambda t: c.perplexity_file(t, "caf\xe9\n".encode("latin-1")), 2,
     ["evaluation.perplexity.dataset", "eval.txt:1", "not UTF-8"]),
    ("empty-eval-dataset", lambda t: c.perplexity_file(t, b"\n\n"), 2,
     ["evaluation.perplexity.dataset", "no non-empty text"]),
    # the model
    ("config-invalid-json", lambda t: c.model_with_config(t, '{"hidden_size": 128,'), 2,
     ["config.json", "not valid JSON"]),
    ("config-not-object", lambda t: c.model_with_config(t, "[1, 2]"), 2,
     ["config.json", "expected a JSON object, got list"]),
    ("config-wrong-type", lambda t: c.config_with(t, hidden_size="128"), 2,
     ["config.json", "hidden_size must be a positive integer", "'128'"]),
    ("config-bool-heads", lambda t: c.config_with(t, num_attention_heads=True), 2,
     ["config.json", "num_attention_heads must be a positive integer"]),
    ("config-auto-map-not-object", lambda t: c.config_with(t, auto_map="x.Y"), 2,
     ["config.json", "auto_map must be a JSON object"]),
    ("model-missing", given("model.id=./no-such-model"), 2,
     ["model.id", "no-such-model is not a model folder"]),
    ("custom-code-warns", c.custom_code_model, 0,
     ["warning: model.id", "auto_map", "model.trust_remote_code: true"]),
    # a secret inside a path: it would be written verbatim into manifests and MLflow
    ("token-in-model-path", given(f"model.id=./models/{TOKEN}"), 2,
     ["model.id: ./models/[REDACTED] holds a secret"]),
    ("token-in-output-dir", given(f"output.dir=./runs/{TOKEN}/out"), 2,
     ["output.dir: ./runs/[REDACTED]/out holds a secret"]),
    ("token-in-calibration-path", given(f"calibration.source=./data/{TOKEN}.txt"), 2,
     ["calibration.source: ./data/[REDACTED].txt holds a secret"]),
    ("token-in-name", given(f"name=run-{TOKEN}"), 2, ["name: run-[REDACTED] holds a secret"]),
    # the output folder
    ("output-symlink-loop", c.symlink_loop, 2, ["output.dir", "loop-a", "loop"]),
    ("output-under-a-file", lambda t: ((t / "f").write_text("x"), (D, [f"output.dir={t}/f/o"]))[1],
     2, ["output.dir", "is not writable"]),
]


@pytest.mark.parametrize(("build", "code", "words"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_bad_input(build: Build, code: int, words: list[str], tmp_path, mirror, capsys,
                   monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in a row resolve inside the test's folder
    recipe, overrides = build(tmp_path)
    if not any(o.startswith("output.dir=") for o in overrides):
        overrides.append(f"output.dir={tmp_path / 'out'}")
    assert main(["validate", str(recipe), *overrides]) == code
    err = capsys.readouterr().err
    for word in words:
        assert word in err, f"{word!r} not in: {err[:3000]}"
    assert "Traceback" not in err
    assert len(err) < 5000  # no echo of megabytes of input
    assert not (tmp_path / "out").exists()


def test_the_table_is_big_enough():
    """Issue 13 asks for at least 40 bad inputs."""
    assert len(TABLE) >= 40 and len({row[0] for row in TABLE}) == len(TABLE)
