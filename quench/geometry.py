"""A decoder's geometry read from its config.json: the one place head_dim is derived.

Used by the checkpoint validators (tensor shapes), sizing (`quench plan`, memory predictions),
the pre-flight (group sizes) and engines (kernel head sizes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quench.errors import QuenchError


def head_dim_of(config: dict[str, Any]) -> int | None:
    """head_dim (HF), head_size (TensorRT-LLM) or hidden_size / num_attention_heads; None when
    the config has neither."""
    explicit = config.get("head_dim") or config.get("head_size")
    if explicit:
        return int(explicit)
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    return int(hidden) // int(heads) if heads and hidden else None


@dataclass(frozen=True)
class Geometry:
    """The sizes of a Llama-style decoder that shapes, memory and kernels depend on."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int | None = None
    vocab: int | None = None
    tied: bool = False
    dtype: str = "bfloat16"  # the checkpoint's torch_dtype (bfloat16 when it records none)

    @classmethod
    def of(cls, config: dict[str, Any]) -> Geometry:
        """From an HF config.json (or a TensorRT-LLM one: head_size); KeyError when a required
        key (num_hidden_layers, hidden_size, num_attention_heads) is missing."""
        heads, hidden = int(config["num_attention_heads"]), int(config["hidden_size"])
        intermediate, vocab = config.get("intermediate_size"), config.get("vocab_size")
        return cls(int(config["num_hidden_layers"]), hidden, heads,
                   int(config.get("num_key_value_heads") or heads), int(head_dim_of(config) or 0),
                   int(intermediate) if intermediate else None, int(vocab) if vocab else None,
                   bool(config.get("tie_word_embeddings", False)),
                   str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"))

    @classmethod
    def for_sizing(cls, config: dict[str, Any]) -> Geometry:
        """Like of(), but every size that sizing needs must be there (QuenchError otherwise)."""
        missing = [k for k in ("num_attention_heads", "hidden_size", "num_hidden_layers",
                               "intermediate_size", "vocab_size") if k not in config]
        if missing:
            raise QuenchError(f"config.json has no {missing[0]}: not a Llama-style decoder "
                              "that sizing knows")
        return cls.of(config)

    @classmethod
    def read(cls, model_dir: Path) -> Geometry:
        """for_sizing() of model_dir/config.json."""
        return cls.for_sizing(json.loads((Path(model_dir) / "config.json").read_text()))

    @property
    def linear_params(self) -> int:
        """Decoder linear weights (attention q/k/v/o and the gated MLP): what schemes quantize."""
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        return self.layers * (attn + 3 * self.hidden * (self.intermediate or 0))

    @property
    def other_params(self) -> int:
        """Embeddings, lm_head (unless tied) and norms: kept at the serving dtype."""
        embeddings = (self.vocab or 0) * self.hidden * (1 if self.tied else 2)
        return embeddings + (2 * self.layers + 1) * self.hidden

    @property
    def gqa_factor(self) -> float:
        return self.heads / self.kv_heads
