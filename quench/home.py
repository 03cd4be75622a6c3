"""The quench home: one per-user folder for engine environments and fetched models, found the
same way from a checkout or an installed wheel (`$QUENCH_HOME` moves it).

Layout: `envs/<engine>/` (a venv per served engine: vllm, tensorrt-llm), `models/<name>/`
(bundled models fetched by `quench setup models`), `logs/` (what `quench setup` ran).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "QUENCH_HOME"
ENV_MARKER = ".installed"  # written last into an engine env: present means complete


def home_dir() -> Path:
    """$QUENCH_HOME, else the per-user data folder (Linux: ~/.local/share/quench)."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser().absolute()
    return platformdirs.user_data_path("quench", appauthor=False)


def envs_dir() -> Path:
    """Where engine environments live."""
    return home_dir() / "envs"


def env_dir(engine: str) -> Path:
    """The default environment of `engine` (a venv created by `quench setup <engine>`)."""
    return envs_dir() / engine


def env_marker(env: Path) -> Path:
    """The file that says an environment was completely built (and with what)."""
    return env / ENV_MARKER


def models_dir() -> Path:
    """Where bundled models are fetched to."""
    return home_dir() / "models"


def model_dir(name: str) -> Path:
    """The folder of the bundled model `name`."""
    return models_dir() / name


def logs_dir() -> Path:
    """Where `quench setup` writes the output of the tools it runs."""
    return home_dir() / "logs"


def setup_command(target: str) -> str:
    """The command that creates a home entry: `quench setup vllm`."""
    return f"quench setup {target}"
