"""The stored reference: streamed to .npy files window by window, read back by row range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quench.metrics.kl import topk_arrays
from quench.metrics.reference import NpyAppender, NpyRows, ReferenceWriter, open_reference


def test_windows_written_in_turn_read_back_as_one_array(tmp_path):
    rows = [torch.log_softmax(torch.randn(n, 300), -1) for n in (7, 5, 9)]
    writer = ReferenceWriter(tmp_path / "topk", positions=21, top_k=12, exact_tokens=10)
    for logp in rows:
        writer.add(logp)
    assert writer.close() == 10
    ref = open_reference(tmp_path / "topk")
    values, ids, rest = topk_arrays(torch.cat(rows), 12)
    assert np.array_equal(ref.logprobs[0:21], values) and np.array_equal(ref.ids[3:15], ids[3:15])
    assert np.array_equal(ref.rest[20:25], rest[20:])  # past the end: clipped, as numpy does
    exact = ref.exact[0:10]
    assert exact.dtype == np.float16 and exact.shape == (10, 300)
    assert np.array_equal(exact, torch.cat(rows)[:10].half().numpy())
    assert np.array_equal(np.load(tmp_path / "topk" / "ids.npy"), ids)  # plain .npy files


def test_a_short_or_mistyped_file_is_an_error(tmp_path):
    appender = NpyAppender(tmp_path / "a.npy", (4, 3), np.float16)
    with pytest.raises(ValueError, match="expected float16"):
        appender.write(np.zeros((2, 3), np.float32))
    appender.write(np.zeros((2, 3), np.float16))
    with pytest.raises(ValueError, match="wrote 2 rows, declared 4"):
        appender.close()
    assert len(NpyRows(tmp_path / "a.npy")) == 4
