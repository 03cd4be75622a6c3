"""The quench home: where it is ($QUENCH_HOME or the per-user data folder), what is found in
it (engine environments, bundled models by short name), and the errors when it is empty."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from quench import home
from quench.engines import get_engine
from quench.errors import NotSetUp, QuenchError
from quench.serving import bench_client
from quench.sources import BUNDLED_MODELS, names_gguf, resolve_model

NAME = "smollm2-135m-instruct"


def test_quench_home_is_the_variable_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path / "h"))
    assert home.home_dir() == tmp_path / "h"
    assert home.env_dir("vllm") == tmp_path / "h" / "envs" / "vllm"
    assert home.model_dir(NAME) == tmp_path / "h" / "models" / NAME
    assert home.logs_dir() == tmp_path / "h" / "logs"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUENCH_HOME", "relative/home")
    assert home.home_dir() == tmp_path / "relative" / "home"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG layout is Linux's")
def test_default_is_the_per_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("QUENCH_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert home.home_dir() == tmp_path / "data" / "quench"
    monkeypatch.setenv("QUENCH_HOME", "")  # empty: as if unset
    assert home.home_dir() == tmp_path / "data" / "quench"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert home.home_dir() == Path.home() / ".local" / "share" / "quench"


def test_engines_find_their_environment_in_the_home(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    assert get_engine("vllm").env_dir == tmp_path / "envs" / "vllm"
    assert get_engine("tensorrt-llm").env_dir == tmp_path / "envs" / "tensorrt-llm"
    assert bench_client.default_env() == tmp_path / "envs" / "vllm"
    assert get_engine("vllm").client_env == tmp_path / "envs" / "vllm"
    own = tmp_path / "elsewhere"
    assert get_engine("vllm", str(own)).env_dir == own  # target.environment wins
    assert get_engine("tensorrt-llm", str(own)).env_dir == own


def test_short_name_resolves_to_the_fetched_file(tmp_path, monkeypatch, smollm2_gguf):
    folder = tmp_path / "models" / NAME
    folder.mkdir(parents=True)
    (folder / smollm2_gguf.name).symlink_to(smollm2_gguf)
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    resolved = resolve_model(NAME)
    assert resolved.origin == "bundled"
    assert resolved.gguf_file == folder / "SmolLM2-135M-Instruct.Q4_1.gguf" == resolved.source
    assert resolved.path == folder
    assert resolve_model(NAME, download=False) == resolved


def test_unfetched_short_name_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotSetUp) as info:
        resolve_model(NAME, download=False)
    expected = BUNDLED_MODELS[NAME].path
    assert str(info.value) == (f"model.id: '{NAME}' is a bundled model that is not fetched yet "
                               f"(expected {expected}): run `quench setup models`")
    with pytest.raises(QuenchError, match="leave model.gguf_file out"):
        resolve_model(NAME, gguf_file="other.gguf")


def test_a_local_folder_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "config.json").write_text("{}")
    resolved = resolve_model(NAME)
    assert (resolved.origin, resolved.path) == ("local", tmp_path / NAME)


def test_the_old_checkout_path_points_to_the_short_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QuenchError, match=rf"`model.id: {NAME}`.*`quench setup models`"):
        resolve_model(f"models/{NAME}/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_a_bundled_gguf_is_known_as_gguf_before_resolving():
    class Ref:
        id, revision, gguf_file = NAME, None, None

    assert names_gguf(Ref())  # the resolve stage keys its dtype and shard size on it
    Ref.id = "raincandy-u/TinyStories-656K"
    assert not names_gguf(Ref())
