"""`bench`: real timings through each engine, refused for failed parity, reports on disk."""

from __future__ import annotations

import json
import shutil

import pytest

from edgevision import errors
from edgevision.bench import BenchConfig, bench
from edgevision.bench.report import save_report, to_table
from edgevision.bench.result import BenchResult, LatencyStats
from edgevision.bundle import MANIFEST_NAME


@pytest.fixture(scope="module")
def torch_bundle(trained_model, digits, tmp_path_factory):
    from edgevision.export import ParityConfig, export

    return export(trained_model, tmp_path_factory.mktemp("t") / "torch-ref", format="torch", parity=ParityConfig(data=digits.val))


def test_bench_rows_with_accuracy_through_engine(onnx_bundle, torch_bundle, digits, tmp_path):
    config = BenchConfig(warmup=2, iterations=20, threads=(1, 2), data=digits.val, max_images=100, isolate=False)
    report = bench([torch_bundle, onnx_bundle], config=config)
    assert [(r.runtime, r.threads) for r in report.rows] == [("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)]
    for row in report.rows:
        assert row.latency.n == 20 and len(row.samples_ms) == 20
        assert row.latency.p50_ms <= row.latency.p90_ms <= row.latency.p99_ms
        assert row.accuracy is not None and row.accuracy >= 0.85 and row.accuracy_images == 100
        assert row.size_mb > 1
    assert report.speedup(report.rows[0]) == 1.0
    written = save_report(report, tmp_path / "out")
    payload = json.loads(written["json"].read_text())
    assert len(payload["rows"]) == 4 and payload["baseline"] == "torch-ref"
    assert written["csv"].read_text().count("\n") == 5
    assert written["plot"].stat().st_size > 1000
    assert "speed-up" in str(to_table(report).columns[9].header)


def test_isolated_row_reports_its_own_memory(onnx_bundle, tmp_path):
    report = bench([onnx_bundle], config=BenchConfig(warmup=1, iterations=5, threads=(1,)))
    row = report.rows[0]
    assert 20 < row.peak_rss_mb < 2000  # a separate process, not the test runner's torch-laden one
    assert row.engine_precision == "fp32"
    # The engine's own record, carried from the worker process into the JSON and CSV.
    assert row.engine_config["threads"] == 1 and row.engine_config["spinning"] is True
    assert row.engine_config["graph_optimization"] == "all"
    assert row.engine_precision_detail["source"] == "ONNX Runtime optimised graph"
    assert row.engine_precision_detail["layers"]["fp32"] >= 20  # resnet18: 20 convolutions and a Gemm
    written = save_report(report, tmp_path)
    assert json.loads(written["json"].read_text())["rows"][0]["engine_config"] == row.engine_config
    header, line = written["csv"].read_text().splitlines()[:2]
    assert {"engine_config", "accuracy_split", "task", "metric"} <= set(header.split(","))
    assert "spinning=True" in line and "threads=1" in line and ",classify,top-1," in line


def test_openvino_row_runs_a_static_shape_model_for_its_fixed_batch(trained_model, digits, tmp_path_factory):
    pytest.importorskip("openvino")
    from edgevision.export import ParityConfig, export

    bundle = export(trained_model, tmp_path_factory.mktemp("ov") / "ov", format="openvino",
                    parity=ParityConfig(data=digits.val, max_images=100))
    config = BenchConfig(warmup=1, iterations=5, threads=(1,), batch_size=2, isolate=False)
    (row,) = bench([bundle], config=config).rows
    assert row.engine_config["static_shape"] is True and row.engine_config["precision_hint"] == "f32"
    assert row.engine_config["performance_hint"] == "LATENCY" and row.engine_config["engine_threads"] == 1
    assert row.engine_precision == "fp32" and row.batch_size == 2


def test_failed_parity_is_refused(onnx_bundle, tmp_path):
    broken = tmp_path / "failed"
    shutil.copytree(onnx_bundle.path, broken)
    raw = json.loads((broken / MANIFEST_NAME).read_text())
    raw["parity"]["passed"] = False
    (broken / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(errors.ParityError, match="Refusing to benchmark"):
        bench([broken], config=BenchConfig(iterations=5, isolate=False))


def test_bad_settings(onnx_bundle):
    with pytest.raises(errors.ConfigError, match="iterations"):
        BenchConfig(iterations=1)
    with pytest.raises(errors.ConfigError, match="not among the rows"):
        bench([onnx_bundle], config=BenchConfig(iterations=5, isolate=False), baseline="nope")


def test_results_reject_impossible_values():
    with pytest.raises(ValueError, match="out of order"):
        LatencyStats(n=3, p50_ms=5, p90_ms=4, p99_ms=6, mean_ms=5, std_ms=1, min_ms=1)
    stats = LatencyStats.from_samples([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="accuracy"):
        BenchResult(name="x", bundle="x", format="onnx", precision="fp32", runtime="onnxruntime",
                    engine_precision="fp32", threads=1, batch_size=1, latency=stats, throughput_ips=10,
                    peak_rss_mb=10, size_mb=1, accuracy=1.5)
    with pytest.raises(ValueError, match="engine_config"):
        BenchResult(name="x", bundle="x", format="onnx", precision="fp32", runtime="onnxruntime",
                    engine_precision="fp32", threads=1, batch_size=1, latency=stats, throughput_ips=10,
                    peak_rss_mb=10, size_mb=1, engine_config={"providers": ["CPU"]})
