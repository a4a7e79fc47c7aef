"""Pipeline: run a Recipe end to end — prune → distil → quantise per format → bench → report.

Everything is written into a temp dir and renamed at the end, so a run that breaks the
accuracy budget leaves no bundle behind; its error lists every stage's accuracy instead.

Val chooses (distillation's best epoch and early stop, the accuracy budget, INT8 accuracy
control, parity); the reported accuracies are measured on test when one is given, and say
"val" (the selection set) when not.

Training stages checkpoint every epoch into OUTPUT.training/ (removed when the run succeeds), so
`resume=True` continues an interrupted run from its last completed epoch. Under torchrun every rank
runs the training stages together; rank 0 alone measures, exports, benches and writes (`run`
returns None on the other ranks).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..bundle import Bundle, atomic_directory
from ..data.splits import DataSplits
from ..errors import AccuracyBudgetError, ConfigError, ParityError
from ..model import TrainedModel
from ..types import Format, Precision, Task
from .model_score import PRIMARY_METRIC, format_drop, format_score, score_model
from .recipe import Recipe

if TYPE_CHECKING:
    from .fit import EpochCheckpoint

#: on_event(kind, message, fraction_done_or_None): kind is "stage", "epoch" or "info".
EventCallback = Callable[[str, str, float | None], None]


@dataclass(frozen=True, kw_only=True)
class StageRecord:
    """One row of the compress report: the model after a stage.

    `accuracy` is the task's primary metric (`metric`: top-1, or mAP50-95 for a detector) measured on
    `split` (test when given, else val); `selection_accuracy` is the same metric on val and is what the
    accuracy budget is checked against. `extras` holds the task's other figures on `split` (mAP50).
    """

    stage: str
    params: int
    macs: int
    size_bytes: int
    torch_latency_ms: float
    accuracy: float
    split: str
    selection_accuracy: float
    seconds: float
    note: str = ""
    metric: str = "top-1"
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class CompressResult:
    output: Path
    model_path: Path
    stages: list[StageRecord]
    bundles: dict[str, Path]
    accuracy_split: str = "val"  # the split every reported accuracy is measured on
    held_out: bool = False  # True when accuracy_split chose nothing (a test split was given)
    finetune_comparison: dict[str, float] = field(default_factory=dict)  # accuracies on accuracy_split
    bench: object | None = None  # BenchReport
    int8_verdicts: dict[str, str] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)
    report_paths: dict[str, Path] = field(default_factory=dict)


class Pipeline:
    """Runs a `Recipe` on a TrainedModel. Data folders come from the recipe or the arguments."""

    def __init__(self, recipe: Recipe, *, on_event: EventCallback | None = None) -> None:
        self.recipe = recipe
        self._emit = on_event or (lambda kind, message, fraction: None)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, on_event: EventCallback | None = None) -> Pipeline:
        from .recipe import load_recipe

        return cls(load_recipe(path), on_event=on_event)

    def run(
        self,
        model: TrainedModel,
        output: str | os.PathLike[str],
        *,
        train: str | os.PathLike[str] | None = None,
        val: str | os.PathLike[str] | None = None,
        test: str | os.PathLike[str] | None = None,
        calibration: str | os.PathLike[str] | None = None,
        bench: bool = True,
        overwrite: bool = False,
        resume: bool = False,
    ) -> CompressResult | None:
        """Compress `model` into `output`. Val chooses; `test` (optional, held out) is what the report measures.

        `resume`: continue the training stages from OUTPUT.training/ (a run of the same recipe, model and
        data that was interrupted). Returns None on ranks other than 0 under torchrun.
        """
        from .distributed import world

        recipe = self.recipe
        splits, calibration_dir = self._data(train, val, test, calibration)
        output = Path(output)
        checkpoints = _Checkpoints(training_state(output), recipe, model, splits, resume=resume)
        if not world().main:  # train along with rank 0; it alone measures and writes
            self._compress(model, None, splits, checkpoints)
            return None
        with atomic_directory(output, overwrite=overwrite) as work:
            stages: list[StageRecord] = [self._record("original", model, splits, seconds=0.0)]
            compressed, comparison = self._compress(model, stages, splits, checkpoints)
            model_path = compressed.save(work / "model.pt")
            bundles, fallbacks = self._export(model, compressed, stages, work / "bundles", calibration_dir, splits.val)
            result = CompressResult(
                output=output, model_path=output / "model.pt", stages=stages,
                bundles={name: output / "bundles" / name for name in bundles}, accuracy_split=splits.report_split,
                held_out=splits.held_out, finetune_comparison=comparison, fallbacks=fallbacks,
            )
            if bench:
                self._bench(result, [Bundle.load(p) for p in bundles.values()], splits)
            from .report import write_compress_report

            result.report_paths = {k: output / p.name for k, p in write_compress_report(result, work, recipe=recipe).items()}
        del model_path
        checkpoints.remove()
        return result

    # -- stages ---------------------------------------------------------------------------------
    def _compress(
        self, original: TrainedModel, stages: list[StageRecord] | None, splits: DataSplits, checkpoints: _Checkpoints,
    ) -> tuple[TrainedModel, dict[str, float]]:
        """The prune and distil stages. `stages` None: a rank other than 0, which trains along and records nothing."""
        from .distill import distill
        from .prune import prune

        train_dir, val_dir = splits.train, splits.val
        current, comparison = original, {}
        metric = PRIMARY_METRIC[original.task]
        for index, stage in enumerate(self.recipe.stages):
            started = time.perf_counter()
            if stage.prune is not None:
                self._emit("stage", "pruning (torch-pruning dependency graph)", None)
                current, report = prune(
                    current, config=stage.prune.to_config(), train_data=train_dir, val_data=val_dir,
                    on_progress=lambda step, steps, macs: self._emit("info", f"prune step {step}/{steps}", step / steps),
                )
                if stages is not None:
                    stages.append(self._record("pruned", current, splits, seconds=time.perf_counter() - started,
                                               note=current.notes.get("prune", "")))
                continue
            settings = stage.distill
            assert settings is not None
            config = settings.to_config(seed=self.recipe.seed, threads=self.recipe.threads)
            pruned = current
            if settings.compare_finetune:
                self._emit("stage", "fine-tuning without the teacher (for comparison)", None)
                tuned, tuned_report = distill(
                    pruned, original, train_data=train_dir, val_data=val_dir, config=config.as_fine_tune(),
                    on_epoch=self._epoch_callback("fine-tune", metric), checkpoint=checkpoints.at(index, "fine-tune"),
                )
                if tuned_report.resumed_from_epoch:
                    self._emit("stage", f"resumed fine-tuning after epoch {tuned_report.resumed_from_epoch}", None)
                if stages is not None:
                    comparison["fine-tune"] = score_model(tuned, splits.report).value  # its val figure chose its epoch
                    comparison["fine-tune seconds"] = tuned_report.seconds
            self._emit("stage", "distilling from the original model", None)
            started = time.perf_counter()
            current, report = distill(pruned, original, train_data=train_dir, val_data=val_dir, config=config,
                                      on_epoch=self._epoch_callback("distill", metric),
                                      checkpoint=checkpoints.at(index, "distill"))
            if report.resumed_from_epoch:
                self._emit("stage", f"resumed distillation after epoch {report.resumed_from_epoch}", None)
            if stages is None:
                continue
            comparison["distill seconds"] = report.seconds
            comparison["before"] = stages[-1].accuracy  # the model distillation started from, on the report split
            stages.append(self._record("distilled", current, splits, seconds=time.perf_counter() - started,
                                       note=current.notes.get("distill", "")))
            comparison["distill"] = stages[-1].accuracy
        if stages is None:
            return current, comparison
        drop = stages[0].selection_accuracy - stages[-1].selection_accuracy  # the budget is a choice: val decides
        if drop > self.recipe.max_accuracy_drop:
            raise AccuracyBudgetError(
                f"After {stages[-1].stage}, val {metric} dropped {format_drop(drop, metric)} (budget "
                f"{format_drop(self.recipe.max_accuracy_drop, metric)}); "
                f"nothing was written. Stages: {_stage_summary(stages)}. Prune less, distil longer, or raise "
                "max_accuracy_drop."
            )
        return current, comparison

    def _export(
        self,
        original: TrainedModel,
        compressed: TrainedModel,
        stages: list[StageRecord],
        directory: Path,
        calibration_dir: Path,
        val_dir: Path,
    ) -> tuple[dict[str, Path], dict[str, str]]:
        """Bundles: torch reference, then per format the original FP32, compressed FP32 and compressed target."""
        from ..export import ParityConfig, export
        from .calibration import CalibrationConfig
        from .quantize import build_float_bundle, quantize

        export_settings = self.recipe.export
        parity = ParityConfig(data=val_dir)
        bundles: dict[str, Path] = {}
        fallbacks: dict[str, str] = {}
        jobs = 1 + (4 if export_settings.compare_plain else 3) * len(export_settings.formats)
        done = 0

        def add(name: str, make: Callable[[Path], Bundle]) -> None:
            nonlocal done
            self._emit("stage", f"export {name}", done / jobs)
            bundles[name] = make(directory / name).path
            done += 1

        add("original-torch-fp32", lambda p: export(original, p, format=Format.TORCH, parity=parity))
        # The compressed model may spend only what is left of the budget after the torch stages.
        spent = stages[0].selection_accuracy - stages[-1].selection_accuracy
        remaining = max(self.recipe.max_accuracy_drop - spent, 0.0)
        target = export_settings.precision
        for fmt in export_settings.formats:
            add(f"original-{fmt.value}-fp32", lambda p, f=fmt: export(original, p, format=f, parity=parity))
            add(f"{fmt.value}-fp32", lambda p, f=fmt: export(compressed, p, format=f, parity=parity))
            if target is Precision.FP32:
                done += 1
                continue
            name = f"{fmt.value}-{target.value}"
            try:
                if target is Precision.INT8:
                    calibration = CalibrationConfig(data=calibration_dir, max_images=export_settings.calibration_images,
                                                    seed=self.recipe.seed)
                    detector = compressed.task is Task.DETECT
                    options = {
                        "head": export_settings.head if detector else None,
                        "scheme": export_settings.scheme if fmt is Format.TFLITE else "w8a8",
                    }
                    add(name, lambda p, f=fmt, c=calibration, o=options: quantize(
                        compressed, p, format=f, calibration=c, ignored_scope=export_settings.ignored_scope,
                        validation=val_dir, max_accuracy_drop=remaining, **o,
                    ))
                    if detector and export_settings.compare_plain and export_settings.head == "float":
                        # What keeping the head in float saves: the same INT8 with the head quantised too. A
                        # comparison row, not a deliverable: parity still checks it, the budget does not.
                        add(f"{name}-plain", lambda p, f=fmt, c=calibration, o=options: quantize(
                            compressed, p, format=f, calibration=c, ignored_scope=export_settings.ignored_scope,
                            **{**o, "head": "plain"},
                        ))
                else:
                    add(name, lambda p, f=fmt: build_float_bundle(
                        compressed, p, format=f, precision=target, parity=parity, validation=val_dir,
                        max_accuracy_drop=remaining,
                    ))
            except (AccuracyBudgetError, ParityError) as exc:
                if self.recipe.on_budget_exceeded != "fp16" or target is Precision.FP16:
                    raise AccuracyBudgetError(
                        f"{name}: {exc} Stages: {_stage_summary(stages)}. Nothing was written."
                    ) from None
                fallback = f"{fmt.value}-fp16"
                fallbacks[name] = f"{target.value} broke the budget ({str(exc).split('.')[0]}); used {fallback}"
                self._emit("info", f"{name} broke the accuracy budget; falling back to {fallback}", None)
                add(fallback, lambda p, f=fmt: build_float_bundle(
                    compressed, p, format=f, precision=Precision.FP16, parity=parity, validation=val_dir,
                    max_accuracy_drop=remaining,
                ))
        return bundles, fallbacks

    def _bench(self, result: CompressResult, bundles: list[Bundle], splits: DataSplits) -> None:
        from ..bench import BenchConfig, bench
        from .quantize import int8_speed_verdict

        self._emit("stage", f"benchmarking {len(bundles)} bundles", None)
        config = BenchConfig(threads=(self.recipe.bench_threads,), iterations=self.recipe.bench_iterations, warmup=10,
                             data=splits.report, split_name=splits.report_split)
        total = len(bundles)
        counter = iter(range(1, total + 1))
        report = bench(
            bundles, config=config,
            progress=lambda phase, n: self._emit("info", f"bench row {next(counter)}/{total}", None) if phase == "row" else None,
        )
        result.bench = report
        rows = {row.name: row for row in report.rows}
        for fmt in self.recipe.export.formats:
            fp32, int8 = rows.get(f"{fmt.value}-fp32"), rows.get(f"{fmt.value}-int8")
            if fp32 and int8:
                result.int8_verdicts[fmt.value] = int8_speed_verdict(fp32, int8)

    # -- helpers --------------------------------------------------------------------------------
    def _data(self, train, val, test, calibration) -> tuple[DataSplits, Path]:  # noqa: ANN001
        """Arguments win over the recipe's data: section; test is optional (then the report says val)."""
        section = self.recipe.data
        train_dir = Path(train) if train else (section.train if section else None)
        val_dir = Path(val) if val else (section.val if section else None)
        test_dir = Path(test) if test else (section.test if section else None)
        if train_dir is None or val_dir is None:
            raise ConfigError("The pipeline needs train and val image folders: give --data DIR (with train/ and val/, "
                              "and optionally a held-out test/) or a 'data:' section in the recipe.")
        if test_dir is not None and test_dir.resolve() in {train_dir.resolve(), val_dir.resolve()}:
            raise ConfigError(f"The test folder {test_dir} is also the train or val folder; a test split must be held "
                              "out (nothing may be chosen or trained on it). Leave it out to report on val instead.")
        calibration_dir = Path(calibration) if calibration else (section.calibration if section and section.calibration else train_dir)
        return DataSplits(train=train_dir, val=val_dir, test=test_dir), calibration_dir

    def _record(self, stage: str, model: TrainedModel, splits: DataSplits, *, seconds: float, note: str = "") -> StageRecord:
        from .measure import measure

        self._emit("info", f"measuring the {stage} model", None)
        stats = measure(model)
        selection = score_model(model, splits.val)
        reported = score_model(model, splits.test) if splits.test else selection
        return StageRecord(
            stage=stage, params=stats.params, macs=stats.macs, size_bytes=stats.state_dict_bytes,
            torch_latency_ms=stats.latency_ms, accuracy=reported.value, split=splits.report_split,
            selection_accuracy=selection.value, seconds=seconds, note=note, metric=reported.metric,
            extras=dict(reported.extras),
        )

    def _epoch_callback(self, what: str, metric: str):  # noqa: ANN202
        def on_epoch(epoch: int, total: int, loss: float, accuracy: float) -> None:
            self._emit("epoch", f"{what} epoch {epoch}/{total}: loss {loss:.3f}, val {metric} "
                                f"{format_score(accuracy, metric)}", epoch / total)

        return on_epoch


