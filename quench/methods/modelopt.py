"""NVIDIA ModelOpt: FP8, INT8 SmoothQuant, INT4 AWQ and W4A8 AWQ, formats TensorRT-LLM deploys.

The quantized model is saved as a fake-quantized HF checkpoint (dense weights plus ModelOpt's
calibrated quantizers in `modelopt_state.pth`), which transformers reloads with the quantizers
applied: that is what quench evaluates. The deployable checkpoints (unified HF with
`hf_quant_config.json`, or the TensorRT-LLM checkpoint) are written from it by the export stage.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from quench.methods import Method, MethodCapabilities, MethodOptions, Storage, register_method
from quench.methods.quantizing import Calibration, Quantized

# scheme -> the ModelOpt config it starts from (modelopt.torch.quantization.<NAME>)
# W4A8_AWQ: int4 weights in blocks (AWQ-scaled) and per-tensor FP8 activations. ModelOpt's
# NVFP4 configs are left out: their fake quantization needs CUDA ("amax must be a CUDA tensor
# for dynamic block quantization", ModelOpt 0.47 on CPU); NVFP4 comes from method fp4.
CONFIGS = {"FP8": "FP8_DEFAULT_CFG", "INT8_SQ": "INT8_SMOOTHQUANT_CFG",
           "INT4_AWQ": "INT4_AWQ_CFG", "W4A8_AWQ": "W4A8_AWQ_BETA_CFG"}
AWQ_SCHEMES = ("INT4_AWQ", "W4A8_AWQ")
_checkpointing = False


class ModelOptOptions(MethodOptions):
    kv_cache: bool = Field(False, description="Also quantize the KV cache to FP8 (calibrated "
                           "per-tensor scales, ModelOpt's FP8_KV_CFG).")
    group_size: int = Field(128, ge=16, le=1024, description="INT4_AWQ and W4A8_AWQ only: "
                            "weights sharing one scale (ModelOpt's AWQ block size), a multiple "
                            "of 16.")
    awq: Literal["awq_lite", "awq_full", "awq_clip"] = Field(
        "awq_lite", description="INT4_AWQ and W4A8_AWQ only: ModelOpt's AWQ search.")
    ignore: list[str] = Field(default_factory=list, description="More module-name patterns "
                              "(fnmatch, e.g. '*mlp.down_proj*') left unquantized, on top of "
                              "ModelOpt's defaults (lm_head, embeddings, routers).")

    @model_validator(mode="after")
    def _check_group(self) -> ModelOptOptions:
        if self.group_size % 16:
            raise ValueError(f"group_size: {self.group_size} must be a multiple of 16")
        return self


@register_method
class ModelOpt(Method[ModelOptOptions]):
    name = "modelopt"
    schemes = ("FP8", "INT8_SQ", "INT4_AWQ", "W4A8_AWQ")
    default_scheme = "FP8"
    options_model = ModelOptOptions
    # calibrates with plain forward passes of the whole model; saves dense weights and
    # modelopt_state.pth quantizers
    capabilities = MethodCapabilities(backend="modelopt", loads_on_device=True,
                                      fake_quantized=True)

    def needs_calibration(self, scheme: str, options: ModelOptOptions) -> bool:
        return True  # static activation/KV scales, SmoothQuant and AWQ all read activations

    def storage(self, scheme: str, options: ModelOptOptions) -> Storage:
        """FP8: E4M3 weights and activations; INT8_SQ: int8 both; INT4_AWQ: symmetric int4
        weights in blocks of group_size; W4A8_AWQ: those weights with FP8 activations.
        kv_cache: an FP8 KV cache."""
        kv = "fp8" if options.kv_cache else None
        if scheme == "FP8":
            return Storage(weight_bits=8, weight_type="float", activation_bits=8,
                           activation_type="float", kv_cache_dtype=kv)
        if scheme == "INT8_SQ":
            return Storage(weight_bits=8, activation_bits=8, kv_cache_dtype=kv)
        if scheme == "W4A8_AWQ":
            return Storage(weight_bits=4, group_size=options.group_size, activation_bits=8,
                           activation_type="float", kv_cache_dtype=kv)
        return Storage(weight_bits=4, group_size=options.group_size, kv_cache_dtype=kv)

    def modifiers(self, scheme: str, options: ModelOptOptions) -> list[Any]:
        raise NotImplementedError("modelopt quantizes itself (quantize()), not with llmcompressor")

    def quantize(self, model: Any, scheme: str, options: ModelOptOptions,
                 calibration: Calibration) -> Quantized:
        """mtq.quantize with plain forward passes over the calibration set."""
        import torch

        dataset = calibration.dataset
        if dataset is None:
            raise ValueError("modelopt needs calibration data (the calibrate stage was skipped)")
        mtq = _import("modelopt.torch.quantization")
        config = quant_config(mtq, scheme, options)

        def forward_loop(m: Any) -> None:
            device = next(m.parameters()).device
            with torch.no_grad():
                for ids in dataset["input_ids"]:
                    m(torch.tensor([ids], device=device))

        with warnings.catch_warnings(record=True) as caught, _quiet():
            warnings.simplefilter("always")
            mtq.quantize(model, config, forward_loop)
        warned = sorted({str(w.message) for w in caught
                         if issubclass(w.category, UserWarning) and "not tested" not in
                         str(w.message)})
        return Quantized(warnings=tuple(warned), quantized=True)

    def release(self) -> None:
        """ModelOpt keeps no reference to the model once it is saved."""

    def save(self, model: Any, out: Path, quantized: bool, max_shard_size: str) -> None:
        enable_modelopt_checkpointing()
        model.save_pretrained(out, max_shard_size=max_shard_size)

    def format_details(self, model: Any) -> dict[str, Any]:
        """What ModelOpt's own export would write to hf_quant_config.json for this model."""
        from modelopt.torch.export.quant_utils import get_quant_config

        with _quiet():
            q = get_quant_config(model)["quantization"]
        return {"quant_method": "modelopt", "format": q.get("quant_algo"),
                "quant_algo": q.get("quant_algo"), "group_size": q.get("group_size"),
                "kv_cache_scheme": q.get("kv_cache_quant_algo"),
                "ignore": q.get("exclude_modules")}


