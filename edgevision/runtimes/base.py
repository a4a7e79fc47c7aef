"""The Runtime interface every engine implements, and the checks they all share.

Engines see preprocessed batches in the bundle's layout; `predict` adds the bundle's own
preprocessing so user code never re-implements it. Nothing here imports torch or an engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..bundle import Bundle, InputSpec
from ..errors import ConfigError, InputError, ModelFileError, RuntimeEngineError
from ..preprocess import preprocess_batch
from ..tasks.detect import Detections, letterboxes_for, postprocess_batch, require_detection
from ..tasks.segment import SegmentationMask, postprocess_masks, require_segmentation
from ..types import ColorOrder, Format
from .precision import EnginePrecision


@dataclass(frozen=True, kw_only=True)
class RuntimeOptions:
    """Settings every engine understands. Engines with more subclass this (see `options_type`)."""

    threads: int | None = None  # None: the engine's default

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be 1 or more, got {self.threads}.")


class Runtime(ABC):
    """Load a bundle into one engine and run it. Use as a context manager to free the engine."""

    name: ClassVar[str]
    formats: ClassVar[frozenset[Format]]
    options_type: ClassVar[type[RuntimeOptions]] = RuntimeOptions

    def __init__(self, bundle: Bundle, options: RuntimeOptions | None = None) -> None:
        options = options or self.options_type()
        if not isinstance(options, self.options_type):
            raise ConfigError(
                f"The {self.name} runtime takes {self.options_type.__name__}, got {type(options).__name__}."
            )
        if bundle.manifest.format not in self.formats:
            supported = ", ".join(sorted(f.value for f in self.formats))
            raise ConfigError(
                f"The {self.name} runtime cannot run a {bundle.manifest.format.value} bundle (it runs: {supported}). "
                f"Export to {supported} or pick a runtime for {bundle.manifest.format.value}."
            )
        self.bundle = bundle
        self.options = options
        try:
            self._load()
        except (ModelFileError, RuntimeEngineError, ConfigError):
            raise
        except ImportError:
            raise
        except Exception as exc:  # noqa: BLE001 - engines raise anything on a bad file
            raise ModelFileError(
                f"{self.name} cannot load {bundle.model_path}: {_first_line(exc)}. "
                "The file is corrupt or truncated; re-export the bundle."
            ) from exc

    # -- what each engine implements -------------------------------------------------------
    @abstractmethod
    def _load(self) -> None:
        """Create the engine session from `self.bundle` and `self.options`."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray | Sequence[np.ndarray]:
        """Run one batch (already validated, engine layout) and return every output.

        In the manifest's `outputs` order; a single array when the model has one output.
        """

    def _read_precision(self) -> EnginePrecision:
        """Read the compute precision back from the loaded engine. Engines that cannot say keep this."""
        return EnginePrecision.unknown(f"the {self.name} runtime does not report its compute precision")

    @property
    def precision_report(self) -> EnginePrecision:
        """Compute layers per precision, as the engine planned them (read once, then kept)."""
        report = getattr(self, "_precision_report", None)
        if report is None:
            report = self._read_precision()
            self._precision_report = report
        return report

    @property
    def engine_precision(self) -> str:
        """What the engine computes in, read from the engine: "int8", "int8+fp32", "fp32", "bf16"... or "unknown".

        Never the manifest's label: a file's precision is not the engine's (see `precision_report`).
        """
        return self.precision_report.summary

    @property
    def engine_config(self) -> dict[str, str | int | bool | None]:
        """The engine settings this runtime loaded the bundle with, as recorded in bench rows."""
        return {"threads": self.options.threads}

    @property
    def fixed_batch(self) -> int | None:
        """The only batch size the loaded model accepts, or None if any batch works."""
        return None if self.input_spec.dynamic_batch else self.input_spec.shape[0]

    def close(self) -> None:
        """Free engine resources (idempotent)."""

    def fork(self) -> Runtime:
        """Another handle on this bundle that a second thread can infer with at the same time.

        Close it separately. This loads the bundle again with the same options; engines whose loaded
        model serves several requests at once (OpenVINO) override it to share the model instead.
        """
        return type(self)(self.bundle, self.options)

    # -- shared behaviour -------------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self.bundle.manifest.input

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's outputs, in the order `infer_outputs` returns them (the manifest's)."""
        return tuple(spec.name for spec in self.bundle.manifest.outputs)

    def infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output, by name, for a preprocessed batch laid out as `input_spec` says."""
        batch = self._validate(batch)
        size = self.fixed_batch
        try:
            if size is None or size == len(batch):
                parts = [self._outputs(batch)]
            else:
                parts = [self._outputs(batch[i : i + size]) for i in range(0, len(batch), size)]
        except RuntimeEngineError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise RuntimeEngineError(f"{self.name} failed to run the batch: {_first_line(exc)}") from exc
        return {
            name: parts[0][k] if len(parts) == 1 else np.concatenate([part[k] for part in parts])
            for k, name in enumerate(self.output_names)
        }

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The primary output (a classifier's logits, a detector's raw head) for a preprocessed batch."""
        return self.infer_outputs(batch)[self.output_names[0]]

    def predict(self, images: Sequence[np.ndarray], *, image_order: ColorOrder = ColorOrder.BGR) -> np.ndarray:
        """The primary output for raw uint8 images (any size; BGR as OpenCV gives), via the bundle's preprocessing."""
        manifest = self.bundle.manifest
        return self.infer(preprocess_batch(images, manifest.preprocess, self.input_spec, image_order=image_order))

    def detect(
        self,
        images: Sequence[np.ndarray],
        *,
        image_order: ColorOrder = ColorOrder.BGR,
        score_threshold: float | None = None,
    ) -> list[Detections]:
        """Boxes for raw uint8 images (any size; BGR as OpenCV gives), in each image's own pixels.

        Preprocess (letterbox) → `infer_outputs` → `postprocess_batch` (decode, threshold, NMS, letterbox
        inverse). `score_threshold` None: the bundle's deployment threshold. A classify bundle raises
        ConfigError (use `predict`). To time post-processing apart, call the steps yourself (see
        `edgevision.tasks.detect`).
        """
        manifest = self.bundle.manifest
        spec = require_detection(manifest)
        batch = preprocess_batch(images, manifest.preprocess, self.input_spec, image_order=image_order)
        letterboxes = letterboxes_for(images, manifest.preprocess)
        raw = self.infer_outputs(batch)[spec.output]
        return postprocess_batch(raw, manifest, letterboxes, score_threshold=score_threshold)

    def segment(self, images: Sequence[np.ndarray], *, image_order: ColorOrder = ColorOrder.BGR) -> list[SegmentationMask]:
        """A class per pixel for raw uint8 images (any size; BGR as OpenCV gives), in each image's own pixels.

        Preprocess (letterbox) → `infer_outputs` → `postprocess_masks` (argmax, upsample, letterbox
        inverse). A classify or detect bundle raises ConfigError. To time post-processing apart, call the
        steps yourself (see `edgevision.tasks.segment`).
        """
        manifest = self.bundle.manifest
        spec = require_segmentation(manifest)
        batch = preprocess_batch(images, manifest.preprocess, self.input_spec, image_order=image_order)
        letterboxes = letterboxes_for(images, manifest.preprocess)
        return postprocess_masks(self.infer_outputs(batch)[spec.output], manifest, letterboxes)

    def _outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self._run(batch)
        arrays = [np.asarray(result)] if isinstance(result, np.ndarray) else [np.asarray(a) for a in result]
        if len(arrays) != len(self.output_names):
            raise RuntimeEngineError(
                f"{self.name} returned {len(arrays)} outputs but the manifest describes {len(self.output_names)} "
                f"({', '.join(self.output_names)}); the model file and manifest disagree: re-export the bundle."
            )
        return arrays

    def _validate(self, batch: np.ndarray) -> np.ndarray:
        spec = self.input_spec
        if not isinstance(batch, np.ndarray):
            raise InputError(f"Expected a numpy array, got {type(batch).__name__}.")
        expected = f"(N, {', '.join(str(d) for d in spec.shape[1:])}) {spec.layout.value}"
        if batch.ndim == 3 and tuple(batch.shape) == tuple(spec.shape[1:]):
            raise InputError(f"Got one sample of shape {batch.shape}; add a batch axis: batch[None] → {expected}.")
        if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(spec.shape[1:]):
            hint = ""
            if batch.ndim == 4 and tuple(batch.shape[1:]) == tuple(spec.with_layout(_other(spec)).shape[1:]):
                hint = f" It looks {_other(spec).value}; transpose it to {spec.layout.value}."
            raise InputError(f"Input shape {tuple(batch.shape)} does not match the model's {expected}.{hint}")
        if len(batch) == 0:
            raise InputError("Empty batch: pass at least one sample.")
        if batch.dtype != np.dtype(spec.dtype):
            if not np.issubdtype(batch.dtype, np.floating):
                raise InputError(
                    f"Input dtype {batch.dtype} is not {spec.dtype}: pass preprocessed floats, "
                    "or raw images through predict(images)."
                )
            batch = batch.astype(spec.dtype)
        return np.ascontiguousarray(batch)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.bundle!r}, threads={self.options.threads})"


def _other(spec: InputSpec):  # noqa: ANN202
    from ..types import Layout

    return Layout.NHWC if spec.layout is Layout.NCHW else Layout.NCHW


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
