"""GGUF inputs: the SmolLM2 file's metadata; bad files are exit-2 errors, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quench.gguf import GgufError, read_gguf
from tests.conftest import REPO, run_quench


def write_gguf(path: Path, architecture: str, tensor_type: str = "F32") -> Path:
    """A one-tensor GGUF file written with the gguf package (the tensor's type as asked)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_name("tiny test model")
    kind = gguf.GGMLQuantizationType[tensor_type]
    if kind == gguf.GGMLQuantizationType.F32:
        writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    else:  # raw blocks: 64 columns of 8 rows in this type's block size
        block, size = gguf.GGML_QUANT_SIZES[kind]
        raw = np.zeros((8, 64 // block * size), dtype=np.uint8)
        writer.add_tensor("token_embd.weight", raw, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_metadata_of_the_real_file(smollm2_gguf: Path) -> None:
    info = read_gguf(smollm2_gguf)
    assert info.architecture == "llama"
    assert info.license == "apache-2.0"
    assert info.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert info.tensor_count == 272
    c = info.config
    assert (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]) == (576, 1536, 30)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (9, 3, 64)
    assert info.special_tokens == {"bos": 1, "eos": 2, "pad": 2}


def _truncated(tmp: Path, source: Path) -> Path:
    out = tmp / "truncated.gguf"
    with source.open("rb") as src:
        out.write_bytes(src.read(source.stat().st_size // 2))
    return out


@pytest.mark.parametrize("kind", ["truncated", "not-gguf", "architecture", "tensor-type"])
def test_bad_gguf_is_exit_2_naming_file_and_reason(
    kind: str, tmp_path: Path, smollm2_gguf: Path
) -> None:
    path, reason = {
        "truncated": lambda: (_truncated(tmp_path, smollm2_gguf), "truncated or corrupt"),
        "not-gguf": lambda: (_text_file(tmp_path / "notes.gguf"), "GGUF magic invalid"),
        "architecture": lambda: (write_gguf(tmp_path / "arch.gguf", "quuxformer"),
                                 "architecture quuxformer is not supported"),
        "tensor-type": lambda: (write_gguf(tmp_path / "q81.gguf", "llama", "Q8_1"),
                                "GGML type Q8_1"),
    }[kind]()
    with pytest.raises(GgufError, match=reason):
        read_gguf(path)
    out = tmp_path / "out"
    result = run_quench("run", str(REPO / "recipes" / "smollm2-none.yaml"), f"model.id={path}",
                        f"output.dir={out}", "tracking.backend=none")
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and reason in result.stderr
    assert not out.exists(), "a bad GGUF must be rejected before anything is written"


def _text_file(path: Path) -> Path:
    path.write_text("not a model\n")
    return path


def test_validate_reads_the_shape_from_the_gguf(smollm2_gguf: Path) -> None:
    recipe = str(REPO / "recipes" / "smollm2-gptq-w4a16.yaml")
    assert run_quench("validate", recipe).returncode == 0
    bad = run_quench("validate", recipe, "quantization.options.group_size=128")
    assert bad.returncode == 2
    assert "group_size: 128 does not divide the model's hidden_size (576)" in bad.stderr


def test_a_later_command_reads_the_header_from_the_user_cache(smollm2_gguf: Path,
                                                                tmp_path: Path) -> None:
    """Parsing SmolLM2's header takes ~10 s (its tokenizer arrays); the next process reuses it
    (the entry's key is the file's path, size and mtime)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = ("import sys; from pathlib import Path; from quench.gguf import read_gguf; "
            "info = read_gguf(Path(sys.argv[1])); print(info.license, 'gguf' in sys.modules)")

    def read(path: Path) -> str:
        return subprocess.run([sys.executable, "-c", code, str(path)], env=env, cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()

    assert read(smollm2_gguf) == "apache-2.0 True"  # parsed, then kept
    assert read(smollm2_gguf) == "apache-2.0 False"  # the gguf package is not even imported
    assert len(list((tmp_path / "cache" / "quench" / "gguf").glob("*.json"))) == 1