def training_state(output: str | os.PathLike[str]) -> Path:
    """Where a run writing `output` keeps its per-epoch training state (OUTPUT.training/)."""
    return Path(f"{output}.training")


def require_training_state(folder: Path) -> None:
    """--resume needs the state an interrupted run left behind."""
    if not folder.is_dir():
        raise ConfigError(f"Nothing to resume: {folder} does not exist (an interrupted run keeps its training "
                          "state there). Run without --resume to start.")


class _Checkpoints:
    """Per-epoch checkpoints of the training stages, in OUTPUT.training/, named by stage and mode.

    Their fingerprint is the recipe, the model's weights and the data folders: a resume from a
    checkpoint of another run is refused by `EpochCheckpoint.load`.
    """

    def __init__(self, folder: Path, recipe: Recipe, model: TrainedModel, splits: DataSplits, *, resume: bool) -> None:
        from .distributed import world

        if resume and world().main:
            require_training_state(folder)
        self.folder, self.resume = folder, resume
        self._run = json.dumps({"recipe": recipe.model_dump(mode="json", exclude={"distributed"}), "model": model.weights_sha256(),
                                "train": str(splits.train), "val": str(splits.val)}, sort_keys=True)

    def at(self, stage: int, mode: str) -> EpochCheckpoint:
        from .fit import EpochCheckpoint

        fingerprint = hashlib.sha256(f"{self._run}|{stage}|{mode}".encode()).hexdigest()
        return EpochCheckpoint(self.folder / f"stage{stage}-{mode}.pt", fingerprint, resume=self.resume)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _stage_summary(stages: list[StageRecord]) -> str:
    """Val figures: the budget is decided on them."""
    metric = stages[0].metric
    return f"val {metric} " + ", ".join(f"{s.stage} {format_score(s.selection_accuracy, metric)}" for s in stages)
