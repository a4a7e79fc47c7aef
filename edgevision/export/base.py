"""What every exporter returns, and the protocol it follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..types import Layout, Precision

if TYPE_CHECKING:
    from ..model import TrainedModel


@dataclass(frozen=True)
class ExportArtifact:
    """Files an exporter wrote into the bundle's temp dir, and how to feed them."""

    model_files: tuple[str, ...]  # relative to the bundle dir, main file first
    input_name: str
    output_name: str
    layout: Layout = Layout.NCHW
    dynamic_batch: bool = True
    versions: dict[str, str] = field(default_factory=dict)
    conversion: str | None = None  # the route taken, where a format has more than one (recorded in the manifest)


class Exporter(Protocol):
    """One module per format implements this; registered in `edgevision.export.EXPORTERS`."""

    precisions: ClassVar[frozenset[Precision]]

    def __call__(self, model: TrainedModel, directory: Path, *, precision: Precision) -> ExportArtifact: ...


def output_name_for(model: TrainedModel) -> str:
    """The name exporters give the model's output: what it holds, by task (the manifest's `meaning` too)."""
    from ..types import Task

    names = {Task.CLASSIFY: "logits", Task.DETECT: "boxes_scores", Task.SEGMENT: "class_scores"}
    return names[getattr(model, "task", Task.CLASSIFY)]


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
