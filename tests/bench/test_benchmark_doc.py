"""docs/benchmarks.md is rendered from the run's payload only: no machine, duration or CPU claims of its own."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from edgevision.bench.paired import RatioStats

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CPU = "Fakeium Z-9000 Quantum Edition"


@pytest.fixture
def benchmark_doc(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts/ is not a package; undone after the test
    return importlib.import_module("benchmark_doc")


def _row(runtime: str, computes: str, p50: float, macs: int) -> dict:
    return {"runtime": runtime, "engine_precision": computes, "p50_ms": p50, "p90_ms": p50 * 1.1,
            "throughput_ips": 1000 / p50, "size_mb": 1.5, "macs": macs, "others_cores": 0.05,
            "p50_ms_per_block": [p50, p50 * 1.2]}


def _ratio(reference: str, candidate: str, values: list[float]) -> dict:
    return {"reference": reference, "candidate": candidate, **RatioStats.from_ratios(values).to_dict()}


def fake_payload() -> dict:
    rows = {"eager": _row("torch", "fp32", 30.0, 10**9), "ort_fp32": _row("onnxruntime", "fp32", 9.0, 10**9),
            "ov_fp32": _row("openvino", "f32", 11.0, 10**9), "oneliner": _row("openvino", "int8+f32", 4.0, 10**9),
            "full_openvino": _row("openvino", "int8+f32", 1.5, 3 * 10**8),
            "plain_ov_fp32": _row("openvino (plain)", "bf16", 6.0, 10**9),
            "ov_fp32_bf16": _row("openvino", "bf16", 6.1, 10**9),
            "plain_oneliner": _row("openvino (plain)", "int8+f32", 3.9, 10**9),
            "plain_full_openvino": _row("openvino (plain)", "int8+f32", 1.45, 3 * 10**8)}
    ratios = {f"eager/{k}": _ratio("eager", k, [30 / rows[k]["p50_ms"], 31 / rows[k]["p50_ms"], 29 / rows[k]["p50_ms"]])
              for k in ("ort_fp32", "ov_fp32", "oneliner", "full_openvino")}
    ratios |= {"oneliner/full_openvino": _ratio("oneliner", "full_openvino", [2.6, 2.7, 2.5]),
               "ov_fp32/oneliner": _ratio("ov_fp32", "oneliner", [2.7, 2.8, 2.6]),
               "ov_fp32/plain_ov_fp32": _ratio("ov_fp32", "plain_ov_fp32", [1.8, 1.9, 1.7]),
               "ov_fp32_bf16/plain_ov_fp32": _ratio("ov_fp32_bf16", "plain_ov_fp32", [1.01, 1.02, 1.03]),
               "oneliner/plain_oneliner": _ratio("oneliner", "plain_oneliner", [1.02, 1.03, 1.01]),
               "full_openvino/plain_full_openvino": _ratio("full_openvino", "plain_full_openvino", [1.03, 1.04, 1.02])}
    model = {
        "title": "ResNet-18", "architecture": "resnet18", "plan": {"channel_ratio": 0.5}, "train_size": 64,
        "accuracy_split": "test", "accuracy_images": 360,
        "accuracy": {"eager": 0.99, "ort_fp32": 0.99, "ov_fp32": 0.99, "oneliner": 0.985, "full_openvino": 0.985},
        "rows": rows, "ratios": ratios, "rounds": [{"others_cores": 0.05}, {"others_cores": 0.4}],
        "best_engine": "full_openvino", "macs": {"original": 10**9, "compressed": 3 * 10**8},
        "compression": {"prune": "kept 50 %"},
        "provenance": {"original": {"reused": True, "path": "runs/bench/models/r.pt",
                                    "built_by": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
                                    "built_at": "2026-11-28 10:00 UTC"},
                       "compressed": {"reused": False, "path": "runs/bench/models/r-kd.pt", "built_by": {}}},
        "parity": {"train_size": {"full_openvino": {"top1_agreement": 0.99}}},
        "failures": {},
        "targets": [{"name": "full pipeline speed-up vs PyTorch eager", "target": "≥ 12× (paired median)",
                     "measured": "20.00×", "met": True}],
    }
    stream = [{"model": "ResNet-18", "bundle_label": "OpenVINO FP32", "runtime": "openvino", "workers": 1,
               "raw_fps": 90.0, "capture_fps": 400.0, "capture_cpu_ms": 2.0, "stream_fps": 85.0, "ratio": 0.94,
               "ratio_spread": RatioStats.from_ratios([0.93, 0.94, 0.95]).to_dict(), "shared_cpu_bound": 0.92,
               "video": {"width": 320, "height": 240, "kb_per_frame": 9.0},
               "stage_mean_ms": {"infer_ms": 11.5, "preprocess_ms": 0.7}, "repeats": 3, "others_cores_before": 0.1}]
    return {
        "command": "python scripts/benchmark.py --out docs", "quick": False, "date": "2031-02-03 04:05 UTC",
        "seconds": 4321.0, "code_version": {"commit": "fedcba9876543210fedcba9876543210fedcba98", "dirty": True},
        "machine": {"cpu_model": CPU, "cpus": 7, "architecture": "x86_64", "cpu_flags_present": ["avx2"],
                    "cpu_flags_absent": ["avx512_vnni", "amx_int8"], "openvino_cpu_capabilities": ["FP32", "INT8"],
                    "platform": "Linux-test", "python": "3.11.0", "load_start": [0.1, 0.2, 0.3],
                    "load_end": [0.4, 0.5, 0.6]},
        "settings": {"train_size": 64, "latency_size": 224, "batch_size": 1, "threads": 3, "iterations": 100,
                     "warmup": 50, "block_warmup": 10, "rounds": 3, "calibration_images": 300,
                     "accuracy_split": "test", "selection_split": "val",
                     "parity": {"fp32_relative_tolerance": 1e-3, "int8_bench_agreement": 0.9,
                                "default_int8_agreement": 0.995, "int8_sanity_agreement": 0.5, "sanity_images": 100}},
        "versions": {"openvino": "9.9.9"},
        "labels": {"eager": "PyTorch eager FP32", "ort_fp32": "ONNX Runtime FP32", "ov_fp32": "OpenVINO FP32",
                   "oneliner": "export + INT8 PTQ only", "full_openvino": "edgevision full → OpenVINO INT8"},
        "full_candidates": ["full_openvino"],
        "models": [model], "stream": stream,
    }


def test_machine_facts_come_from_the_payload(benchmark_doc):
    text = benchmark_doc.render(fake_payload())
    assert CPU in text
    assert "7 logical CPUs" in text and "3 engine threads" in text
    assert "avx2 present" in text and "avx512_vnni, amx_int8 absent" in text
    assert "FP32, INT8" in text  # OpenVINO's own capability report
    assert "72 min 1 s wall time" in text and "2031-02-03 04:05 UTC" in text
    assert "fedcba9876543210fedcba9876543210fedcba98` (with uncommitted changes)" in text
    assert "320×240" in text and "(224×224 input)" in text  # the stream video's and the bundle's sizes


def test_nothing_else_claims_a_machine(benchmark_doc):
    text = benchmark_doc.render(fake_payload())
    without_cpu = text.replace(CPU, "")
    for claim in ("AMD", "EPYC", "Intel", "Xeon", "Ryzen", "Cortex", "Apple", "Jetson", "Raspberry",
                  "AVX-512", "VNNI", "AMX", "bf16 here", "this CPU"):
        assert claim not in without_cpu, claim
    assert not re.search(r"\b(2|two) (CPU )?cores\b", text), "a core count that is not the payload's 7"
    assert not re.search(r"\b(2|two) (engine )?threads\b", text), "a thread count that is not the payload's 3"
    assert not re.search(r"\bmin end to end|\d+ ?-\d+ min|hours\b", text)
    durations = re.findall(r"(?<!/)\b\d+ min\b", text)  # not the load average's "1/5/15 min"
    assert durations == ["72 min"], durations


def test_ratios_are_paired_medians_with_spread_and_accuracy_names_the_test_split(benchmark_doc):
    text = benchmark_doc.render(fake_payload())
    assert "top-1 (test split, 360 images)" in text
    assert "20.00× (19.33–20.67)" in text  # eager / full: median and min–max of the per-round ratios
    assert "median of the per-round ratios" in text
    assert "| 1.800 (1.750–1.850; 1.700–1.900) |" in text  # edgevision ÷ plain OpenVINO, IQR; range
    assert "OpenVINO FP32 (uncompressed): edgevision f32, plain bf16" in text  # named, not passed off as overhead
    assert "edgevision asked for bf16 | bf16, 6.100 | bf16, 6.000 | 1.020 " in text  # the same precision on both sides
    assert "asked for bf16: edgevision" not in text


def test_a_cached_model_says_so_with_the_commit_that_built_it(benchmark_doc):
    text = benchmark_doc.render(fake_payload())
    assert "original reused from cache `r.pt`, built by commit `0123456789ab` on 2026-11-28 10:00 UTC" in text
    assert "compressed built in this run" in text


def test_a_quick_run_is_marked(benchmark_doc):
    payload = fake_payload() | {"quick": True}
    assert "**Quick run**" in benchmark_doc.render(payload)
    assert "**Quick run**" not in benchmark_doc.render(fake_payload())
