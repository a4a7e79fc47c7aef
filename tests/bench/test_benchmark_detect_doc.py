"""The detection section of `make bench`: targets judged from the measured rows, and rendered from them only."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from edgevision.bench.paired import RatioStats

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts/ is not a package; undone after the test
    return importlib.import_module("benchmark_detect"), importlib.import_module("benchmark_doc_detect")


def _row(runtime: str, p50: float, e2e: float, map50_95: float | None) -> dict:
    return {"runtime": runtime, "engine_precision": "int8", "p50_ms": p50, "p90_ms": p50 * 1.1, "size_mb": 1.0,
            "macs": 10**8, "map50_95": map50_95, "map50": None if map50_95 is None else map50_95 + 0.2,
            "post_p50_ms": 0.8, "end_to_end": {"p50_ms": e2e}}


def _ratio(reference: str, candidate: str, values: list[float]) -> dict:
    return {"reference": reference, "candidate": candidate, **RatioStats.from_ratios(values).to_dict()}


def fake_result(detect) -> dict:  # detect: the benchmark_detect module
    rows = {"eager": _row("torch", 20.0, 23.0, 0.600), "oneliner": _row("openvino", 4.0, 6.0, 0.560),
            "hf_openvino": _row("openvino", 4.5, 6.5, 0.597), "hf_tflite": _row("tflite", 6.0, 8.0, 0.580),
            "full_openvino": _row("openvino", 2.5, 4.5, 0.595), "full_tflite": _row("tflite", 2.0, 4.0, None)}
    ratios = {"oneliner@e2e/full_openvino@e2e": _ratio("oneliner@e2e", "full_openvino@e2e", [1.3, 1.35, 1.4]),
              "oneliner/full_openvino": _ratio("oneliner", "full_openvino", [1.5, 1.6, 1.7])}
    return {"title": "Digits detector", "plan": {"target_macs_ratio": 0.5, "distill_epochs": 4},
            "input_size": [160, 192], "accuracy_images": 300, "rows": rows, "ratios": ratios,
            "best_engine": detect.choose_best(rows, ratios), "macs": {"original": 160 * 10**6, "compressed": 80 * 10**6},
            "labels": detect.LABELS, "full_candidates": list(detect.FULL_CANDIDATES), "compression": {},
            "provenance": {}, "failures": {"hf_onnxruntime": "not built: CompressionError: no QDQ"},
            "calibration_images": 300, "parity_images": 100, "int8_bench_map50": 0.5}


def test_the_fastest_full_engine_with_a_measured_map_is_chosen(scripts):
    detect, _ = scripts
    result = fake_result(detect)
    assert result["best_engine"] == "full_openvino"  # full_tflite is faster but has no mAP
    rows = result["rows"] | {"full_onnxruntime": _row("onnxruntime", 3.0, 3.9, 0.59)}
    ratios = result["ratios"] | {
        "oneliner@e2e/full_onnxruntime@e2e": _ratio("oneliner@e2e", "full_onnxruntime@e2e", [1.2, 1.25, 1.3])}
    # the paired median decides (1.35× beats 1.25×), not the lower unpaired p50 (3.9 ms < 4.5 ms)
    assert detect.choose_best(rows, ratios) == "full_openvino"
    assert detect.choose_best(rows, {}) == "full_onnxruntime"  # no pairs: the lowest end-to-end p50


def test_targets_are_judged_on_the_measured_values(scripts):
    detect, _ = scripts
    result = fake_result(detect)
    targets = {t["name"]: t for t in detect.evaluate_targets(detect.PLAN, result)}
    openvino = targets["INT8 head in float → OpenVINO: mAP50-95 drop vs FP32"]
    assert openvino["met"] and openvino["value"] == pytest.approx(0.3)
    tflite = targets["INT8 head in float → TFLite: mAP50-95 drop vs FP32"]
    assert not tflite["met"] and tflite["value"] == pytest.approx(2.0)
    speed = targets["edgevision full vs the one-liner, end to end"]
    assert not speed["met"] and speed["value"] == pytest.approx(1.35) and "range 1.30–1.40" in speed["measured"]
    drop = targets["edgevision full: mAP50-95 drop vs FP32"]
    assert drop["met"] and drop["value"] == pytest.approx(0.5)


def test_a_missing_row_is_a_missed_target_that_says_why(scripts):
    detect, _ = scripts
    result = fake_result(detect)
    del result["rows"]["hf_tflite"]
    result["failures"]["hf_tflite"] = "not built: ConfigError: no TFLite"
    target = next(t for t in detect.evaluate_targets(detect.PLAN, result) if "TFLite" in t["name"])
    assert not target["met"] and target["value"] is None and "no TFLite" in target["measured"]


def test_pairs_put_every_row_against_the_oneliner_for_inference_and_end_to_end(scripts):
    detect, _ = scripts
    pairs = detect.plan_pairs(["eager", "oneliner", "full_openvino"])
    assert pairs == [("oneliner", "eager"), ("oneliner", "full_openvino"),
                     ("oneliner@e2e", "eager@e2e"), ("oneliner@e2e", "full_openvino@e2e")]
    assert detect.plan_pairs(["eager", "ov_fp32"]) == []  # no one-liner: nothing to pair against


def test_the_section_shows_rows_verdicts_failures_and_the_fixed_cost_bound(scripts):
    detect, doc = scripts
    result = fake_result(detect)
    result["targets"] = detect.evaluate_targets(detect.PLAN, result)
    text = "\n".join(doc.detection_section(result, {"batch_size": 1, "threads": 2, "rounds": 3, "iterations": 50}))
    assert "**edgevision full (prune + KD + INT8 head-float) on openvino**" in text
    assert "| 1.35× (1.30–1.40) | 1.60× (1.50–1.70) |" in text  # × one-liner: end to end, then inference
    assert "**MISSED**" in text and "| met |" in text
    assert "not built: CompressionError: no QDQ" in text
    # the one-liner: 4.00 of 6.00 ms in inference, so 2.00 ms fixed: at most 3.0× end to end
    assert "more than 3.0× faster than the one-liner" in text
    assert doc.detection_section(None, {}) == []


def test_a_detector_only_run_renders_without_the_classifier_sections(scripts):
    detect, _ = scripts
    result = fake_result(detect)
    result["targets"] = detect.evaluate_targets(detect.PLAN, result)
    result["rounds"] = [{"others_cores": 0.25}]
    doc = importlib.import_module("benchmark_doc")
    payload = {
        "command": "python scripts/benchmark.py --models detector", "quick": False, "date": "2031-02-03 04:05 UTC",
        "seconds": 600.0, "code_version": {"commit": "abc", "dirty": False},
        "machine": {"cpu_model": "Test CPU", "cpus": 5, "platform": "Linux-test", "python": "3.11.0",
                    "load_start": [0.1, 0.2, 0.3]},
        "settings": {"batch_size": 1, "threads": 3, "iterations": 100, "rounds": 5, "latency_size": 224},
        "versions": {"openvino": "9.9.9"}, "labels": {}, "full_candidates": [], "models": [], "detection": result,
        "stream": None,
    }
    text = doc.render(payload)
    assert "## Digits detector" in text and "3 engine threads" in text
    assert "## How it is measured" not in text and "Stream FPS" not in text  # classifier-only sections
    assert "median of 0.25 and at most 0.25 of the 5 logical CPUs" in text  # the detector's rounds count


def test_distillation_and_fine_tuning_are_shown_side_by_side_from_the_payload(scripts):
    detect, doc = scripts
    result = fake_result(detect)
    result["recovery"] = {
        "pruned": {"val_map50_95": 0.40, "test_map50_95": 0.39, "test_map50": 0.63},
        "fine-tune": {"val_map50_95": 0.57, "test_map50_95": 0.571, "test_map50": 0.79, "best_epoch": 6},
        "distill": {"val_map50_95": 0.60, "test_map50_95": 0.611, "test_map50": 0.81, "best_epoch": 5},
    }
    result["targets"] = detect.evaluate_targets(detect.PLAN, result)
    settings = {"batch_size": 1, "threads": 2, "rounds": 3, "iterations": 50}
    text = "\n".join(doc.detection_section(result, settings))
    assert "| fine-tuned on labels | 6 | 0.570 | 0.571 | 0.790 | -2.90 |" in text
    assert "| **distilled from the original** | 5 | 0.600 | 0.611 | 0.810 | +1.10 |" in text
    assert "| after pruning, before recovery | — | 0.400 | 0.390 |" in text
    del result["recovery"]
    assert "Recovery after pruning" not in "\n".join(doc.detection_section(result, settings))
