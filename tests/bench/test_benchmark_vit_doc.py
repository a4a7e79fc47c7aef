"""The transformer section of `make bench`: the CNN chosen by val, the pairs it times, and the section rendered
from the measured rows only (refused bundles as rows saying why)."""

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
    return (importlib.import_module("benchmark_vit"), importlib.import_module("benchmark_vit_models"),
            importlib.import_module("benchmark_doc_vit"))


def _row(p50: float, top1: float, size_mb: float = 1.0, computes: str = "f32") -> dict:
    return {"runtime": "x", "engine_precision": computes, "p50_ms": p50, "p90_ms": p50 * 1.2, "size_mb": size_mb,
            "accuracy": top1, "others_cores": 0.1}


def _ratio(reference: str, candidate: str, values: list[float]) -> dict:
    return {"reference": reference, "candidate": candidate, **RatioStats.from_ratios(values).to_dict()}


def fake_result() -> dict:
    rows = {"vit_onnxruntime_fp32": _row(0.80, 0.90, 1.30), "vit_onnxruntime_int8": _row(1.00, 0.89, 0.45, "int8"),
            "vit_openvino_fp32": _row(0.40, 0.90, 1.30), "vit_openvino_int8": _row(0.25, 0.895, 0.50, "int8+f32"),
            "vit_tflite_fp32": _row(0.90, 0.90, 1.30),
            "cnn_onnxruntime_fp32": _row(0.20, 0.91, 6.0), "cnn_onnxruntime_int8": _row(0.15, 0.90, 1.6, "int8"),
            "cnn_openvino_fp32": _row(0.10, 0.91, 6.0), "cnn_openvino_int8": _row(0.08, 0.91, 1.7, "int8+f32"),
            "cnn_tflite_fp32": _row(0.30, 0.91, 6.0), "cnn_tflite_int8": _row(0.20, 0.905, 1.6, "int8")}
    ratios = {
        "vit_onnxruntime_fp32/vit_onnxruntime_int8": _ratio("vit_onnxruntime_fp32", "vit_onnxruntime_int8",
                                                            [0.78, 0.80, 0.82]),
        "vit_openvino_fp32/vit_openvino_int8": _ratio("vit_openvino_fp32", "vit_openvino_int8", [1.5, 1.6, 1.7]),
        "vit_openvino_fp32/cnn_openvino_fp32": _ratio("vit_openvino_fp32", "cnn_openvino_fp32", [3.9, 4.0, 4.2]),
    }
    parity = {k: {"top1_agreement": 0.99 if k.endswith("int8") else 1.0} for k in rows}
    parity["vit_onnxruntime_int8"] = {"top1_agreement": 0.95}
    provenance = {"reused": True, "path": "/w/models/vit.pt", "built_by": {"commit": "a" * 40}}
    return {
        "title": "ViT vs CNN", "input_size": 32, "accuracy_split": "test", "selection_split": "val",
        "accuracy_images": 360, "calibration_images": 300, "int8_bench_agreement": 0.9,
        "default_int8_agreement": 0.995, "fp32_relative_tolerance": 1e-3, "cpus": 2, "classes": 10,
        "cnn_chance_factor": 1.5,
        "plan": {"cnn_architectures": ["mobilenet_v3_small", "resnet18"], "cnn_epochs": [1, 2]},
        "models": {
            "vit": {"architecture": "vit_tiny", "epochs": 40, "best_epoch": 38, "val_top1": 0.95, "test_top1": 0.90,
                    "recipe": {"learning_rate": 1e-3, "weight_decay": 0.05, "batch_size": 64},
                    "macs": 23_000_000, "params": 310_000, "provenance": provenance,
                    "config": {"patch_size": 4, "layers": 4, "heads": 3, "hidden": 96, "mlp": 192}},
            "cnn": {"architecture": "resnet18", "epochs": 1, "best_epoch": 1, "val_top1": 0.94, "test_top1": 0.91,
                    "macs": 37_000_000, "params": 11_000_000, "provenance": {"reused": False}},
        },
        "cnn_candidates": [
            {"architecture": "mobilenet_v3_small", "epochs": 1, "best_epoch": 1, "val_top1": 0.60, "test_top1": 0.6,
             "chosen": False},
            {"architecture": "mobilenet_v3_small", "epochs": 2, "best_epoch": 2, "val_top1": 0.80, "test_top1": 0.8,
             "chosen": False},
            {"architecture": "resnet18", "epochs": 1, "best_epoch": 1, "val_top1": 0.94, "test_top1": 0.91,
             "chosen": True},
        ],
        "rows": rows, "ratios": ratios, "parity": parity,
        "failures": {"vit_tflite_int8": "ParityError: INT8 top-1 agreement 41% on val is below 90%, max |Δlogit| 2"},
        "rounds": [{"others_cores": 0.2}, {"others_cores": 0.6}, {"others_cores": 0.4}],
    }


def test_the_cnn_is_the_working_val_closest_and_ties_go_to_the_first_tried(scripts):
    _, models, _ = scripts
    tried = [{"val_top1": 0.80}, {"val_top1": 0.97}, {"val_top1": 0.93}, {"val_top1": 0.97}]
    assert models.choose_cnn(0.95, tried, chance=0.1) == 1  # 2 pt away, tried before the other 2 pt away
    assert models.choose_cnn(0.94, tried, chance=0.1) == 2
    at_chance = [{"val_top1": 0.10}, {"val_top1": 0.54}]
    assert models.choose_cnn(0.15, at_chance, chance=0.1) == 1  # a classifier at chance is not "similar"
    assert models.choose_cnn(0.15, [{"val_top1": 0.10}], chance=0.1) == 0  # unless nothing else was trained
    with pytest.raises(ValueError):
        models.choose_cnn(0.9, [], chance=0.1)


