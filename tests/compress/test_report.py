"""The compress report names the split of every accuracy: test when held out, else val in words."""

from __future__ import annotations

import json
from pathlib import Path

from edgevision.bench.result import BenchReport, BenchResult, LatencyStats
from edgevision.compress.pipeline import CompressResult, StageRecord
from edgevision.compress.recipe import Recipe
from edgevision.compress.report import write_compress_report


def _stage(stage: str, accuracy: float, selection: float, split: str) -> StageRecord:
    return StageRecord(stage=stage, params=1_000_000, macs=5_000_000, size_bytes=4_000_000, torch_latency_ms=1.5,
                       accuracy=accuracy, split=split, selection_accuracy=selection, seconds=3.0)


def _row(name: str, accuracy: float, split: str) -> BenchResult:
    latency = LatencyStats.from_samples([1.0, 1.1, 1.2, 1.3, 1.4])
    return BenchResult(name=name, bundle=name, format="onnx", precision="fp32", runtime="onnxruntime",
                       engine_precision="fp32", threads=2, batch_size=1, latency=latency, throughput_ips=800.0,
                       peak_rss_mb=100.0, size_mb=1.0, accuracy=accuracy, accuracy_images=360, accuracy_split=split)


def _result(tmp_path: Path, *, split: str, held_out: bool) -> CompressResult:
    return CompressResult(
        output=tmp_path, model_path=tmp_path / "model.pt",
        stages=[_stage("original", 0.9611, 0.9815, split), _stage("pruned", 0.9444, 0.9704, split)],
        bundles={}, accuracy_split=split, held_out=held_out,
        finetune_comparison={"before": 0.9444, "distill": 0.9583, "fine-tune": 0.9500},
        bench=BenchReport(rows=[_row("original-onnx-fp32", 0.9611, split), _row("onnx-fp32", 0.9444, split)]),
    )


def test_held_out_test_split_labels_every_figure(tmp_path):
    paths = write_compress_report(_result(tmp_path, split="test", held_out=True), tmp_path, recipe=Recipe())
    markdown = paths["markdown"].read_text()
    assert "held-out **test** split" in markdown and "selection set" not in markdown
    assert "| top-1 (test) | time s |" in markdown  # the stage table
    assert "96.11%" in markdown and "98.15%" not in markdown  # the test figure is shown, not the val one
    assert "## Bundles through their engines (top-1 (test))" in markdown
    assert "| size MB | top-1 (test) |" in markdown  # the bench table's own column
    report = json.loads(paths["json"].read_text())
    assert report["accuracy_split"]["split"] == "test" and report["accuracy_split"]["held_out"] is True
    assert [s["split"] for s in report["stages"]] == ["test", "test"]
    assert report["stages"][0]["accuracy"] == 0.9611 and report["stages"][0]["selection_accuracy"] == 0.9815
    assert report["finetune_comparison"]["split"] == "test"
    assert {row["accuracy_split"] for row in report["bench"]} == {"test"}


def test_without_a_test_split_the_report_says_selection_set(tmp_path):
    paths = write_compress_report(_result(tmp_path, split="val", held_out=False), tmp_path, recipe=Recipe())
    markdown = paths["markdown"].read_text()
    assert "**val, the selection set** (no test split was given)" in markdown and "optimistic" in markdown
    assert "| top-1 (val, selection set) | time s |" in markdown
    report = json.loads(paths["json"].read_text())
    assert report["accuracy_split"]["held_out"] is False and "selection set" in report["accuracy_split"]["note"]
    assert [s["split"] for s in report["stages"]] == ["val", "val"]

