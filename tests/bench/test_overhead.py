"""edgevision's OpenVINO runtime against plain OpenVINO on the same files, paired in one process."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from edgevision.bench.overhead import openvino_overhead
from edgevision.errors import ConfigError
from tests.runtimes.test_engine_precision import _openvino_bundle


def test_overhead_pairs_both_sides_on_an_int8_bundle(tmp_path):
    bundle = _openvino_bundle(tmp_path, "int8", "int8", ignored_types=())
    result = openvino_overhead(bundle, threads=1, rounds=4, iterations=3, warmup=2)
    assert result.rounds == 4 and result.ratio_q1 <= result.ratio <= result.ratio_q3
    assert all(math.isfinite(v) and v > 0 for v in (result.ratio, result.edgevision_ms, result.plain_ms))
    assert result.engine_config["precision_hint"] is None  # INT8 runs with OpenVINO's own default, like plain
    assert "paired rounds" in result.describe()
    with pytest.raises(ConfigError, match="rounds"):
        openvino_overhead(bundle, threads=1, rounds=1)
