"""ONNX in, task segment: a semantic segmenter exported to ONNX elsewhere (built here from the block segmenter),
opened with its output checked, converted to FP32/FP16 ONNX and OpenVINO bundles with mask parity, and through
`edgevision compress model.onnx --task segment` to bundles, a bench with mIoU and a report; bad inputs in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevision import errors  # noqa: E402
from edgevision.bundle import Bundle, PreprocessSpec  # noqa: E402
from edgevision.cli import app  # noqa: E402
from edgevision.compress.onnx_input import OnnxModel, export_onnx_model  # noqa: E402
from edgevision.export import ParityConfig  # noqa: E402
from edgevision.types import Format, Precision, ResizePolicy, Task  # noqa: E402
from tests.runtimes.block_segmenter import painted_mask_split  # noqa: E402
from tests.tasks.segment_bundle import LABELS, SIZE, build_block_segmenter  # noqa: E402

runner = CliRunner()
#: The block segmenter's preprocessing: letterbox, 0..1 pixels, no mean/std.
SPEC = PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def segmenter_onnx(path: Path, *, dynamic_hw: bool = False, module=None) -> Path:  # noqa: ANN001
    """The block segmenter (or `module`) as another framework would hand it over: an ONNX file, batch dynamic."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    torch.onnx.export(
        (module or build_block_segmenter()).eval(), (torch.zeros(1, 3, SIZE, SIZE),), str(path), dynamo=False,
        opset_version=17, input_names=["pixel_values"], output_names=["logits"],
        dynamic_axes={"pixel_values": axes, "logits": {0: "batch"}},
    )
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("masks")
    painted_mask_split(root / "val", seed=0)
    painted_mask_split(root / "test", seed=1)
    return root


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    return segmenter_onnx(tmp_path_factory.mktemp("onnx") / "segmenter.onnx")


def test_open_checks_the_scores_and_points_the_decoding_at_the_graphs_output(onnx_file):
    model = OnnxModel.open(onnx_file, labels=LABELS, preprocess=SPEC, task=Task.SEGMENT)
    assert model.task is Task.SEGMENT and model.detection is None
    assert model.segmentation.output == "logits" == model.output_name and model.segmentation.background_class == 0
    assert "per-pixel class scores (1, 3, 16, 16)" in model.notes["segmentation"]
    assert "'background' (class 0)" in model.notes["segmentation"]
    no_background = OnnxModel.open(onnx_file, labels=("sky", "red", "blue"), preprocess=SPEC, task="segment")
    assert no_background.segmentation.background_class is None


@pytest.mark.parametrize(("fmt", "precision"), [("onnx", "fp32"), ("onnx", "fp16"), ("openvino", "fp32")])
def test_a_segment_bundle_made_from_onnx_passes_mask_parity_and_segments_frames(onnx_file, data, fmt, precision,
                                                                                  tmp_path):
    from edgevision.data.masks import MaskFolder
    from edgevision.runtimes import load_runtime

    model = OnnxModel.open(onnx_file, labels=LABELS, preprocess=SPEC, task=Task.SEGMENT)
    bundle = export_onnx_model(model, tmp_path / "b", format=fmt, precision=precision,
                               parity=ParityConfig(data=data / "val"))
    manifest = Bundle.load(bundle.path).manifest
    assert manifest.task is Task.SEGMENT and manifest.format is Format(fmt) and manifest.precision is Precision(precision)
    assert manifest.source.framework == "onnx" and manifest.outputs[0].shape == (-1, 3, 16, 16)
    assert manifest.segmentation.output == manifest.outputs[0].name and manifest.outputs[0].meaning == "class_scores"
    parity = manifest.parity
    assert parity.task is Task.SEGMENT and parity.passed and parity.mask_miou == 1.0 and parity.mask_classes == 3
    folder = MaskFolder.open(data / "test")
    with load_runtime(bundle) as engine:
        masks = engine.segment([folder.image(i) for i in range(len(folder))])
    assert all(np.array_equal(mask.class_ids, folder.mask(i)) for i, mask in enumerate(masks))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, r"as a segmenter needs preprocess=PreprocessSpec\(size=..., resize=ResizePolicy.LETTERBOX"),
    ({"preprocess": SPEC.model_copy(update={"resize": ResizePolicy.RESIZE})}, "through a letterbox.*given resize resize"),
    ({"preprocess": SPEC, "labels": ("background", "red")}, r"\(1, 3, 16, 16\) \(3 classes\) for one image"),
])
def test_open_refuses_what_cannot_segment_in_one_line(onnx_file, kwargs, message):
    with pytest.raises(errors.ConfigError, match=message) as raised:
        OnnxModel.open(onnx_file, task=Task.SEGMENT, **{"labels": LABELS, **kwargs})
    assert "\n" not in str(raised.value)


