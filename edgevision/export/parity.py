"""Parity: does the exported bundle, run by its engine, reproduce the model it was made from?

One entry point, `check_parity`, for every task and every source (a torch model or an ONNX
file, see `edgevision.source`). It dispatches on the bundle's task to a rule in `PARITY_RULES`:

- classify (here): logits within a tolerance per precision, relative to the largest |logit|, and
  top-1 agreement on real images from an image folder when given (the ≥ 99.5 % bar), else on seeded
  random inputs;
- detect (`parity_detect`): the export's detections scored as mAP50 against the source's, on
  the validation split, plus max |Δ| of the raw outputs;
- segment (`parity_segment`): the export's masks scored as mIoU against the source's, at the
  model input's resolution, on a mask split's images, plus max |Δ| of the raw scores.

A parity whose source outputs do not vary over the inputs proves nothing (a random-init ViT's zeroed
classifier gives 0 for every logit of every input, and any export "matches" it): every rule reports such
a check as not established (passed False, with the reason) rather than as a pass.

A new task adds one rule (a module with a `ParityRule`) and one `PARITY_RULES.register` line.
The result is recorded in the manifest; a failed check is an error: a bundle that disagrees
with its source never ships.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle, ParityReport
from ..data.folder import ImageFolder
from ..preprocess import preprocess_batch
from ..registry import Registry
from ..source import ModelSource, ModuleSource, ReferenceOutputs
from ..types import Layout, Precision, Task

#: Allowed max |logit difference| as a fraction of the largest |logit|, per precision.
RELATIVE_TOLERANCE = {Precision.FP32: 1e-3, Precision.FP16: 3e-2, Precision.BF16: 3e-2, Precision.INT8: None}
#: Least range of some logit over the parity inputs, as a fraction of the largest |logit|, for the
#: outputs to count as varying: below it the source answers (nearly) the same for every input.
MIN_OUTPUT_SPREAD = 1e-3


@dataclass(frozen=True, kw_only=True)
class ParityConfig:
    """What to compare on and how strictly.

    `data`: the validation split — an ImageFolder for classifiers, a COCO split directory
    (``images/`` + ``annotations.json``) for detectors, a mask split (``images/`` + ``masks/`` +
    ``labels.txt``, only its images are used) for segmenters. Without it, seeded random inputs.
    `min_detection_map50` / `min_mask_miou` None: by precision (`parity_detect.MIN_DETECTION_MAP50`,
    `parity_segment.MIN_MASK_MIOU`).
    """

    data: Path | None = None
    max_images: int = 1000
    random_samples: int = 16
    min_top1_agreement: float = 0.995
    relative_tolerance: float | None = None  # None: by precision (RELATIVE_TOLERANCE)
    min_detection_map50: float | None = None
    min_mask_miou: float | None = None
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class ParityRule:
    """How one task's bundles are compared with their source."""

    #: (source, bundle, config, *, precision, runtime, options, reference) -> ParityReport
    check: Callable[..., ParityReport]
    #: Open `config.data` for the given labels, so a bad folder fails before anything is exported.
    open_data: Callable[[Path, Sequence[str]], object]
    #: One clause for the ParityError: the numbers that failed and where they were measured.
    describe_failure: Callable[[ParityReport], str]


#: The default configuration (seeded random inputs), shared as a value: ParityConfig is frozen.
DEFAULT_PARITY = ParityConfig()

PARITY_RULES: Registry[ParityRule] = Registry("parity rule")
PARITY_RULES.register(Task.CLASSIFY.value, "edgevision.export.parity:CLASSIFY_RULE")
PARITY_RULES.register(Task.DETECT.value, "edgevision.export.parity_detect:DETECT_RULE")
PARITY_RULES.register(Task.SEGMENT.value, "edgevision.export.parity_segment:SEGMENT_RULE")


def check_parity(
    source: ModelSource | Any,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision | None = None,
    runtime: str | None = None,
    options: Any = None,
    reference: ReferenceOutputs | None = None,
) -> ParityReport:
    """Run `bundle` through its engine and `source` on the same inputs; compare by the bundle's task's rule.

    `precision` is what the engine computes in (default: the bundle's; an fp32 ONNX file built
    into an int8 TensorRT engine is compared as int8). `runtime`/`options` pick and configure the
    engine. `reference` shares the source's outputs with the accuracy guard. A bare torch module
    (the pre-ModelSource call) is described by the bundle's manifest.
    """
    if not isinstance(source, ModelSource):
        source = _module_source(source, bundle)
    manifest = bundle.manifest
    rule = parity_rule(manifest.task)
    return rule.check(
        source, bundle, config, precision=precision or manifest.precision, runtime=runtime, options=options,
        reference=reference or ReferenceOutputs(source),
    )


def parity_rule(task: Task) -> ParityRule:
    return PARITY_RULES.get(Task(task).value)


def open_parity_data(config: ParityConfig, *, task: Task, labels: Sequence[str]) -> None:
    """Open `config.data` as the task's rule will: a missing or broken folder fails before any export work."""
    if config.data is not None:
        parity_rule(task).open_data(Path(config.data), labels)


def describe_failure(report: ParityReport) -> str:
    return parity_rule(report.task).describe_failure(report)


def engine_inputs(bundle: Bundle, inputs_nchw: np.ndarray) -> np.ndarray:
    """NCHW float32 samples in the layout the bundle's engine takes (TFLite: NHWC)."""
    if bundle.manifest.input.layout is Layout.NCHW:
        return inputs_nchw
    return np.ascontiguousarray(inputs_nchw.transpose(0, 2, 3, 1))


