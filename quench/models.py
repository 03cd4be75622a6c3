"""Loading checkpoints with transformers, the one way every stage does it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from quench.compute import resolve_dtype
from quench.errors import StageError
from quench.offload import Offload


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def load_model(path: Path, dtype: str, trust_remote_code: bool = False, device: str = "cpu",
               offload: Offload | None = None) -> Any:
    """A causal LM in eval mode on `device`; a broken checkpoint becomes a StageError naming it.

    `dtype` may be "auto" (the checkpoint's). `offload` loads it the way llm-compressor
    documents for models bigger than host RAM: compressed-tensors' offloading (CPU up to a
    budget, then disk; see quench/offload.py). compressed-tensors checkpoints are dequantized
    at load time, explicitly: otherwise
    transformers 5.17 keeps them packed and decompresses on the first forward pass, and whether
    the weights are dense after loading depends on whether llmcompressor was imported.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = offload.load_kwargs(device) if offload else load_kwargs(device)
    quiet = contextlib.nullcontext()
    if (Path(path) / MODELOPT_STATE).is_file():
        _enable_modelopt_restore()
        quiet = contextlib.redirect_stdout(io.StringIO())  # ModelOpt prints what it restores
    if _quant_method(path) == "compressed-tensors":
        from transformers import CompressedTensorsConfig

        kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
    loading = contextlib.nullcontext()
    if offload:
        from compressed_tensors.offload import load_offloaded_model

        loading = load_offloaded_model()
    want = torch_dtype(resolve_dtype(dtype, Path(path)))
    try:
        with quiet, loading:
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=want, trust_remote_code=trust_remote_code, **kwargs
            )
    except Exception as exc:  # transformers raises many types for a bad checkpoint
        raise StageError(
            f"cannot load the checkpoint in {path}: {type(exc).__name__}: {exc}"
        ) from None
    if "quantization_config" in kwargs:
        fp4_decompress_dtype_workaround(model, want)
    if _quant_method(path) == "compressed-tensors":  # QuIP's online rotations (rotation: quip)
        from quench.methods.rotations import attach_online_transforms

        attach_online_transforms(model, Path(path))
    return model.eval()


def fp4_decompress_dtype_workaround(model: Any, dtype: Any) -> None:
    """Casts dense weights decompressed to another float dtype back to the one asked for.

    compressed-tensors 0.19 decompresses FP4 checkpoints (nvfp4-/mxfp4-pack-quantized) to
    bfloat16 whatever the load dtype (unpack_fp4_from_uint8's default), so a float32 model gets
    bfloat16 Linears and its forward fails ("expected m1 and m2 to have the same dtype"). The
    FP4 values times their scales are exact in bfloat16, so the cast changes no weight at
    float32. Fixed upstream after 0.19 (https://github.com/vllm-project/compressed-tensors/pull/839);
    tests/methods/test_fp4_upstream.py fails once the installed release no longer needs this.
    """
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype and dtype.is_floating_point:
            param.data = param.data.to(dtype)


def load_kwargs(device: str) -> dict[str, Any]:
    """from_pretrained's placement arguments: CPU (device_map None) or one CUDA device."""
    return {} if device == "cpu" else {"device_map": device}


MODELOPT_STATE = "modelopt_state.pth"  # a ModelOpt fake-quantized checkpoint's quantizers


def _enable_modelopt_restore() -> None:
    """Lets from_pretrained restore ModelOpt's quantizers (else: silently unquantized weights)."""
    from quench.methods.modelopt import enable_modelopt_checkpointing

    enable_modelopt_checkpointing()


def _quant_method(path: Path) -> str | None:
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return (config.get("quantization_config") or {}).get("quant_method")


def load_tokenizer(path: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise StageError(
            f"cannot load the tokenizer in {path}: {type(exc).__name__}: {exc}"
        ) from None


def dir_size_bytes(path: Path) -> int:
    """Bytes on disk of the files in a folder (what a user downloads)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_safetensors(path: Path) -> int:
    """Checks a .safetensors file's header against its size; returns its tensor count.

    Reads only the header, so it is cheap on multi-GB shards; a truncated or corrupt file is a
    StageError naming the file, found before any model load.
    """
    import json
    import struct

    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise StageError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > size - 8:
            raise StageError(f"{path}: truncated safetensors file (header of {header_len} bytes "
                             f"announced, file has {size})")
        try:
            header = json.loads(fh.read(header_len))
        except ValueError:
            raise StageError(f"{path}: corrupt safetensors header") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
    if 8 + header_len + end > size:
        raise StageError(f"{path}: truncated safetensors file ({size} bytes, the header "
                         f"needs {8 + header_len + end})")
    return len(tensors)
