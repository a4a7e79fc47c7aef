"""The demo's per-task steps (`edgevision.cli.demo_task`), as the segmentation half runs them, on a tiny segmenter."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from edgevision.cli.demo_segment import SEGMENT_DEMO
from edgevision.cli.demo_task import compress_for_demo, export_all
from edgevision.data.detection import make_detection_dataset
from edgevision.model import TrainedModel
from edgevision.segmenters import build_lraspp_segmenter, segmentation_spec
from edgevision.train_segment import letterbox_spec
from edgevision.types import Format, Precision, Task

SIZE = (64, 96)
LABELS = ["background", *(str(d) for d in range(10))]


def test_export_all_and_compress_for_demo(tmp_path, capsys):
    splits = make_detection_dataset(tmp_path / "data", counts=(24, 8, 8))
    torch.manual_seed(0)
    model = TrainedModel(module=build_lraspp_segmenter(num_classes=len(LABELS), input_size=SIZE), labels=LABELS,
                         preprocess=letterbox_spec(SIZE), architecture="lraspp_digits", name="seg", task=Task.SEGMENT,
                         segmentation=segmentation_spec())
    exported = export_all(model, tmp_path, jobs=[(Format.ONNX, Precision.FP32)], val=splits.val, noun="segmenter",
                          parity="mask parity")
    assert [b.path.name for b in exported] == ["torch-reference", "onnx-fp32"]
    assert exported[1].manifest.parity.passed and exported[1].manifest.parity.data.startswith(str(splits.val))
    quick = replace(SEGMENT_DEMO, distill_epochs=1)
    compressed = compress_for_demo(model, splits, tmp_path, task=quick, formats=[Format.ONNX, Format.OPENVINO],
                                   threads=1)
    printed = " ".join(capsys.readouterr().out.split())
    assert "prune to 60% of the MACs" in printed and "distil 1 epochs" in printed and "distilled:" in printed
    refused = [fmt for fmt in ("onnx", "openvino") if f"{fmt} INT8 refused, no bundle written" in printed]
    assert len(compressed) + len(refused) == 2  # each engine: a guarded bundle, or the guard's refusal shown
    for bundle in compressed:
        assert bundle.manifest.precision is Precision.INT8 and bundle.manifest.parity.passed
        assert "accuracy" in bundle.manifest.compression  # the mIoU guard ran through the engine
    for fmt in refused:
        assert not (tmp_path / "bundles" / f"compressed-{fmt}-int8").exists()
