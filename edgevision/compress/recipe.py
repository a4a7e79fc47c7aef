"""Compression recipes: a YAML file listing the stages and their settings, validated by pydantic.

Errors name the file, the line and the key (``recipe.yaml:7: stages[0].prune.importance: ...``),
so a typo is fixed in one look. The same Recipe can be built in Python and run by `Pipeline`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, did_you_mean
from ..types import Format, Precision
from .distill import DistillConfig
from .prune import PruneConfig, PruneImportance


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PruneStage(_Section):
    target_macs_ratio: float | None = Field(default=None, gt=0, lt=1)
    channel_ratio: float | None = Field(default=None, gt=0, lt=1)
    importance: PruneImportance = PruneImportance.L2
    ignored_layers: tuple[str, ...] = ()
    steps: int = Field(default=1, ge=1)
    finetune_epochs_per_step: int = Field(default=0, ge=0)
    round_to: int | None = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _valid_config(self) -> PruneStage:
        try:
            self.to_config()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_config(self) -> PruneConfig:
        return PruneConfig(**self.model_dump())


class DistillStage(_Section):
    epochs: int = Field(default=4, ge=1)
    batch_size: int = Field(default=64, ge=1)
    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.7, ge=0, le=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    feature_layers: tuple[str, ...] = ()
    feature_weight: float = Field(default=1.0, ge=0)
    patience: int | None = Field(default=3, ge=1)
    compare_finetune: bool = True  # also fine-tune without the teacher on the same budget, for the report

    def to_config(self, *, seed: int, threads: int | None) -> DistillConfig:
        settings = self.model_dump(exclude={"compare_finetune"})
        return DistillConfig(**settings, seed=seed, threads=threads)


class Stage(_Section):
    """One list item: exactly one of `prune:` or `distill:`."""

    prune: PruneStage | None = None
    distill: DistillStage | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Stage:
        if (self.prune is None) == (self.distill is None):
            raise ValueError("each stage is exactly one of 'prune:' or 'distill:'")
        return self

    @property
    def kind(self) -> str:
        return "prune" if self.prune is not None else "distill"


class ExportSection(_Section):
    """Formats and precision of the compressed bundles. Detectors only: `head` float keeps the detection head
    (prediction layers + box/score decoding) out of INT8, plain quantises it too; `compare_plain` also builds a
    plain INT8 bundle per format, so the report shows what keeping the head saves; `scheme` w8a16 keeps int16
    activations (TFLite), for when full INT8 loses too much."""

    formats: tuple[Format, ...] = (Format.ONNX, Format.OPENVINO, Format.TFLITE)
    precision: Precision = Precision.INT8
    calibration_images: int = Field(default=300, ge=1)
    ignored_scope: tuple[str, ...] = ()
    head: Literal["float", "plain"] = "float"
    compare_plain: bool = False
    scheme: Literal["w8a8", "w8a16"] = "w8a8"


class DataSection(_Section):
    """train fits, val chooses (epochs, budget, accuracy control, parity), test (optional, held out) reports."""

    train: Path
    val: Path
    test: Path | None = None  # without it, the report's accuracies are on val and say so
    calibration: Path | None = None  # default: train


class DistributedSection(_Section):
    """How the training stages run under torch.distributed.run (`edgevision compress --nproc-per-node ...` overrides)."""

    nproc_per_node: int = Field(default=1, ge=1)
    nnodes: int = Field(default=1, ge=1)
    node_rank: int = Field(default=0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(default=29500, ge=1, le=65535)


class Recipe(_Section):
    """Everything `edgevision compress` does, in order."""

    name: str = "compressed"
    data: DataSection | None = None  # may come from --data instead
    stages: tuple[Stage, ...] = ()
    export: ExportSection = ExportSection()
    max_accuracy_drop: float = Field(default=0.01, ge=0, le=1)  # fraction of top-1 vs the original model
    on_budget_exceeded: Literal["fail", "fp16"] = "fail"  # fp16: fall back to an FP16 bundle for that format
    bench_threads: int = Field(default=2, ge=1)
    bench_iterations: int = Field(default=100, ge=5)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    distributed: DistributedSection = DistributedSection()

    @field_validator("stages")
    @classmethod
    def _stages_in_order(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        kinds = [s.kind for s in stages]
        if kinds.count("prune") > 1 or kinds.count("distill") > 1:
            raise ValueError("list each stage at most once (prune then distill)")
        if kinds == ["distill", "prune"]:
            raise ValueError("distill must come after prune: it wins back what pruning cost")
        return stages


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe YAML; every error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Recipe {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping with keys such as stages:, export:, max_accuracy_drop:.")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, path)) from None


def _describe(exc: ValidationError, root: Any, path: Path) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    line = _line_of(root, loc)
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "recipe"
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        message = f"unknown key {loc[-1]!r} (allowed: {', '.join(known)}).{did_you_mean(str(loc[-1]), known)}"
    else:
        message = error["msg"].removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}:{line}: {dotted}: {message}{more}" if line else f"{path}: {dotted}: {message}{more}"


def _line_of(node: Any, loc: tuple) -> int | None:
    """1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _known_keys(parent: tuple) -> list[str]:
    model: Any = Recipe
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if nested is None:
            args = getattr(annotation, "__args__", ())
            nested = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)
