"""The model a bundle is made from, whatever framework holds it: one interface for every stage.

A `ModelSource` is a torch model (`edgevision.TrainedModel`) or an ONNX file from elsewhere
(`edgevision.compress.onnx_input.OnnxModel`). Export, the bundle writer, parity and the accuracy
guard need only what this protocol offers, so they never ask which framework they were given and
never import each other to find out. The one framework-specific act, running the original model,
is `reference_outputs`: the source's raw primary output (logits, a detector's raw head) for a
preprocessed NCHW float32 batch — the numbers every exported engine is compared against.

This is a leaf module: it imports only bundle, types, errors and preprocess (torch lazily, inside
`torch_reference_outputs`), so anything may import it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .bundle import DetectionSpec, PreprocessSpec, SegmentationSpec
from .errors import ConfigError
from .types import Task

#: Images per forward pass when running a torch module (bounds memory on a 2-core workstation).
TORCH_CHUNK = 64


@runtime_checkable
class ModelSource(Protocol):
    """What every stage after training needs of a model. TrainedModel and OnnxModel satisfy it."""

    name: str
    labels: list[str]
    preprocess: PreprocessSpec
    task: Task
    detection: DetectionSpec | None
    segmentation: SegmentationSpec | None
    notes: dict[str, str]
    architecture: str | None

    @property
    def framework(self) -> str:
        """"torch" or "onnx": recorded in the manifest's `source.framework`."""
        ...

    @property
    def num_classes(self) -> int: ...

    @property
    def input_size(self) -> tuple[int, int]: ...

    def weights_sha256(self) -> str:
        """Hash of what the bundle was made from (torch weights, or the ONNX file)."""
        ...

    def reference_outputs(self, batch_nchw: np.ndarray) -> np.ndarray:
        """The original model's raw primary output for an NCHW float32 batch (FP32, inference mode).

        Classify: logits [N, classes]; detect: the raw head; segment: per-pixel class scores [N, classes, h, w].
        """
        ...


def check_source(source: object, *, what: str) -> ModelSource:
    """`source` if it is a ModelSource, else a ConfigError naming the two kinds `what` accepts."""
    if not isinstance(source, ModelSource):
        raise ConfigError(
            f"{what} takes a TrainedModel (edgevision.TrainedModel.load) or an OnnxModel "
            f"(edgevision.compress.onnx_input.OnnxModel.open), not {type(source).__name__}."
        )
    return source


def torch_reference_outputs(module: Any, batch_nchw: np.ndarray) -> np.ndarray:
    """A torch module's primary output, in eval and inference mode, in chunks of TORCH_CHUNK images."""
    import torch

    batch = np.ascontiguousarray(batch_nchw, dtype=np.float32)
    module.eval()
    with torch.inference_mode():
        chunks = [module(torch.from_numpy(batch[i : i + TORCH_CHUNK])) for i in range(0, len(batch), TORCH_CHUNK)]
    if isinstance(chunks[0], dict):
        keys = ", ".join(map(repr, chunks[0]))
        raise ConfigError(
            f"The model returns a dict ({keys}), as torchvision's segmentation models do; edgevision exports a module "
            "whose forward returns one tensor. Wrap it: forward(x) returns model(x)['out']."
        )
    return np.concatenate([(c[0] if isinstance(c, tuple | list) else c).float().numpy() for c in chunks])


def torch_weights_sha256(module: Any) -> str:
    """Hash of a torch module's state_dict (names and bytes), the identity recorded in every bundle."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ReferenceOutputs:
    """`source.reference_outputs` remembered per image, so the guard and parity share one pass of the source.

    The source model is the slow part of both checks (a torch forward, or ONNX Runtime on the
    original file); the same validation images go through it once.
    """

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self._seen: dict[bytes, np.ndarray] = {}

    def __call__(self, batch_nchw: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch_nchw, dtype=np.float32)
        keys = [hashlib.sha1(sample.tobytes()).digest() for sample in batch]
        missing = [i for i, key in enumerate(keys) if key not in self._seen]
        if missing:
            for i, row in zip(missing, self.source.reference_outputs(batch[missing]), strict=True):
                self._seen[keys[i]] = row
        return np.stack([self._seen[key] for key in keys])


class LabelledInput:
    """`num_classes` and `input_size`, derived from `labels` and `preprocess`: every source shares them."""

    labels: list[str]
    preprocess: PreprocessSpec

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.preprocess.size)  # type: ignore[return-value]


class ModuleSource(LabelledInput):
    """A bare torch module described by an existing bundle's manifest: for callers written before sources.

    `check_parity(trained_model.module, bundle, ...)` worked before the ModelSource interface;
    this keeps it working by borrowing labels, preprocessing and task from the bundle.
    """

    framework = "torch"
    architecture: str | None = None

    def __init__(self, module: Any, *, name: str, labels: list[str], preprocess: PreprocessSpec,
                 task: Task, detection: DetectionSpec | None, segmentation: SegmentationSpec | None = None) -> None:
        self.module, self.name, self.labels, self.preprocess = module, name, labels, preprocess
        self.task, self.detection, self.segmentation, self.notes = task, detection, segmentation, {}

    def weights_sha256(self) -> str:
        return torch_weights_sha256(self.module)

    def reference_outputs(self, batch_nchw: np.ndarray) -> np.ndarray:
        return torch_reference_outputs(self.module, batch_nchw)


__all__ = ["ModelSource", "ModuleSource", "ReferenceOutputs", "check_source", "torch_reference_outputs", "torch_weights_sha256"]
