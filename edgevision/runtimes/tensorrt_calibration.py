"""INT8 calibration data for TensorRT 10 (implicit quantisation of a float ONNX bundle).

`EntropyCalibrator` holds the engine-independent part: a re-iterable of preprocessed batches,
checked against the bundle's input spec, and an optional calibration cache file. `for_tensorrt`
adapts it to TensorRT's own `IInt8EntropyCalibrator2` protocol, which copies each batch into a
device buffer. TensorRT 11 removed calibration: quantise to a Q/DQ ONNX bundle there instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError, InputError

#: Where a TensorRT-calibrated INT8 bundle keeps its scales (listed in its manifest's model_files).
CALIBRATION_CACHE = "calibration.cache"


class EntropyCalibrator:
    """Preprocessed calibration batches (N×C×H×W float32, one N for all) for TensorRT's entropy calibrator.

    `batches` must be re-iterable (a list, or an object whose ``__iter__`` starts over): TensorRT
    reads it after edgevision has looked at the first batch to size the device buffer.
    `cache_file` keeps the computed scales, so a rebuild on the same data skips calibration.
    """

    def __init__(
        self,
        batches: Iterable[np.ndarray],
        *,
        input_spec: InputSpec,
        cache_file: Path | None = None,
        max_batches: int | None = None,
    ) -> None:
        if iter(batches) is batches:
            raise ConfigError(
                "Calibration batches must be re-iterable (a list, or an object whose __iter__ starts over), "
                "not a generator or iterator."
            )
        if max_batches is not None and max_batches < 1:
            raise ConfigError(f"max_batches must be 1 or more, got {max_batches}.")
        self._source = batches
        self.input_spec = input_spec
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self.max_batches = max_batches
        self._batch_shape: tuple[int, ...] | None = None

    @classmethod
    def from_cache(cls, cache_file: Path, *, input_spec: InputSpec) -> EntropyCalibrator:
        """Scales from an existing calibration cache only: no images. Should TensorRT reject the
        cache (another TensorRT wrote it), it gets no batches and the build fails instead of
        calibrating on nothing."""
        if not Path(cache_file).is_file():
            raise ConfigError(f"The calibration cache {cache_file} is missing; copy the whole bundle folder.")
        calibrator = cls((), input_spec=input_spec, cache_file=cache_file)
        calibrator._batch_shape = (1, *input_spec.shape[1:])
        return calibrator

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of every batch (the first one's), which TensorRT's calibration profile is built for."""
        if self._batch_shape is None:
            first = next(iter(self._source), None)
            if first is None:
                raise InputError("The calibration data is empty: give at least one batch.")
            self._batch_shape = self._check(np.asarray(first), 0).shape
        return self._batch_shape

    def batches(self) -> Iterator[np.ndarray]:
        """The batches as contiguous float32 arrays, each checked; stops after `max_batches`."""
        shape = self.batch_shape
        for index, raw in enumerate(self._source):  # empty for a cache-only calibrator
            if self.max_batches is not None and index >= self.max_batches:
                return
            batch = self._check(np.asarray(raw), index)
            if batch.shape != shape:
                raise InputError(
                    f"Calibration batch {index} has shape {batch.shape}, but batch 0 has {shape}: "
                    "TensorRT calibrates with one batch size; drop or pad the last batch."
                )
            yield batch

    def read_cache(self) -> bytes | None:
        if self.cache_file is not None and self.cache_file.is_file():
            return self.cache_file.read_bytes()
        return None

    def write_cache(self, data: bytes) -> None:
        if self.cache_file is not None:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            self.cache_file.write_bytes(bytes(data))

    def for_tensorrt(self, trt: Any, cuda: Any) -> Any:
        """A `trt.IInt8EntropyCalibrator2` reading these batches; call its `close()` after the build."""
        return _tensorrt_adapter(trt, cuda, self)

    def _check(self, batch: np.ndarray, index: int) -> np.ndarray:
        expected = tuple(self.input_spec.shape[1:])
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise InputError(
                f"Calibration batch {index} has shape {batch.shape}; expected (N, {', '.join(map(str, expected))}) "
                f"{self.input_spec.layout.value}, preprocessed like the bundle's input."
            )
        if not np.issubdtype(batch.dtype, np.floating):
            raise InputError(
                f"Calibration batch {index} is {batch.dtype}; pass preprocessed float32 batches "
                "(edgevision.preprocess.preprocess_batch), not raw images."
            )
        return np.ascontiguousarray(batch, dtype=np.float32)


def _tensorrt_adapter(trt: Any, cuda: Any, source: EntropyCalibrator) -> Any:
    """Build the TensorRT-side calibrator class (it must subclass a class from the tensorrt module)."""

    class _EntropyCalibrator2(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            shape = source.batch_shape
            self._batches = source.batches()
            self._buffer = cuda.malloc(int(np.prod(shape)) * np.dtype(np.float32).itemsize)

        def get_batch_size(self) -> int:
            return source.batch_shape[0]

        def get_batch(self, names: list[str]) -> list[int] | None:  # noqa: ARG002 - one input
            batch = next(self._batches, None)
            if batch is None:
                return None
            cuda.copy_to_device_sync(self._buffer, batch)
            return [int(self._buffer.ptr)]

        def read_calibration_cache(self) -> bytes | None:
            return source.read_cache()

        def write_calibration_cache(self, cache: Any) -> None:
            source.write_cache(bytes(cache))

        def close(self) -> None:
            self._buffer.free()

    return _EntropyCalibrator2()