def test_a_classifier_opened_as_a_segmenter_says_what_it_looks_like(tmp_path):
    class Pooled(torch.nn.Module):
        def forward(self, images):  # noqa: ANN001, ANN202
            return build_block_segmenter()(images).mean((2, 3))

    path = segmenter_onnx(tmp_path / "classifier.onnx", module=Pooled())
    with pytest.raises(errors.ConfigError, match="looks like a classifier's logits.*Use task classify"):
        OnnxModel.open(path, labels=LABELS, preprocess=SPEC, task=Task.SEGMENT)


def test_compress_task_segment_writes_checked_bundles_a_bench_with_miou_and_a_report(data, tmp_path):
    dynamic = segmenter_onnx(tmp_path / "dynamic.onnx", dynamic_hw=True)
    labels = tmp_path / "classes.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["compress", str(dynamic), "--task", "segment", "--data", str(data), "--labels",
                                 str(labels), "--size", str(SIZE), "--mean", "0,0,0", "--std", "1,1,1", "--export",
                                 "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["bench", "onnx-fp16", "onnx-fp32"]
    for name in ("onnx-fp32", "onnx-fp16"):
        manifest = Bundle.load(out / name).manifest
        assert manifest.task is Task.SEGMENT and manifest.labels == LABELS and manifest.preprocess.pad_value == 114
        assert manifest.parity.passed and manifest.parity.mask_miou == 1.0 and str(data / "val") in manifest.parity.data
        assert "dynamic height/width fixed to 64×64" in manifest.compression["input"]
    assert "mask parity mIoU 1.0000" in result.output
    bench = json.loads((out / "bench" / "bench.json").read_text())
    for row in bench["rows"]:
        assert (row["metric"], row["accuracy"], row["accuracy_split"]) == ("mIoU", 1.0, "test")
        assert row["metrics"] == {"pixel_accuracy": 1.0} and row["accuracy_images"] == 6
    report = json.loads((out / "compress_report.json").read_text())
    assert report["task"] == "segment" and report["segmentation"]["background_class"] == 0
    assert [row["parity_mask_miou"] for row in report["bundles"]] == [1.0, 1.0]
    assert "given by the caller" in report["notes"]["labels"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--quantize", "int8"], "--quantize int8 is not available for a segmenter yet"),
    (["--resize", "resize"], "--resize resize cannot map a segmenter's masks back"),
    (["--labels", "a,b"], r"\(1, 3, 16, 16\) \(3 classes\)"),
])
def test_compress_task_segment_refuses_bad_requests_before_writing(onnx_file, data, tmp_path, extra, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compress", str(onnx_file), "--task", "segment", "--data", str(data), "--mean",
                                 "0,0,0", "--std", "1,1,1", "-o", str(out), *extra])
    assert isinstance(result.exception, errors.EdgeVisionError), result.output
    assert re.search(message, str(result.exception)) and "\n" not in str(result.exception)
    assert not out.exists()


def test_compress_task_segment_needs_mask_splits(onnx_file, tmp_path):
    (tmp_path / "data" / "val" / "images").mkdir(parents=True)
    result = runner.invoke(app, ["compress", str(onnx_file), "--task", "segment", "--data", str(tmp_path / "data"),
                                 "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, errors.DataError), result.output
    assert "a segmenter needs a mask split val/" in str(result.exception)
    assert not (tmp_path / "out").exists()
