"""Exporting segmenters: the output contract checked before converting, mask parity (mIoU against the source's masks,
constant models refused as proving nothing), the numbers a failure names, and TFLite/ONNX blockers named.

Every format × precision round trip of a segment bundle is in the runtime contract (tests/runtimes/segment_contract.py);
the real LR-ASPP route (torchvision's lraspp_mobilenet_v3_large) is the slow test at the end.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevision import errors  # noqa: E402
from edgevision.export import ParityConfig, export  # noqa: E402
from edgevision.export.parity import check_parity, describe_failure  # noqa: E402
from edgevision.types import Task  # noqa: E402
from tests.runtimes.block_segmenter import block_segmenter_model, painted_mask_split  # noqa: E402
from tests.tasks.segment_bundle import build_block_segmenter  # noqa: E402


class Scores(torch.nn.Module):
    """A stand-in segmenter: `make(images)` → whatever output shape a test needs."""

    def __init__(self, make) -> None:  # noqa: ANN001
        super().__init__()
        self.make = make
        self.conv = torch.nn.Conv2d(3, 3, 1)  # a weight, so the module has a state_dict to hash

    def forward(self, images):  # noqa: ANN001, ANN202
        return self.make(images)


@pytest.fixture(scope="module")
def painted(tmp_path_factory):
    return painted_mask_split(tmp_path_factory.mktemp("painted") / "val")


@pytest.fixture(scope="module")
def onnx_bundle(painted, tmp_path_factory):
    return export(block_segmenter_model(), tmp_path_factory.mktemp("seg") / "onnx", format="onnx",
                  parity=ParityConfig(data=painted))


def test_random_inputs_when_no_data_is_given(tmp_path):
    bundle = export(block_segmenter_model(), tmp_path / "b", format="onnx", precision="fp16")
    parity = bundle.manifest.parity
    assert parity.task is Task.SEGMENT and parity.passed and parity.mask_miou >= 0.98 == parity.min_mask_miou
    assert parity.data == "seeded random images (seed 0) (16 images, source masks show 3 of 3 classes)"
    assert parity.samples == 16


def test_a_constant_segmenter_proves_nothing_and_is_refused(painted, tmp_path):
    def background_everywhere(images):  # noqa: ANN001, ANN202
        pooled = torch.nn.functional.avg_pool2d(images, 4)
        return torch.cat([pooled[:, :1] * 0 + 1.0, pooled[:, 1:] * 0], dim=1)  # class 0 wins every pixel

    constant = block_segmenter_model(Scores(background_everywhere), name="constant")
    with pytest.raises(errors.ParityError, match="parity not established: the source model gives every pixel of every "
                       r"input the same class.*mIoU 1\.0000.*proves nothing.*source masks show 1 of 3 classes"):
        export(constant, tmp_path / "constant", format="onnx", parity=ParityConfig(data=painted))
    assert not (tmp_path / "constant").exists()


def test_a_disagreeing_engine_fails_naming_mask_miou_the_bar_and_the_raw_difference(onnx_bundle, painted):
    def red_blue_swapped(images):  # noqa: ANN001, ANN202
        return build_block_segmenter()(images)[:, [0, 2, 1]]

    report = check_parity(Scores(red_blue_swapped), onnx_bundle, ParityConfig(data=painted))
    assert report.task is Task.SEGMENT and not report.passed and report.mask_classes == 3
    assert report.mask_miou == report.top1_agreement < 0.5 and report.min_mask_miou == 0.99
    message = describe_failure(report)
    assert f"mask agreement mIoU {report.mask_miou:.4f} (need ≥ 0.9900)" in message
    assert "max |Δ class score|" in message and "through onnxruntime" in message and str(painted) in message
    lenient = check_parity(Scores(red_blue_swapped), onnx_bundle, ParityConfig(data=painted, min_mask_miou=0.3))
    assert lenient.passed and lenient.min_mask_miou == 0.3  # the bar is the caller's to set


def test_parity_data_with_other_labels_fails_before_any_work(painted, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(painted, other)
    (other / "labels.txt").write_text("background\nblue\nred\n")
    with pytest.raises(errors.DataError, match=r"lists \['background', 'blue', 'red'\]: in a different order than "
                       r"the model's labels \['background', 'red', 'blue'\]"):
        export(block_segmenter_model(), tmp_path / "b", format="onnx", parity=ParityConfig(data=other))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("make", "message"), [
    (lambda x: {"out": build_block_segmenter()(x), "aux": x}, r"returns a dict \('out', 'aux'\).*model\(x\)\['out'\]"),
    (lambda x: build_block_segmenter()(x).permute(0, 2, 3, 1), r"\(1, 16, 16, 3\) for one image: channels last"),
    (lambda x: build_block_segmenter()(x)[:, :2], r"\(1, 2, 16, 16\) \(2 classes\).*Check the labels"),
    (lambda x: build_block_segmenter()(x)[..., :15, :], "not the model input 64×64 divided by one whole stride"),
    (lambda x: build_block_segmenter()(x).argmax(1), r"looks like class ids \(an argmax inside the graph\)"),
    (lambda x: build_block_segmenter()(x).mean((2, 3)), "looks like a classifier's logits"),
])
def test_an_output_that_breaks_the_contract_fails_in_one_line_before_converting(make, message, tmp_path):
    model = block_segmenter_model(Scores(make), name="odd")
    with pytest.raises(errors.ConfigError, match=message) as raised:
        export(model, tmp_path / "b", format="onnx")
    assert "\n" not in str(raised.value) and not (tmp_path / "b").exists()


def test_onnx_names_adaptive_pooling_that_cannot_export_and_how_to_fix_it(tmp_path):
    pool = torch.nn.AdaptiveAvgPool2d(3)  # 16×16 features do not divide into 3×3

    def psp_like(images):  # noqa: ANN001, ANN202
        scores = build_block_segmenter()(images)
        return scores + torch.nn.functional.interpolate(pool(scores), size=scores.shape[-2:], mode="bilinear")

    with pytest.raises(errors.ExportError, match=r"adaptive_avg_pool2d, output size that are not factor of input size\. "
                       "Adaptive pooling .* exports when its output size divides the feature map"):
        export(block_segmenter_model(Scores(psp_like)), tmp_path / "b", format="onnx")


def test_tflite_conversion_errors_name_segmentation_blockers_and_what_to_use_instead():
    from edgevision.export.tflite import _conversion_error

    lowering = RuntimeError("Lowering not found: aten._upsample_bilinear2d_aa.default\n\nWhile executing ...")
    message = str(_conversion_error(lowering))
    assert "operator(s) aten._upsample_bilinear2d_aa.default to TFLite" in message and "drop antialias" in message
    assert "\n" not in message
    plain = str(_conversion_error(RuntimeError("Lowering not found: aten.erfinv.default")))
    assert "Instead of" not in plain and "aten.erfinv.default" in plain


@pytest.mark.slow  # litert-torch's import and lowering: ~20 s here
def test_tflite_names_the_operator_it_cannot_convert_and_what_to_use(tmp_path):
    pytest.importorskip("litert_torch")
    pool = torch.nn.AdaptiveMaxPool2d(3)

    def max_pooled_context(images):  # noqa: ANN001, ANN202
        scores = build_block_segmenter()(images)
        return scores + torch.nn.functional.interpolate(pool(scores), size=scores.shape[-2:], mode="nearest")

    with pytest.raises(errors.ExportError, match=r"operator\(s\) aten\.adaptive_max_pool2d\.default to TFLite\. "
                       r"Instead of nn\.AdaptiveMaxPool2d: .* use nn\.MaxPool2d"):
        export(block_segmenter_model(Scores(max_pooled_context)), tmp_path / "b", format="tflite")
    assert not (tmp_path / "b").exists()


def test_a_torch_bundle_keeps_the_task_and_runs_through_the_reference_runtime(painted, tmp_path):
    from edgevision.data.masks import MaskFolder
    from edgevision.runtimes import load_runtime

    bundle = export(block_segmenter_model(), tmp_path / "torch", format="torch", parity=ParityConfig(data=painted))
    assert bundle.manifest.segmentation.output == "class_scores" and bundle.manifest.parity.mask_miou == 1.0
    folder = MaskFolder.open(painted)
    with load_runtime(bundle) as engine:
        (mask,) = engine.segment([folder.image(0)])
    assert np.array_equal(mask.class_ids, folder.mask(0))


# -- the real route: torchvision's LR-ASPP (MobileNetV3-Large) ---------------------------------------------------------
def lraspp_model(calibration_images, *, size=(96, 128), classes: int = 11):  # noqa: ANN001
    """lraspp_mobilenet_v3_large, seeded random weights, returning out["out"] (the contract), made non-constant.

    As built, its random classifier biases outweigh the features and every pixel is one class (parity would not be
    established); with the biases zeroed and BatchNorm statistics taken from real images it draws every class with
    realistic margins, which is what parity needs to exercise.
    """
    from edgevision._compat.torchvision_ops import ensure_torchvision_importable
    from edgevision.bundle import InputSpec, PreprocessSpec, SegmentationSpec
    from edgevision.model import TrainedModel
    from edgevision.preprocess import preprocess_batch
    from edgevision.types import ResizePolicy

    ensure_torchvision_importable()
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    class Out(torch.nn.Module):
        def __init__(self, network) -> None:  # noqa: ANN001
            super().__init__()
            self.network = network

        def forward(self, images):  # noqa: ANN001, ANN202
            return self.network(images)["out"]

    torch.manual_seed(0)
    network = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=classes)
    preprocess = PreprocessSpec(size=size, resize=ResizePolicy.LETTERBOX, stride=32, pad_value=0.0)
    batch = preprocess_batch(calibration_images, preprocess, InputSpec(name="input", shape=(-1, 3, *size)))
    for head in (network.classifier.low_classifier, network.classifier.high_classifier):
        torch.nn.init.zeros_(head.bias)
    for layer in network.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over the one pass
    network.train()
    with torch.no_grad():
        network(torch.from_numpy(batch))
    return TrainedModel(module=Out(network.eval()), labels=[f"c{k}" for k in range(classes)], preprocess=preprocess,
                        name="lraspp", task=Task.SEGMENT, segmentation=SegmentationSpec(output="class_scores"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_lraspp_exports_to_every_format_in_fp32_and_fp16_with_mask_parity(fmt, tmp_path):
    pytest.importorskip({"onnx": "onnx", "openvino": "openvino", "tflite": "litert_torch"}[fmt])
    from edgevision.data.detection import SEGMENTATION_LABELS, make_detection_dataset
    from edgevision.data.masks import MaskFolder

    data = make_detection_dataset(tmp_path / "data", counts=(2, 24, 2), image_size=(96, 128), object_height=(16, 40))
    folder = MaskFolder.open(data.val)
    model = lraspp_model([folder.image(i) for i in range(16)], classes=len(SEGMENTATION_LABELS))
    model.labels = list(SEGMENTATION_LABELS)
    for precision in ("fp32", "fp16"):
        bundle = export(model, tmp_path / f"{fmt}-{precision}", format=fmt, precision=precision,
                        parity=ParityConfig(data=data.val))
        parity = bundle.manifest.parity
        assert bundle.manifest.outputs[0].shape == (-1, len(SEGMENTATION_LABELS), 96, 128)
        assert parity.passed and parity.mask_miou >= parity.min_mask_miou and parity.mask_classes >= 8, parity
