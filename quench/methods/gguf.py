"""GGUF for llama.cpp: the checkpoint converted with llama.cpp's own converter, optionally an
importance matrix from quench's calibration set (llama-imatrix), then llama-quantize.

The stage's `model` folder holds the GGUF (what llama.cpp loads and what the size is) and a
dense checkpoint dequantized from it by transformers' GGUF loader: what quench's evaluation
reads, so perplexity and KL are measured on the GGUF's own weights. The tools come from
`quench setup llama.cpp`; the types and their rules are in quench/llamacpp/types.py.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from quench.llamacpp import tools
from quench.llamacpp.types import TENSOR_TYPES, TYPES, misfits
from quench.methods import Method, MethodCapabilities, MethodOptions, Storage, register_method

GGUF_FILE = "model-{scheme}.gguf"  # in the stage's model folder, beside the dense checkpoint
DTYPE_OUTTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


class GgufOptions(MethodOptions):
    outtype: Literal["auto", "f32", "f16", "bf16"] = Field(
        "auto", description="The type the checkpoint is converted to before llama-quantize "
        "(auto: the checkpoint's own dtype).")
    imatrix: bool = Field(False, description="Compute an importance matrix from the "
                          "calibration set with llama-imatrix and quantize with it (IQ3_XXS "
                          "and IQ2_XS need one).")
    tensor_types: dict[str, str] = Field(
        default_factory=dict, description="Per-tensor type overrides: a GGUF tensor name "
        "pattern (llama-quantize --tensor-type, e.g. `attn_v`, `ffn_down`) -> GGML type.")
    output_tensor_type: str | None = Field(None, description="GGML type of output.weight.")
    token_embedding_type: str | None = Field(None, description="GGML type of token_embd.")
    allow_fallback: bool = Field(
        False, description="Accept llama-quantize's fallback type for tensors whose rows are "
        "not a whole number of the type's blocks (K-quants: 256), as it does silently; false: "
        "such rows are a `quench validate` error, before any work.")

    @field_validator("tensor_types")
    @classmethod
    def _tensor_types(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern, kind in value.items():
            _check_tensor_type(f"tensor_types.{pattern}", kind)
        return value

    @field_validator("output_tensor_type", "token_embedding_type")
    @classmethod
    def _one_type(cls, value: str | None) -> str | None:
        if value is not None:
            _check_tensor_type("type", value)
        return value


def _check_tensor_type(where: str, kind: str) -> None:
    if kind not in TENSOR_TYPES:
        raise ValueError(f"{where}: {kind!r} is not a GGML type quench passes to "
                         f"llama-quantize; allowed: {', '.join(TENSOR_TYPES)}")


@register_method
class Gguf(Method[GgufOptions]):
    name = "gguf"
    schemes = tuple(TYPES)
    default_scheme = "Q4_K_M"
    options_model = GgufOptions
    # checkpoint_kind hf: the dense checkpoint dequantized from the GGUF; transformers' GGUF
    # loader holds the dequantized tensors beside the model it fills: the quantize stage's peak
    # RSS on SmolLM2 (0.50 GiB fp32) was 1.40 GiB: 1.7 copies beside the runtime
    capabilities = MethodCapabilities(backend="llama.cpp", loads_model=False,
                                      checkpoint_kind="hf", files_dense_copies=1.7)

    def needs_calibration(self, scheme: str, options: GgufOptions) -> bool:
        return options.imatrix

    def storage(self, scheme: str, options: GgufOptions) -> Storage:
        """Bits per weight of the type's whole file (its scales and mixed tensors included);
        F32/F16/BF16: dense."""
        gguf_type = TYPES[scheme]
        if not gguf_type.quantized:
            return Storage()
        return Storage(weight_bits=gguf_type.bits, scale_bytes=0)

    def modifiers(self, scheme: str, options: GgufOptions) -> list[Any]:
        return []  # never used: quantize_files() does the work

    def check_model(self, scheme: str, options: GgufOptions, config: dict[str, Any]
                    ) -> list[str]:
        """What llama-quantize would refuse, or silently change, for this model."""
        gguf_type, problems = TYPES[scheme], []
        if gguf_type.needs_imatrix and not options.imatrix:
            problems.append(f"quantization.scheme: {scheme} needs an importance matrix "
                            "(llama-quantize refuses without one): set "
                            "quantization.options.imatrix: true")
        bad = misfits(gguf_type, config)
        if bad and not options.allow_fallback:
            widths = ", ".join(f"{name} = {w}" for name, w in bad.items())
            problems.append(
                f"quantization.scheme: {scheme} quantizes rows in blocks of {gguf_type.block} "
                f"weights, and this model's rows are not whole blocks ({widths}): "
                f"llama-quantize would write those tensors as {gguf_type.fallback or 'f16'} "
                "instead. Set quantization.options.allow_fallback: true to accept that, or "
                f"pick a type with blocks of 32 ({', '.join(_block_32_types())})")
        return problems or super().check_model(scheme, options, config)

    def unavailable_reason(self) -> str | None:
        return tools.unavailable_reason()

    def tool_versions(self) -> dict[str, str]:
        return {"llama.cpp": tools.build_version()}

    def quantize_files(self, source: Path, out: Path, scheme: str, options: GgufOptions,
                       device: str, calibration: Path | None = None,
                       metadata: dict[str, str | int] | None = None) -> dict[str, Any]:
        """Converts, (imatrix,) quantizes into out/model-<scheme>.gguf, then writes the dense
        checkpoint dequantized from it into `out`."""
        from quench.gguf import dequantize_to_checkpoint
        from quench.llamacpp import convert, quantize

        log = out.parent / "llama.cpp.log"
        out.mkdir(parents=True, exist_ok=True)
        target = out / GGUF_FILE.format(scheme=scheme)
        config = json.loads((source / "config.json").read_text())
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=out.parent) as work_dir:
            work = Path(work_dir)
            converted = convert.convert(source, work / "converted.gguf",
                                        _outtype(options, config), work, log)
            imatrix = None
            if options.imatrix:
                if calibration is None:
                    raise ValueError("gguf imatrix needs calibration data (calibrate skipped)")
                imatrix = _importance_matrix(converted, source, calibration, work, log)
            fallbacks = quantize.quantize(
                converted, target, scheme, log, imatrix, options.tensor_types,
                options.output_tensor_type, options.token_embedding_type, metadata)
        dequantize_to_checkpoint(target, out, str(config.get("torch_dtype") or "float32"))
        _copy_tokenizer(source, out)
        types = quantize.tensor_types(target)
        return {"artifact": target.name, "gguf_file": target.name,
                "format": {"quant_method": "gguf", "format": scheme, "tensor_types": types,
                           "fallback_tensors": fallbacks, "imatrix": options.imatrix,
                           "converted_from": _outtype(options, config),
                           "metadata": metadata or {}}}


def _outtype(options: GgufOptions, config: dict[str, Any]) -> str:
    if options.outtype != "auto":
        return options.outtype
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    return DTYPE_OUTTYPE.get(dtype, "f16")


def _block_32_types() -> list[str]:
    return [t.name for t in TYPES.values() if t.quantized and t.block == 32]


def _importance_matrix(converted: Path, source: Path, calibration: Path, work: Path,
                       log: Path) -> Path:
    """llama-imatrix over the calibration samples, given back as the text they came from."""
    import datasets
    from transformers import AutoTokenizer

    from quench.llamacpp import quantize

    samples = datasets.load_from_disk(str(calibration))["input_ids"]
    tokenizer = AutoTokenizer.from_pretrained(source)
    text = work / "calibration.txt"
    text.write_text("\n\n".join(tokenizer.decode(ids, skip_special_tokens=True)
                                for ids in samples))
    context = max(len(ids) for ids in samples)
    return quantize.importance_matrix(converted, text, work / "imatrix.gguf", context,
                                      len(samples), log)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "chat_template.jinja", "vocab.json", "merges.txt")


def _copy_tokenizer(source: Path, out: Path) -> None:
    """The source's tokenizer replaces the one rebuilt from the GGUF: evaluation must read
    the same token ids as the baseline's."""
    import shutil

    for name in TOKENIZER_FILES:
        (out / name).unlink(missing_ok=True)
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
