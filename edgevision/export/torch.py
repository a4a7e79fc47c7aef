"""The torch "format": a weights-only checkpoint, run by the reference `torch` runtime."""

from __future__ import annotations

from pathlib import Path

from ..model import TrainedModel
from ..types import Precision
from .base import ExportArtifact, output_name_for, package_version

PRECISIONS = frozenset({Precision.FP32})


def export_torch(model: TrainedModel, directory: Path, *, precision: Precision) -> ExportArtifact:
    if model.architecture is None:
        from ..errors import ExportError

        raise ExportError("A torch bundle needs model.architecture so the device can rebuild the network.")
    model.save(directory / "model.pt")
    return ExportArtifact(("model.pt",), "input", output_name_for(model), versions={"torch": package_version("torch")})
