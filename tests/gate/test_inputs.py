"""The gate's inputs, checked before any interval: per-window arrays (random malformed ones from
hypothesis end in a GateError or a verdict, never a traceback), base-model lineage and the
evaluation protocol of both runs, and the content digests lineage is made of."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quench.gate.data import RunData, check_windows
from quench.gate.errors import GateError
from quench.gate.verdict import evaluate_gate
from quench.lineage import model_digests
from quench.recipe.gate import GateSpec

MODEL = {"id": "org/model", "weights_sha256": "a" * 64, "tokenizer_sha256": "b" * 64}
PROTOCOL = {"text_sha256": "c" * 64, "windows_sha256": "d" * 64, "window": 128, "stride": 128,
            "windows": 4, "bos_id": 1, "joiner": "\n"}
SPEC = GateSpec(max_accuracy_drop=None, resamples=200)


def _run(run_id: str, windows: dict | None, model: dict | None = None,
         protocol: dict | None = None) -> RunData:
    report = {"base_model": MODEL if model is None else model,
              "perplexity_protocol": PROTOCOL if protocol is None else protocol}
    return RunData(run_id, run_id, report, windows)


def _windows(n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = np.full(n, 128)
    return {"nll_sum": rng.uniform(300, 400, n), "tokens": tokens,
            "kl_sum": rng.uniform(0, 5, n), "top1_agree": rng.integers(0, 128, n)}


VALUES = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
ARRAYS = st.one_of(
    st.lists(VALUES, max_size=6).map(lambda v: np.array(v, dtype=float)),
    st.lists(st.integers(-3, 200), max_size=6).map(lambda v: np.array(v, dtype=np.int64)),
    VALUES.map(np.array),  # 0-d
    hnp.arrays(np.float64, (2, 3), elements=st.floats(0, 10)),  # 2-d
    st.lists(st.text(max_size=3), max_size=4).map(np.array),  # not numbers
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["nll_sum", "tokens", "kl_sum", "top1_agree", "x"]),
                       ARRAYS, max_size=5))
def test_random_per_window_data_is_a_verdict_or_a_gate_error(arrays):
    try:
        check_windows(arrays, "cand: per_window.npz")
        base = _run("base", _windows(len(arrays["tokens"])))
        result = evaluate_gate(_run("cand", arrays), base, SPEC)
    except GateError:
        return
    assert result.verdict in ("PASS", "FAIL", "INCONCLUSIVE")


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.floats(0, 1e6)),
    hnp.arrays(np.int64, n, elements=st.integers(1, 10_000)),
    hnp.arrays(np.float64, n, elements=st.floats(0, 1e3)))))
def test_well_formed_extreme_windows_always_get_a_verdict(arrays):
    nll, tokens, kl = arrays
    cand = _run("cand", {"nll_sum": nll, "tokens": tokens, "kl_sum": kl})
    base = _run("base", {"nll_sum": nll[::-1].copy(), "tokens": tokens})
    assert evaluate_gate(cand, base, SPEC).verdict in ("PASS", "FAIL", "INCONCLUSIVE")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda w: w["nll_sum"].__setitem__(1, np.nan), "non-finite"),
    (lambda w: w.__setitem__("kl_sum", w["kl_sum"][:3]), "misaligned"),
    (lambda w: w.pop("tokens"), "lacks"),
    (lambda w: w["tokens"].__setitem__(0, 0), "no tokens"),
])
def test_malformed_per_window_data_is_exit_2_with_the_reason(change, reason):
    windows = _windows()
    change(windows)
    with pytest.raises(GateError, match=reason):
        check_windows(windows, "run x: per_window.npz")


def test_a_different_base_model_is_refused_naming_both_runs():
    other = {**MODEL, "id": "org/other", "weights_sha256": "e" * 64}
    with pytest.raises(GateError, match=r"not the same base model \(weights differ\).*"
                       r"candidate cand \(cand\) quantizes 'org/other'.*baseline base"):
        evaluate_gate(_run("cand", _windows(), other), _run("base", _windows()), SPEC)
    allowed = GateSpec(max_accuracy_drop=None, resamples=200, allow_cross_model=True)
    result = evaluate_gate(_run("cand", _windows(), other), _run("base", _windows()), allowed)
    assert any(n.startswith("cross-model comparison") for n in result.notes)


def test_a_run_without_lineage_or_on_other_data_is_refused():
    with pytest.raises(GateError, match="baseline run base .* records no base-model digest"):
        evaluate_gate(_run("cand", _windows()), _run("base", _windows(), {}), SPEC)
    other_text = {**PROTOCOL, "text_sha256": "f" * 64}
    with pytest.raises(GateError, match="different data or protocol.*text_sha256"):
        evaluate_gate(_run("cand", _windows()), _run("base", _windows(), protocol=other_text),
                      SPEC)


def test_digests_follow_content_not_names(tiny_model, tmp_path):
    copy = shutil.copytree(tiny_model, tmp_path / "renamed")
    assert model_digests(copy) == model_digests(tiny_model)
    [weights] = copy.glob("*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    changed = model_digests(copy)
    assert changed["weights_sha256"] != model_digests(tiny_model)["weights_sha256"]
    assert changed["tokenizer_sha256"] == model_digests(tiny_model)["tokenizer_sha256"]


def test_large_files_are_sampled_and_a_changed_block_is_seen(tmp_path, monkeypatch):
    import quench.lineage as lineage

    monkeypatch.setattr(lineage, "HASH_LIMIT_BYTES", 1024)
    big = tmp_path / "model.safetensors"
    big.write_bytes(np.random.default_rng(0).bytes(20 << 20))
    first, method = lineage.file_digest(big)
    assert method == "sampled"
    data = bytearray(big.read_bytes())
    data[10 << 20] ^= 1  # inside the block sampled in the middle of the file
    big.write_bytes(bytes(data))
    assert lineage.file_digest(big)[0] != first
