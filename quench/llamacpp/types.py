"""The GGUF file types quench offers and what llama-quantize does with each, as data.

Read from llama.cpp 0c1e5709 (the build `quench setup llama.cpp` makes): tools/quantize/
quantize.cpp (the types and their bits per weight on Llama-3-8B) and src/llama-quant.cpp
(tensor_type_fallback: a tensor whose rows are not a whole number of the type's blocks gets a
fallback type, silently; tensor_requires_imatrix: the types that refuse to run without an
importance matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quench.geometry import head_dim_of


@dataclass(frozen=True)
class GgufType:
    """One `llama-quantize` file type: its main tensor type, block and approximate size."""

    name: str  # what llama-quantize takes (Q4_K_M)
    tensor_type: str  # the GGML type most weight tensors get (q4_K)
    block: int  # weights per block: a row must hold a whole number of them
    bits: float  # bits per weight of the whole file (llama-quantize's listing, Llama-3-8B)
    fallback: str | None = None  # what a tensor whose rows do not fit gets instead
    needs_imatrix: bool = False  # llama-quantize refuses without --imatrix

    @property
    def quantized(self) -> bool:
        return self.tensor_type not in ("f32", "f16", "bf16")


def _t(name: str, tensor_type: str, block: int, bits: float, fallback: str | None = None,
       needs_imatrix: bool = False) -> GgufType:
    return GgufType(name, tensor_type, block, bits, fallback, needs_imatrix)


# bits: the listing's file size for Llama-3-8B (GiB) x 2**33 / 8.03e9 weights (Q4_K_M: 4.58 GiB ->
# 4.90), or the bits per weight it states (IQ types)
TYPES: dict[str, GgufType] = {t.name: t for t in (
    _t("F32", "f32", 1, 32.0),
    _t("F16", "f16", 1, 16.0),
    _t("BF16", "bf16", 1, 16.0),
    _t("Q8_0", "q8_0", 32, 8.52),
    _t("Q6_K", "q6_K", 256, 6.57, fallback="q8_0"),
    _t("Q5_K_M", "q5_K", 256, 5.70, fallback="q5_1"),
    _t("Q5_K_S", "q5_K", 256, 5.57, fallback="q5_1"),
    _t("Q5_1", "q5_1", 32, 6.04),
    _t("Q5_0", "q5_0", 32, 5.57),
    _t("Q4_K_M", "q4_K", 256, 4.90, fallback="q5_0"),
    _t("Q4_K_S", "q4_K", 256, 4.67, fallback="q5_0"),
    _t("Q4_1", "q4_1", 32, 5.11),
    _t("Q4_0", "q4_0", 32, 4.64),
    _t("IQ4_NL", "iq4_nl", 32, 4.50),
    _t("IQ4_XS", "iq4_xs", 256, 4.25, fallback="iq4_nl"),
    _t("Q3_K_L", "q3_K", 256, 4.31, fallback="q4_0"),
    _t("Q3_K_M", "q3_K", 256, 4.00, fallback="q4_0"),
    _t("Q3_K_S", "q3_K", 256, 3.65, fallback="q4_0"),
    _t("Q2_K", "q2_K", 256, 3.17, fallback="q4_0"),
    _t("IQ3_XXS", "iq3_xxs", 256, 3.06, fallback="iq4_nl", needs_imatrix=True),
    _t("IQ2_XS", "iq2_xs", 256, 2.31, fallback="iq4_nl", needs_imatrix=True),
)}
CONVERT_TYPES = ("f32", "f16", "bf16")  # what convert_hf_to_gguf.py writes (--outtype)
# GGML tensor types a per-tensor override (`tensor_types`) may name (llama-quantize --tensor-type)
TENSOR_TYPES = ("f32", "f16", "bf16", "q8_0", "q6_K", "q5_K", "q5_1", "q5_0", "q4_K", "q4_1",
                "q4_0", "iq4_nl", "iq4_xs", "q3_K", "q2_K")


def row_widths(config: dict[str, Any]) -> dict[str, int]:
    """The row lengths (input widths) of a Llama-style decoder's weight tensors, named as
    llama.cpp's tensors are: a GGUF tensor's row is its input dimension."""
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    head_dim = head_dim_of(config)
    widths = {"token_embd, output, attn_q/k/v, ffn_gate/up (hidden_size)": hidden,
              "attn_output (num_attention_heads * head_dim)":
                  heads * head_dim if heads and head_dim else None,
              "ffn_down (intermediate_size)": config.get("intermediate_size")}
    return {name: int(w) for name, w in widths.items() if w}


def misfits(gguf_type: GgufType, config: dict[str, Any]) -> dict[str, int]:
    """The tensors whose rows are not a whole number of the type's blocks (name -> width)."""
    return {name: w for name, w in row_widths(config).items() if w % gguf_type.block}
