"""Offline validation of deployable checkpoints, without TensorRT-LLM (which cannot load here).

Checks what an engine would trip on at load time, from config files and safetensors headers
only: required config keys, allowed quant_algo / kv_cache_quant_algo values, rank files against
the world size, and tensor names, dtypes and shapes against the model's geometry. A truncated
or corrupt file is a problem like any other; every problem is reported at once.
"""
