"""Parity: does the exported bundle, run by its engine, reproduce the torch model?

Compares logits on sample inputs — real images from a data folder when given (what the
≥ 99.5 % label-agreement bar is about), else seeded random inputs — and records the result in
the manifest. A failed check is an error: a bundle that disagrees with its source never ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Bundle, ParityReport
from ..data.folder import ImageFolder
from ..preprocess import preprocess_batch
from ..types import Layout, Precision

#: Allowed max |logit difference| as a fraction of the largest |logit|, per precision.
RELATIVE_TOLERANCE = {Precision.FP32: 1e-3, Precision.FP16: 3e-2, Precision.BF16: 3e-2, Precision.INT8: None}


@dataclass(frozen=True, kw_only=True)
class ParityConfig:
    """`data`: an ImageFolder to compare on (recommended: the validation split)."""

    data: Path | None = None
    max_images: int = 1000
    random_samples: int = 16
    min_top1_agreement: float = 0.995
    relative_tolerance: float | None = None  # None: by precision (RELATIVE_TOLERANCE)
    seed: int = 0


def sample_inputs(bundle: Bundle, config: ParityConfig) -> tuple[np.ndarray, str]:
    """NCHW float32 inputs and a description of where they came from."""
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
    scale = float(np.max(np.abs(reference))) or 1.0
    rel_tol = config.relative_tolerance if config.relative_tolerance is not None else RELATIVE_TOLERANCE[precision]
    close_enough = rel_tol is None or float(diff.max()) <= rel_tol * scale
    # On random inputs near-ties may flip labels; there the logit tolerance is the criterion.
    agrees = agreement >= config.min_top1_agreement or (config.data is None and rel_tol is not None)
    return ParityReport(
        samples=len(reference), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
        top1_agreement=agreement, min_top1_agreement=config.min_top1_agreement, engine=engine,
        engine_precision=engine_precision, passed=bool(close_enough and agrees), data=data,
    )


def check_parity(module, bundle: Bundle, config: ParityConfig, *, runtime: str | None = None) -> ParityReport:  # noqa: ANN001
    """Run `bundle` through its engine and the torch `module`; compare."""
    import torch

    from ..runtimes import load_runtime

    inputs, described = sample_inputs(bundle, config)
    with torch.inference_mode():
        reference = np.concatenate([module(torch.from_numpy(chunk)).numpy() for chunk in np.array_split(inputs, max(1, len(inputs) // 64))])
    engine_inputs = inputs if bundle.manifest.input.layout is Layout.NCHW else inputs.transpose(0, 2, 3, 1).copy()
    with load_runtime(bundle, runtime) as engine:
        candidate = engine.infer(engine_inputs)
        return compare_logits(
            reference, candidate, precision=bundle.manifest.precision, config=config,
            engine=engine.name, engine_precision=engine.engine_precision, data=described,
        )


def describe_failure(report: ParityReport) -> str:
    return (
        f"top-1 agreement {report.top1_agreement:.2%} (need ≥ {report.min_top1_agreement:.2%}), "
        f"max |Δlogit| {report.max_abs_diff:.3g} on {report.data} through {report.engine} ({report.engine_precision})"
    )