def test_pairs_are_int8_against_fp32_and_vit_against_cnn_among_built_rows(scripts):
    vit, models, _ = scripts
    keys = [k for k in models.all_row_keys() if k != "vit_tflite_int8"]
    pairs = vit.plan_pairs(keys)
    assert ("vit_openvino_fp32", "vit_openvino_int8") in pairs
    assert ("cnn_tflite_fp32", "cnn_tflite_int8") in pairs
    assert ("vit_tflite_int8", "cnn_tflite_int8") not in pairs and ("vit_tflite_fp32", "vit_tflite_int8") not in pairs
    assert ("vit_onnxruntime_int8", "cnn_onnxruntime_int8") in pairs
    assert len(pairs) == 5 + 5  # FP32→INT8: 6 less the refused one; ViT→CNN: 6 less the refused one
    # Rows whose partners were refused are still timed, against a row of their own model where there is one.
    assert vit.plan_pairs(["vit_onnxruntime_fp32", "vit_openvino_fp32", "vit_tflite_fp32"]) == [
        ("vit_openvino_fp32", "vit_onnxruntime_fp32"), ("vit_onnxruntime_fp32", "vit_tflite_fp32")]
    assert vit.plan_pairs(["vit_onnxruntime_fp32"]) == []


def test_the_section_renders_rows_refusals_ratios_and_limits(scripts):
    _, _, doc = scripts
    text = "\n".join(doc.transformer_section(fake_result(), SETTINGS))
    assert "| ViT | OpenVINO | INT8 (int8+f32) | 0.250 | 0.300 | 0.50 | 89.50% | -0.50 | 99.00% | 1.60× (1.50–1.70) | |" \
        in text
    assert ("| ViT | TFLite | INT8 | — | — | — | — | — | — | — | **refused**: ParityError: INT8 top-1 agreement 41% on "
            "val is below 90%, max \\|Δlogit\\| 2 |") in text
    assert "| ViT | TFLite | FP32 (f32) | 0.900 |" in text and "| CNN | TFLite | INT8 (int8) | 0.200 |" in text
    assert "Refused by edgevision, so not timed (why: in the table): ViT TFLite INT8." in text
    assert "| OpenVINO | FP32 | 0.400 | 0.100 | 4.00× (3.90–4.20) | 0.22× |" in text
    assert "| `resnet18` | 1 (epoch 1) | 94.00% | -1.00 | 91.00% | **yes** |" in text
    assert "trained for 1, 2 epoch(s) in turn" in text and "among those above 1.5× chance (15.00% val top-1" in text
    assert ("| ViT | `vit_tiny` | 0.31 M | 23.0 | lr 0.001, weight decay 0.05, batch 64 | 40 (epoch 38) | 95.00% | "
            "90.00% |") in text
    assert "| CNN | `resnet18` | 11.00 M | 37.0 | — | 1 (epoch 1) |" in text
    assert "INT8 was slower than FP32 for ViT on ONNX Runtime" in text
    assert "below edgevision's default INT8 agreement (99.50%)" in text and "ViT ONNX Runtime INT8" in text
    assert "median of 0.40 and at most 0.60 CPUs" in text and "2 logical CPUs" in text
    assert "8² patches" in text and "1 image = 0.28 pt" in text
    assert "python scripts/benchmark.py --models vit --out docs --merge" in text
    assert doc.transformer_section(None, SETTINGS) == []
    untimed = fake_result()
    untimed["rows"].pop("vit_tflite_fp32")
    untimed["accuracy"] = {"vit_tflite_fp32": 0.88}
    assert ("| ViT | TFLite | FP32 | — | — | — | 88.00% | -2.00 | 100.00% | — | built, not timed (no other row to "
            "pair it with) |") in "\n".join(doc.transformer_section(untimed, SETTINGS))
    assert doc.section_provenance(fake_result()) == [
        "- **ViT vs CNN models:** ViT `vit_tiny` reused from `vit.pt` (aaaaaaaaaaaa); CNN `resnet18` built in this run"]


def test_the_whole_document_carries_the_section_and_merge_keeps_it(scripts):
    merge, whole = importlib.import_module("benchmark_merge"), importlib.import_module("benchmark_doc")
    existing = {"settings": {"rounds": 5}, "models": [], "detection": None, "segmentation": None,
                "transformer": None, "date": "d1"}
    fresh = {"settings": {"rounds": 3, **SETTINGS}, "models": [], "detection": None, "segmentation": None,
             "transformer": fake_result(), "date": "d2", "command": "python scripts/benchmark.py --models vit --merge",
             "quick": True, "code_version": {"commit": "abc"}, "machine": {"cpu_model": "cpu"}}
    merged = merge.merge_sections(existing, fresh)
    assert merged["transformer"]["settings"]["rounds"] == 3 and merged["merged"][0]["sections"] == ["transformer"]
    machine = {"cpu_model": "cpu", "cpus": 2, "platform": "linux", "python": "3.11", "load_start": [1.0, 1.0, 1.0]}
    text = whole.render(merged | {"settings": {**SETTINGS, "latency_size": 224}, "machine": machine, "versions": {},
                                  "command": "c", "seconds": 10, "quick": False})
    assert "## ViT vs CNN" in text and "the transformer section(s) were measured on d2" in text
    assert "- **ViT vs CNN models:** ViT `vit_tiny` reused" in text
    assert "other processes used a median of 0.40" in text  # the load note reads the section's rounds
