"""The segmentation section of `make bench`: mIoU targets judged from the measured rows, the section rendered from
them only, and `--merge` keeping the sections a run did not measure."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from edgevision.bench.paired import RatioStats

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SETTINGS = {"batch_size": 1, "threads": 2, "rounds": 3, "iterations": 50}


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts/ is not a package; undone after the test
    return importlib.import_module("benchmark_segment"), importlib.import_module("benchmark_doc_segment")


@pytest.fixture
def task(scripts):
    return importlib.import_module("benchmark_task")


def _row(runtime: str, p50: float, e2e: float, miou: float | None) -> dict:
    return {"runtime": runtime, "engine_precision": "int8", "p50_ms": p50, "p90_ms": p50 * 1.1, "size_mb": 1.0,
            "macs": 10**8, "miou": miou, "pixel_accuracy": None if miou is None else 0.98, "post_p50_ms": 0.4,
            "end_to_end": {"p50_ms": e2e}}


def _ratio(reference: str, candidate: str, values: list[float]) -> dict:
    return {"reference": reference, "candidate": candidate, **RatioStats.from_ratios(values).to_dict()}


def fake_result(segment) -> dict:  # segment: the benchmark_segment module
    rows = {"eager": _row("torch", 30.0, 33.0, 0.650), "oneliner": _row("openvino", 6.0, 8.0, 0.630),
            "int8_openvino": _row("openvino", 6.0, 8.0, 0.642), "full_openvino": _row("openvino", 2.0, 3.8, 0.640),
            "full_tflite": _row("tflite", 1.5, 3.0, None)}
    ratios = {"oneliner@e2e/full_openvino@e2e": _ratio("oneliner@e2e", "full_openvino@e2e", [2.0, 2.1, 2.2]),
              "oneliner/full_openvino": _ratio("oneliner", "full_openvino", [2.9, 3.0, 3.1])}
    return {"title": "Digits segmenter", "plan": {"target_macs_ratio": 0.6, "prune_round_to": 16,
                                                    "distill_epochs": 6, "distill_alpha": 0.5,
                                                    "distill_feature_weight": 1.0},
              "input_size": [160, 192], "accuracy_images": 250, "rows": rows, "ratios": ratios,
              "best_engine": None,
              "macs": {"original": 300 * 10**6, "compressed": 180 * 10**6}, "labels": segment.LABELS,
              "full_candidates": list(segment.FULL_CANDIDATES), "compression": {}, "provenance": {},
              "failures": {"int8_tflite": "not built: ConversionError: no TFLite"}, "calibration_images": 300,
              "parity_images": 100, "int8_bench_miou": 0.5, "fp32_parity_miou": 0.99, "frame_size": [240, 320]}


def test_targets_use_miou_and_the_fastest_full_engine_with_a_measured_miou(scripts, task):
    segment, _ = scripts
    result = fake_result(segment)
    result["best_engine"] = task.choose_best(result["rows"], result["ratios"], candidates=segment.FULL_CANDIDATES,
                                        metric="miou")
    assert result["best_engine"] == "full_openvino"  # full_tflite is faster but has no mIoU
    targets = {t["name"]: t for t in task.evaluate_targets(segment.section(segment.PLAN), result)}
    int8 = targets["edgevision INT8 → OpenVINO: mIoU drop vs FP32"]
    assert int8["met"] and int8["value"] == pytest.approx(0.8) and int8["target"] == "≤ 1 pt"
    speed = targets["edgevision full vs the one-liner, end to end"]
    assert speed["met"] and speed["value"] == pytest.approx(2.1)
    drop = targets["edgevision full: mIoU drop vs FP32"]
    assert drop["met"] and drop["value"] == pytest.approx(1.0) and drop["target"] == "≤ 1.5 pt"


def test_the_section_renders_miou_columns_failures_and_recovery(scripts, task):
    segment, doc = scripts
    result = fake_result(segment) | {"best_engine": "full_openvino"}
    result["recovery"] = {
        "pruned": {"val_miou": 0.30, "test_miou": 0.29, "test_pixel_accuracy": 0.90},
        "fine-tune": {"val_miou": 0.60, "test_miou": 0.61, "test_pixel_accuracy": 0.97, "best_epoch": 6},
        "distill": {"val_miou": 0.63, "test_miou": 0.64, "test_pixel_accuracy": 0.98, "best_epoch": 5},
    }
    result["targets"] = task.evaluate_targets(segment.section(segment.PLAN), result)
    text = "\n".join(doc.segmentation_section(result, SETTINGS))
    assert "| mIoU | pixel acc. | Δ mIoU pt |" in text
    assert "| **edgevision full (prune + KD + INT8) on openvino** |" in text
    assert "| 2.10× (2.00–2.20) | 3.00× (2.90–3.10) |" in text
    assert "edgevision INT8 → TFLite: not built: ConversionError: no TFLite" in text
    assert "| **distilled from the original** | 5 | 0.630 | 0.640 | 0.980 | -1.00 |" in text
    assert "pixel-wise KL ×0.5" in text and "original 240×320 frames" in text
    assert doc.segmentation_section(None, SETTINGS) == []


def test_merge_replaces_the_measured_section_and_keeps_the_others(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    merge = importlib.import_module("benchmark_merge")
    existing = {"settings": {"rounds": 5}, "models": [{"title": "ResNet-18"}], "detection": {"title": "old det"},
                "segmentation": None, "date": "d1"}
    fresh = {"settings": {"rounds": 3}, "models": [], "detection": None, "segmentation": {"title": "seg"},
             "date": "d2", "command": "python scripts/benchmark.py --models segmenter --merge", "quick": False,
             "code_version": {"commit": "abc"}, "machine": {"cpu_model": "cpu"}}
    merged = merge.merge_sections(existing, fresh)
    assert merged["models"] == existing["models"] and merged["date"] == "d1"
    assert merged["detection"] == {"title": "old det", "settings": {"rounds": 5}}  # rendered with its own settings
    assert merged["segmentation"] == {"title": "seg", "settings": {"rounds": 3}}
    assert merged["merged"][0]["sections"] == ["segmentation"]
    with pytest.raises(SystemExit, match="classifier"):
        merge.merge_sections(existing, fresh | {"models": [{"title": "x"}]})
