"""A copy of the tiny model that ships its own Python code (config.json `auto_map`), as hub
models such as Phi-1 or MPT once did: loading it needs trust_remote_code everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CONFIG_PY = '''from transformers import LlamaConfig


class QuenchTestConfig(LlamaConfig):
    model_type = "quench-test-llama"
'''

MODELING_PY = '''from transformers import LlamaForCausalLM

from .configuration_quench_test import QuenchTestConfig


class QuenchTestForCausalLM(LlamaForCausalLM):
    config_class = QuenchTestConfig
'''


def custom_code_copy(tiny_model: Path, dest: Path) -> Path:
    """dest: the tiny model with a config and model class of its own, named by auto_map."""
    shutil.copytree(tiny_model, dest)
    for path in dest.iterdir():
        path.chmod(0o644)
    (dest / "configuration_quench_test.py").write_text(CONFIG_PY)
    (dest / "modeling_quench_test.py").write_text(MODELING_PY)
    config = json.loads((dest / "config.json").read_text())
    config.update({
        "model_type": "quench-test-llama", "architectures": ["QuenchTestForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_quench_test.QuenchTestConfig",
                     "AutoModelForCausalLM": "modeling_quench_test.QuenchTestForCausalLM"},
    })
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest
