"""Test set-up: offline Hugging Face libraries, the ../shared mirror, and CLI helpers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO / "recipes" / "tinystories-rtn-w4a16.yaml"

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
if not os.environ.get("QUENCH_MIRROR") and (REPO.parent / "shared" / "models").is_dir():
    os.environ["QUENCH_MIRROR"] = str(REPO.parent / "shared")
os.environ.pop("MLFLOW_TRACKING_URI", None)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test` runs 2 workers (pytest-xdist)
    # Each worker's torch (and the runs it starts) gets its share of the cores: two workers each
    # spinning as many OpenMP threads as there are cores ran the heaviest tests up to 4x slower
    # than with a core each (test_memory_measured's GPTQ run: 425 s against 108 s).
    _share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(max(1, _share)))

# The slowest modules (`pytest --durations`), longest first. Under `--dist loadscope` the
# workers take whole modules in collection order: starting these first keeps one of them from
# running alone at the end.
SLOW_FIRST = (
    "tests/test_smollm2_e2e.py", "tests/test_memory_measured.py", "tests/gate/test_gate_e2e.py",
    "tests/sweep/test_ray_executor.py", "tests/stages/test_throughput.py",
    "tests/methods/test_formats.py", "tests/methods/test_methods_e2e.py",
    "tests/sweep/test_sweep_e2e.py", "tests/runner/test_console.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline mirror (../shared): the tiny model and the bundled data."""
    value = os.environ.get("QUENCH_MIRROR")
    if not value or not (Path(value) / "models" / "tinystories-656k").is_dir():
        pytest.skip("no offline mirror: set QUENCH_MIRROR to a folder with models/ and data/")
    return Path(value)


@pytest.fixture(scope="session", autouse=True)
def mirror_untouched():
    """Fails the session if any test wrote into the shared mirror's model files."""
    value = os.environ.get("QUENCH_MIRROR")
    folder = Path(value) / "models" / "tinystories-656k" if value else None
    if folder is None or not folder.is_dir():
        yield
        return
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    yield
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before, f"a test modified the shared mirror {folder}"


@pytest.fixture(scope="session")
def tiny_model(mirror: Path) -> Path:
    return mirror / "models" / "tinystories-656k"


SMOLLM2_NAME = "smollm2-135m-instruct"  # the bundled model's short name (model.id)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The SmolLM2 GGUF `make setup` fetches into the quench home; CI must have it, elsewhere a
    missing one skips."""
    from quench.sources import BUNDLED_MODELS

    path = BUNDLED_MODELS[SMOLLM2_NAME].path
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: `make setup` (quench setup models) should fetch it")
        pytest.skip(f"{path} not fetched: run `quench setup models`")
    return path


def run_quench(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
               cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Runs the real CLI in a subprocess, as a user would (env: variables to add or change)."""
    return subprocess.run(
        [sys.executable, "-m", "quench", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, **env} if env else None,
    )


def small_run_args(out: Path, max_windows: int = 24, tracking_uri: str | None = None
                   ) -> list[str]:
    """Overrides that keep a run small and inside a test's own folder (a key may be given
    once only, so callers change these through the arguments)."""
    return [
        f"output.dir={out}",
        f"tracking.tracking_uri={tracking_uri or f'sqlite:///{out}/mlflow.db'}",
        f"evaluation.perplexity.max_windows={max_windows}",
    ]


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    line = next(x for x in result.stdout.splitlines() if x.startswith("mlflow:"))
    return line.rsplit(" ", 1)[-1]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def perturbed_copy(model: Path, folder: Path) -> Path:
    """Another base model behind the same architecture and tokenizer: `model` with one weight
    changed by a thousandth (a fine-tune, as far as names go)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(model, folder)
    [weights] = folder.glob("*.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1e-6 + abs(float(tensors[name].view(-1)[0])) * 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    return folder