def quant_config(mtq: Any, scheme: str, options: ModelOptOptions) -> dict[str, Any]:
    """The scheme's ModelOpt config with the recipe's options applied (a copy)."""
    config = copy.deepcopy(getattr(mtq, CONFIGS[scheme]))
    entries = list(config["quant_cfg"])
    if scheme in AWQ_SCHEMES:
        for entry in entries:
            if entry.get("quantizer_name") == "*weight_quantizer" and "cfg" in entry:
                _set_block_size(entry["cfg"], options.group_size)
        algorithm = config["algorithm"]  # a name (W4A8_AWQ) or a mapping (INT4_AWQ)
        config["algorithm"] = {**(algorithm if isinstance(algorithm, dict) else {}),
                               "method": options.awq}
    if options.kv_cache:
        entries += copy.deepcopy(mtq.FP8_KV_CFG["quant_cfg"])
    entries += [{"quantizer_name": pattern, "enable": False} for pattern in options.ignore]
    config["quant_cfg"] = entries  # later entries win
    return config


def _set_block_size(cfg: dict[str, Any] | list[dict[str, Any]], group_size: int) -> None:
    """The int4 weight quantizer's block size (W4A8_AWQ lists an int4 then an FP8 stage)."""
    for stage in cfg if isinstance(cfg, list) else [cfg]:
        if stage.get("block_sizes"):
            stage["block_sizes"][-1] = group_size


def enable_modelopt_checkpointing() -> None:
    """Once per process: save_pretrained/from_pretrained keep ModelOpt's quantizers."""
    global _checkpointing
    if not _checkpointing:
        mto = _import("modelopt.torch.opt")
        with _quiet():
            mto.enable_huggingface_checkpointing()
        _checkpointing = True


def _import(name: str) -> Any:
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "transformers 5.17 is not tested with modelopt"
        return importlib.import_module(name)


@contextlib.contextmanager
def _quiet() -> Any:
    """ModelOpt prints progress to stdout; the stage view says enough."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
