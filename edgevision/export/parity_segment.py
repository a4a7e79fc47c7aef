"""Segmentation parity: the export's masks against the source model's, at the model input's resolution.

Both raw outputs become class ids the same way (`edgevision.tasks.segment.model_input_ids`: argmax, then
nearest upsampling of a strided output) at the model input's resolution, where every engine's pixels line
up one to one; mapping both to the original frame would only resample them alike. Agreement is the mIoU
of the export's masks with the source's as ground truth (`edgevision.metrics.segmentation.agreement_miou`,
accumulated one batch at a time), over the classes either side shows; max and mean |Δ| of the raw scores
are recorded beside it. Below the bar for the engine's precision (`MIN_MASK_MIOU`) the bundle fails.

A source whose masks hold one class everywhere, over every input (an untrained or collapsed model, or
inputs that show none of its classes), proves nothing: any export that also answers "background" agrees
perfectly. Such a parity is reported as not established (passed False, `mask_classes` 1) and the error
says why.

The report's `top1_agreement` / `min_top1_agreement` carry the same mIoU and bar as `mask_miou` /
`min_mask_miou`, so `passed` reads the same way for every task.

The source runs batch by batch beside the engine and its raw scores are dropped after each batch: the
shared `ReferenceOutputs` cache would hold every image's classes × h × w floats (gigabytes over a
validation split), and no accuracy guard shares them for this task.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bundle import Bundle, ParityReport
from ..errors import ParityError
from ..preprocess import preprocess_batch
from ..source import ModelSource, ReferenceOutputs
from ..types import Layout, Precision, Task
from .parity import ParityConfig, ParityRule, engine_inputs

if TYPE_CHECKING:
    from ..data.masks import MaskFolder

#: Least agreement mIoU (export vs source masks) per engine precision. FP32/FP16 as detection's mAP50 bars. INT8's is
#: measured on the demo segmenter (val images, 300 calibration images): OpenVINO INT8 agreed at 0.845–0.886 and ONNX
#: Runtime at 0.916–0.931, while their test mIoU against the labels moved by only 0.2–0.6 pt (docs/benchmarks.md). The
#: digits' strokes are 2–4 px wide, so INT8's boundary flips weigh a lot in an mIoU over eleven classes; 0.80 passes
#: those. The accuracy guard (mIoU against the labels, `max_accuracy_drop`) is what judges INT8's accuracy; this bar
#: only says the engine computes the same masks (a broken TFLite INT8 graph agreed at 0.10).
MIN_MASK_MIOU = {Precision.FP32: 0.99, Precision.FP16: 0.98, Precision.BF16: 0.98, Precision.INT8: 0.80}
#: Images per engine call: a segmenter's output is classes × h × w floats per image (21 × 520 × 520 ≈ 23 MB).
PARITY_BATCH = 8
#: Without data, each random image is a field of random colours on a grid of this many input pixels, smoothly
#: interpolated (see `random_images`).
RANDOM_CELL = 16


def segmentation_batches(bundle: Bundle, config: ParityConfig) -> tuple[str, int, Iterator[np.ndarray]]:
    """Where the samples come from, how many, and batches of NCHW float32 inputs.

    With `config.data` (a mask split): up to `max_images` of its images (masks unused: parity compares two
    models, not a model with the truth), a seeded subset when there are more. Without: `random_samples`
    seeded random images (`random_images`) through the bundle's own preprocessing.
    """
    manifest = bundle.manifest
    nchw = manifest.input.with_layout(Layout.NCHW)
    if config.data is None:
        generated = random_images(config.random_samples, (nchw.height, nchw.width), seed=config.seed)
        origin, count, image = f"seeded random images (seed {config.seed})", len(generated), generated.__getitem__
    else:
        folder = open_mask_split(Path(config.data), manifest.labels).subset(config.max_images, seed=config.seed)
        origin, count, image = str(config.data), len(folder), folder.image

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, count, PARITY_BATCH):
            images = [image(i) for i in range(start, min(start + PARITY_BATCH, count))]
            yield preprocess_batch(images, manifest.preprocess, nchw)

    return origin, count, batches()


def _segment_parity(
    source: ModelSource,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision,
    runtime: str | None,
    options: Any,
    reference: ReferenceOutputs,
) -> ParityReport:
    from ..metrics.segmentation import ConfusionMatrix
    from ..runtimes import load_runtime
    from ..tasks.segment import model_input_ids, require_segmentation

    manifest = bundle.manifest
    spec = require_segmentation(manifest)
    classes, size = manifest.num_classes, tuple(manifest.preprocess.size)
    origin, count, batches = segmentation_batches(bundle, config)
    agreement = ConfusionMatrix(classes, ignore_index=None)  # agreement_miou's matrix: the source's masks as truth
    source_pixels = np.zeros(classes, dtype=np.int64)
    max_diff = sum_diff = 0.0
    values = 0
    with load_runtime(bundle, runtime, options=options) as engine:
        for inputs in batches:
            expected = source.reference_outputs(inputs)
            candidate = engine.infer_outputs(engine_inputs(bundle, inputs))[spec.output]
            if candidate.shape != expected.shape:
                raise ParityError(
                    f"{engine.name} returned class scores of shape {candidate.shape}, the source {expected.shape}: "
                    "the exported graph is not the source's. Re-export the bundle."
                )
            diff = np.abs(expected.astype(np.float32) - candidate.astype(np.float32))
            max_diff, sum_diff = max(max_diff, float(diff.max())), sum_diff + float(diff.sum(dtype=np.float64))
            values += diff.size
            for want, got in zip(expected, candidate, strict=True):
                truth = model_input_ids(want, spec, size, classes)
                agreement.update(model_input_ids(got, spec, size, classes), truth)
                source_pixels += np.bincount(truth.reshape(-1), minlength=classes)[:classes]
        engine_name, engine_precision = engine.name, engine.engine_precision
    miou = agreement.metrics().miou
    shown = int(np.count_nonzero(source_pixels))
    bar = config.min_mask_miou if config.min_mask_miou is not None else MIN_MASK_MIOU[precision]
    return ParityReport(
        samples=count, max_abs_diff=max_diff, mean_abs_diff=sum_diff / values, top1_agreement=miou,
        min_top1_agreement=bar, engine=engine_name, engine_precision=engine_precision,
        passed=bool(shown > 1 and miou >= bar), task=Task.SEGMENT, mask_miou=miou, min_mask_miou=bar,
        mask_classes=shown, data=f"{origin} ({count} images, source masks show {shown} of {classes} classes)",
    )


def random_images(count: int, size: tuple[int, int], *, seed: int) -> list[np.ndarray]:
    """`count` BGR uint8 images of `size` (h, w): random colours on a RANDOM_CELL-pixel grid, bilinearly smoothed.

    Not per-pixel noise: a network normalised on photographs meets iid noise far outside its activation range,
    where FP16 weight rounding flips many more pixels than on any real image. Measured on LR-ASPP (MobileNetV3,
    96×128, 11 classes, FP16 weights): mask agreement 0.974 on standard-normal inputs, 0.951 on uint8 noise,
    0.993 on these images and 0.993 on the data set's own validation images.
    """
    from .._optional import opencv

    cv2 = opencv()
    height, width = size
    grid = (max(2, round(width / RANDOM_CELL)), max(2, round(height / RANDOM_CELL)))  # OpenCV's (w, h)
    rng = np.random.default_rng(seed)
    return [
        cv2.resize(rng.integers(0, 256, (grid[1], grid[0], 3), dtype=np.uint8), (width, height),
                   interpolation=cv2.INTER_LINEAR)
        for _ in range(count)
    ]


def _describe_segment_failure(report: ParityReport) -> str:
    where = f"on {report.data} through {report.engine} ({report.engine_precision})"
    if report.mask_classes is not None and report.mask_classes <= 1:
        return (
            f"parity not established: the source model gives every pixel of every input the same class, so the "
            f"export's agreement (mIoU {report.mask_miou:.4f}) proves nothing, {where}. A constant model is untrained "
            "or collapsed; if it is not, check parity on images that show its classes (ParityConfig(data=<a mask split>))"
        )
    return (
        f"mask agreement mIoU {report.mask_miou:.4f} (need ≥ {report.min_mask_miou:.4f}), "
        f"max |Δ class score| {report.max_abs_diff:.3g} {where}"
    )


def open_mask_split(data: Path, labels: Sequence[str]) -> MaskFolder:
    """The mask split at `data`; its labels.txt must list the model's labels in order (it is the model's data)."""
    from ..data.masks import MaskFolder

    return MaskFolder.open(data, labels=labels)


SEGMENT_RULE = ParityRule(check=_segment_parity, open_data=open_mask_split, describe_failure=_describe_segment_failure)

__all__ = ["MIN_MASK_MIOU", "PARITY_BATCH", "RANDOM_CELL", "SEGMENT_RULE", "open_mask_split", "random_images",
           "segmentation_batches"]