# -- classify ---------------------------------------------------------------------------------
def sample_inputs(bundle: Bundle, config: ParityConfig) -> tuple[np.ndarray, str]:
    """NCHW float32 inputs and a description of where they came from (classification)."""
    manifest = bundle.manifest
    nchw = manifest.input.with_layout(Layout.NCHW)
    if config.data is not None:
        folder = ImageFolder.open(config.data, labels=manifest.labels).subset(config.max_images, seed=config.seed)
        images = [image for image, _ in folder]
        return preprocess_batch(images, manifest.preprocess, nchw), f"{config.data} ({len(images)} images)"
    rng = np.random.default_rng(config.seed)
    shape = (config.random_samples, *nchw.shape[1:])
    return rng.standard_normal(shape, dtype=np.float32), f"random ({config.random_samples} samples)"


def compare_logits(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    precision: Precision,
    config: ParityConfig,
    engine: str,
    engine_precision: str,
    data: str,
) -> ParityReport:
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agreement = float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    spread = output_spread(reference)
    scale = float(np.max(np.abs(reference)))
    rel_tol = config.relative_tolerance if config.relative_tolerance is not None else RELATIVE_TOLERANCE[precision]
    close_enough = rel_tol is None or float(diff.max()) <= rel_tol * scale
    # On random inputs near-ties may flip labels; there the logit tolerance is the criterion.
    agrees = agreement >= config.min_top1_agreement or (config.data is None and rel_tol is not None)
    classes = len(np.unique(reference.argmax(1)))
    # without a logit tolerance (INT8) top-1 agreement is the whole check: one class for every input proves nothing
    established = spread >= MIN_OUTPUT_SPREAD and (rel_tol is not None or classes > 1)
    return ParityReport(
        samples=len(reference), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
        top1_agreement=agreement, min_top1_agreement=config.min_top1_agreement, engine=engine,
        engine_precision=engine_precision, passed=bool(established and close_enough and agrees),
        data=data, task=Task.CLASSIFY, output_spread=spread, source_classes=classes, relative_tolerance=rel_tol,
    )


def output_spread(reference: np.ndarray) -> float:
    """How far the source's outputs move over the inputs: the largest range of one output value, over the largest |value|.

    0 when every input gets the same outputs (one input, or a constant model such as a random-init
    classifier whose last layer starts at zero).
    """
    values = reference.reshape(len(reference), -1).astype(np.float64)
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    if len(values) < 2 or scale == 0.0:
        return 0.0
    return float(np.ptp(values, axis=0).max()) / scale


def _classify_parity(
    source: ModelSource,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision,
    runtime: str | None,
    options: Any,
    reference: ReferenceOutputs,
) -> ParityReport:
    from ..runtimes import load_runtime

    inputs, described = sample_inputs(bundle, config)
    expected = reference(inputs)
    with load_runtime(bundle, runtime, options=options) as engine:
        return compare_logits(
            expected, engine.infer(engine_inputs(bundle, inputs)), precision=precision, config=config,
            engine=engine.name, engine_precision=engine.engine_precision, data=described,
        )


def _describe_classify_failure(report: ParityReport) -> str:
    if report.output_spread is not None and report.output_spread < MIN_OUTPUT_SPREAD:
        return (
            f"parity not established: the source model's logits do not vary over the {report.samples} parity inputs "
            f"(largest range {report.output_spread:.2g} of the largest |logit|, need ≥ {MIN_OUTPUT_SPREAD:g}), so any "
            f"export matches them ({report.data}, {report.engine}). A random-init model whose classifier starts at zero "
            "(torchvision's ViT) answers 0 for everything: train it, or initialise its last layer; with a trained "
            "model, check parity on real images (ParityConfig(data=<an image folder>))"
        )
    if report.source_classes == 1 and report.relative_tolerance is None:
        return (
            f"parity not established: the source model predicts the same class for all {report.samples} parity inputs "
            f"({report.data}, {report.engine}, {report.engine_precision}), and at INT8 top-1 agreement is the only "
            "check, so any export that predicts that class agrees. Train the model until its predictions vary, or "
            "check parity on images of more than one class (ParityConfig(data=<an image folder>))"
        )
    return (
        f"top-1 agreement {report.top1_agreement:.2%} (need ≥ {report.min_top1_agreement:.2%}), "
        f"max |Δlogit| {report.max_abs_diff:.3g} on {report.data} through {report.engine} ({report.engine_precision})"
    )


CLASSIFY_RULE = ParityRule(
    check=_classify_parity,
    open_data=lambda data, labels: ImageFolder.open(data, labels=list(labels)),
    describe_failure=_describe_classify_failure,
)


def _module_source(module: Any, bundle: Bundle) -> ModelSource:
    manifest = bundle.manifest
    return ModuleSource(
        module, name=manifest.name, labels=list(manifest.labels), preprocess=manifest.preprocess,
        task=manifest.task, detection=manifest.detection, segmentation=manifest.segmentation,
    )


__all__ = [
    "DEFAULT_PARITY", "MIN_OUTPUT_SPREAD", "PARITY_RULES", "RELATIVE_TOLERANCE", "ParityConfig", "ParityRule", "check_parity", "compare_logits",
    "describe_failure", "open_parity_data", "output_spread", "sample_inputs",
]
