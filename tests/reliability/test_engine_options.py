"""Typed target.options: what reaches the vLLM server command line, and what is refused."""

from __future__ import annotations

import pytest

from quench.engines.options import parse_options
from quench.engines.vllm import _flag_args
from quench.engines.vllm_options import VllmOptions


def test_set_flags_become_server_flags_and_extra_args_follow_as_written():
    opts = parse_options(VllmOptions, {"max_model_len": 512, "enforce_eager": True, "port": 9,
                                       "env": {"A": 1}, "extra_args": ["--swap-space", "4"]},
                         "vllm")
    assert opts.flags() == {"max_model_len": 512, "enforce_eager": True}  # own ones kept out
    assert _flag_args(opts.flags()) == ["--max-model-len", "512", "--enforce-eager"]
    assert opts.extra_args == ["--swap-space", "4"]


@pytest.mark.parametrize(("options", "words"), [
    ({"gpu_memory_utilization": 1.5}, "less than or equal to 1"),
    ({"tensor_parallel_size": 0}, "greater than or equal to 1"),
    ({"dtype": "fp4"}, "'auto', 'half'"),
    ({"startup_timeout_s": float("inf")}, "finite number"),
    ({"extra_args": "--swap-space 4"}, "valid list"),
    ({"extra_args": ["--no-enforce-eager"]}, "typed option `enforce_eager`"),
])
def test_bad_vllm_options_name_the_key(options, words):
    with pytest.raises(ValueError, match="target.options") as info:
        parse_options(VllmOptions, options, "vllm")
    assert words in str(info.value)
