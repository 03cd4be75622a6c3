"""lm-eval model objects for the two kinds of engine: HFLM in process, local-completions served.

Both are wrapped so a context/continuation pair whose tokens merge across the join still
scores. lm-eval 0.4.13 tokenizes context + continuation together and cuts at the length of
the context's own tokens; when one token spans the join (TinyStories-656K's tokenizer has
tokens such as "into▁the▁") the continuation gets no tokens and the run dies on
`assert len(continuation_enc) > 0` (lm-eval issues #1053, #1297, #3336; open PR #4055). Such
a pair is encoded apart instead, as lm-eval itself does for seq2seq models, and counted in
`join_fallbacks` so the stage can report how many requests were scored that way.

Each request type's batch is one quench.progress task; lm-eval's cache hook, called once
per finished request, advances it (no cache is kept: the hook's database is None).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from quench import progress


def _counting_hook() -> Any:
    """An lm-eval cache hook that caches nothing: each request's result advances the bar."""
    from lm_eval.api.model import CacheHook

    class CountingHook(CacheHook):
        def add_partial(self, attr: str, req: Any, res: Any) -> None:
            super().add_partial(attr, req, res)
            if req is not None:  # None: a window of a rolling request, counted with it
                progress.advance()

    return CountingHook(None)


def _requests_task(kind: str, requests: list[Any]) -> AbstractContextManager[None]:
    """The progress bar over one request type of one task (lm-eval sends them all at once)."""
    task = next((r.task_name for r in requests if getattr(r, "task_name", None)), None)
    return progress.task(" ".join(p for p in ("lm-eval", task, kind) if p), len(requests))


def _join_safe(cls: type) -> type:
    """A subclass of an lm-eval model class with the fallback above and request progress."""

    class JoinSafe(cls):  # type: ignore[misc, valid-type]
        join_fallbacks = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.set_cache_hook(_counting_hook())

        def loglikelihood(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            with _requests_task("loglikelihood", requests):
                return super().loglikelihood(requests, *args, **kwargs)

        def loglikelihood_rolling(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            with _requests_task("loglikelihood_rolling", requests):
                return super().loglikelihood_rolling(requests, *args, **kwargs)

        def generate_until(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            with _requests_task("generate_until", requests):
                return super().generate_until(requests, *args, **kwargs)

        def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            context_enc, continuation_enc = super()._encode_pair(context, continuation)
            if continuation_enc or not continuation:
                return context_enc, continuation_enc
            self.join_fallbacks += 1
            spaces = len(context) - len(context.rstrip())  # moved to the continuation, as lm-eval
            moved = context[len(context) - spaces:] + continuation
            return context_enc, self.tok_encode(moved, add_special_tokens=False)

    JoinSafe.__name__ = JoinSafe.__qualname__ = f"JoinSafe{cls.__name__}"
    return JoinSafe


def hf_model(model: Any, tokenizer: Any, batch_size: int) -> Any:
    """lm-eval's HFLM around an already-loaded transformers model and its tokenizer."""
    from lm_eval.models.huggingface import HFLM

    return _join_safe(HFLM)(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def served_model(base_url: str, model: str, model_dir: Path, batch_size: int,
                 trust_remote_code: bool) -> Any:
    """lm-eval's local-completions model on a server's /v1/completions, tokenizing locally."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    return _join_safe(LocalCompletionsAPI)(
        base_url=f"{base_url}/v1/completions", model=model, tokenizer=str(model_dir),
        tokenizer_backend="huggingface", trust_remote_code=trust_remote_code,
        max_length=context_length(model_dir), batch_size=batch_size,
    )


def context_length(model_dir: Path) -> int:
    """The context HFLM would use for this checkpoint (config keys in its order), else 2048."""
    import json

    config = json.loads((model_dir / "config.json").read_text())
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        if isinstance(config.get(key), int):
            return config[key]
    return 2048
