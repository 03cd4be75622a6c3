"""`quench setup llama.cpp`: the tools built in the quench home run, with the
converter of the same sources; a build of another CPU is rebuilt; bad sources build nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from quench import home
from quench.errors import QuenchError
from quench.llamacpp import tools
from quench.setup import llamacpp


@pytest.fixture(scope="module")
def built() -> Path:
    """The build in the quench home (`make setup-llamacpp`); without one these skip."""
    env = home.env_dir(llamacpp.ENGINE)
    if llamacpp.llamacpp_state(env, llamacpp.llamacpp_spec()) != "present":
        pytest.skip(f"{env} not built: run `make setup-llamacpp` (quench setup llama.cpp)")
    return env


def test_the_tools_run_and_the_marker_names_the_sources(built: Path) -> None:
    marker = json.loads(home.env_marker(built).read_text())
    assert marker["spec"]["sha256"] == llamacpp.SDIST_SHA256
    assert marker["commit"].startswith("0c1e5709")
    assert marker["commit"][:7] in marker["version"]  # what the binaries say they were built from
    for tool in ("llama-imatrix", "llama-perplexity", "llama-server"):
        done = subprocess.run([str(tools.tool_path(tool, built)), "--version"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (tool, done.stderr[-2000:])
        assert marker["commit"][:7] in done.stderr + done.stdout
    usage = subprocess.run([str(tools.tool_path("llama-quantize", built))],  # no --version
                           capture_output=True, text=True, timeout=60).stdout
    assert "Q4_K_M" in usage and "IQ4_XS" in usage, usage[-2000:]


def test_the_converter_runs_on_its_own_gguf_py(built: Path) -> None:
    src = tools.converter_path(built).parent
    done = subprocess.run(
        [sys.executable, "-c", "import gguf, sys; print(gguf.__file__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src / "gguf-py")})
    assert done.stdout.strip().startswith(str(src / "gguf-py")), done.stderr
    done = subprocess.run([sys.executable, str(tools.converter_path(built)), "--help"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(src / "gguf-py")})
    assert done.returncode == 0 and "--outtype" in done.stdout, done.stderr[-2000:]


def _marked(env: Path, spec: llamacpp.LlamaCppSpec) -> None:
    env.mkdir(parents=True, exist_ok=True)
    home.env_marker(env).write_text(json.dumps({"spec": spec.recorded()}))


def test_a_build_for_another_cpu_or_version_is_rebuilt(tmp_path: Path) -> None:
    env, spec = tmp_path / "llama.cpp", llamacpp.llamacpp_spec()
    assert llamacpp.llamacpp_state(env, spec) == "missing"
    (env / "bin").mkdir(parents=True)
    assert llamacpp.llamacpp_state(env, spec) == "incomplete"
    _marked(env, spec)
    assert llamacpp.llamacpp_state(env, spec) == "present"
    _marked(env, replace(spec, cpu_flags=("avx2", "not-this-cpu")))
    assert llamacpp.llamacpp_state(env, spec) == "other-spec"
    _marked(env, replace(spec, sdist="llama-cpp-python==0.3.1"))
    assert llamacpp.llamacpp_state(env, spec) == "other-spec"
    assert llamacpp.llamacpp_state(env, llamacpp.llamacpp_spec(cuda=True)) == "other-spec"


def test_a_folder_quench_did_not_build_is_not_removed(tmp_path: Path) -> None:
    env = tmp_path / "llama.cpp"
    env.mkdir()
    (env / "notes.txt").write_text("mine")
    with pytest.raises(QuenchError, match=r"\['notes.txt'\].*not replaced"):
        llamacpp.setup_llamacpp(llamacpp.llamacpp_spec(), env)
    assert (env / "notes.txt").read_text() == "mine"


def test_sources_of_another_checksum_build_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(home.HOME_ENV, str(tmp_path / "home"))
    env = tmp_path / "home" / "envs" / "llama.cpp"
    spec = replace(llamacpp.llamacpp_spec(), sha256="0" * 64)
    with pytest.raises(QuenchError, match=r"sha256 832db069.*expected 0{64}.*nothing was built"):
        llamacpp.setup_llamacpp(spec, env)
    assert llamacpp.llamacpp_state(env, spec) == "incomplete"
    assert sorted(p.name for p in env.iterdir()) == []  # the download and unpacking are gone
