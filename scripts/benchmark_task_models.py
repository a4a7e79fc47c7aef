"""What the detection and segmentation sections of `make bench` share: train or reuse the demo model, prune +
distil it (with plain fine-tuning on the same budget beside it), and build the one-liner bundle.

A task supplies a `TaskModels`: how to train its demo model, how to score a torch model on val and test, and
what its splits must hold. Trained and compressed models are cached in `<work>/models`, keyed on their
settings and on the data set they were trained on, each next to a JSON file with the commit that built it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark_models import BuiltBundles, Log, _built_now, _provenance, build_each, first_line

from edgevision.bundle import Bundle, InputSpec, atomic_directory
from edgevision.data.detection import DetectionSplits, make_detection_dataset
from edgevision.errors import CompressionError
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel
from edgevision.types import Format, Precision, Task


@dataclass(frozen=True, kw_only=True)
class CompressPlan:
    """How a demo model is trained and compressed for the benchmark (a task's plan adds its targets)."""

    title: str
    train_epochs: int
    seed: int = 0
    target_macs_ratio: float = 0.6  # fraction of the model's MACs edgevision full keeps
    #: Channel counts in multiples of 16: with 8, the detector's 16-wide stem conv was cut to 8 channels and ran 3.5×
    #: slower in OpenVINO's INT8 kernels (0.26 vs 0.07 ms, per-layer profile), eating the pruning's gain.
    prune_round_to: int = 16
    distill_epochs: int = 6
    distill_batch_size: int = 16
    distill_learning_rate: float = 2e-3
    distill_alpha: float = 1.0
    distill_feature_weight: float = 1.0

    def compressed_key(self) -> str:
        return (f"macs{self.target_macs_ratio:g}-r{self.prune_round_to}-kd{self.distill_epochs}ep-b{self.distill_batch_size}"
                f"-lr{self.distill_learning_rate:g}-a{self.distill_alpha:g}-f{self.distill_feature_weight:g}")


@dataclass(frozen=True)
class TaskModels:
    """What differs between tasks when preparing their models."""

    noun: str  # "detector" / "segmenter": cache file names, log lines, the --<noun>-checkpoint flag
    metric: str  # the val metric distillation logs ("mAP50-95", "mIoU")
    split_file: str  # a file every split of --<noun>-data must hold
    kept: str  # what pruning keeps, for the log
    #: (splits, path, epochs, seed) → trains and saves the model, returns the training report
    train: Callable[[DetectionSplits, Path, int, int], Any]
    #: (model, splits) → the torch model's figures on val (which chose the epoch) and test (which chose nothing)
    score: Callable[[TrainedModel, DetectionSplits], dict[str, float]]


@dataclass(frozen=True)
class TaskVariant:
    """One compared row: which model (original or compressed), which format and precision, made how."""

    key: str
    label: str
    compressed: bool
    format: str
    precision: str
    how: str  # "export" | "oneliner" (nncf.quantize defaults) | "int8" (edgevision's quantize)


#: (row key suffix, bundle format, name in a label) of the engines every INT8 row is built for.
ENGINES = (("openvino", "openvino", "OpenVINO"), ("onnxruntime", "onnx", "ONNX Runtime"), ("tflite", "tflite", "TFLite"))
#: Validation images each bundle's parity check reads (of 250): bounds the build time.
PARITY_IMAGES = 100


def task_variants(int8_key: str, int8_label: str) -> tuple[TaskVariant, ...]:
    """Every task section's rows: the float engines, the one-liner, the task's edgevision INT8 per engine (row keys
    `<int8_key>_<engine>`) and edgevision full per engine (`full_<engine>`: the candidates for the best engine)."""
    return (
        TaskVariant("eager", "PyTorch eager FP32", False, "torch", "fp32", "export"),
        TaskVariant("ort_fp32", "ONNX Runtime FP32", False, "onnx", "fp32", "export"),
        TaskVariant("ov_fp32", "OpenVINO FP32", False, "openvino", "fp32", "export"),
        TaskVariant("oneliner", "the one-liner: nncf.quantize defaults → OpenVINO INT8", False, "openvino", "int8",
                    "oneliner"),
        *(TaskVariant(f"{int8_key}_{engine}", f"{int8_label} → {name}", False, fmt, "int8", "int8")
          for engine, fmt, name in ENGINES),
        *(TaskVariant(f"full_{engine}", f"edgevision full → {name} INT8", True, fmt, "int8", "int8")
          for engine, fmt, name in ENGINES),
    )


@dataclass
class PreparedModel:
    """The original model, its splits and, when it could be built, the pruned + distilled one."""

    splits: DetectionSplits
    original: TrainedModel
    compressed: TrainedModel | None
    compressed_failure: str | None = None
    compression: dict[str, str] = field(default_factory=dict)
    #: torch FP32 figures of the pruned model before recovery, distilled and fine-tuned on the same budget (val + test)
    recovery: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, dict] = field(default_factory=dict)


def prepare_model(plan: CompressPlan, task: TaskModels, *, work: Path, checkpoint: Path | None, data: Path | None,
                  fresh: bool, log: Log) -> PreparedModel:
    """The splits, the trained model (given, cached or trained now) and its pruned + distilled copy."""
    splits = task_splits(data, work, task, seed=plan.seed, log=log)
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    provenance: dict[str, dict] = {}
    if checkpoint is not None:
        original = TrainedModel.load(checkpoint)
        teacher_key = f"{task.noun}-given{_file_tag(checkpoint)}"
        provenance["original"] = {"reused": True, "path": str(checkpoint), "built_at": "unknown",
                                  "built_by": {"commit": f"given by --{task.noun}-checkpoint", "dirty": None}}
        log(f"  using the {task.noun} in {checkpoint} (--{task.noun}-checkpoint)")
    else:
        teacher_key = f"{task.noun}-{plan.train_epochs}ep-seed{plan.seed}-data{_data_tag(splits)}"
        original, seconds, provenance["original"] = _trained(plan, task, splits, models / f"{teacher_key}.pt",
                                                             fresh=fresh, log=log)
    student_path = models / f"{teacher_key}-{plan.compressed_key()}.pt"
    prepared = PreparedModel(splits=splits, original=original, compressed=None, seconds=seconds, provenance=provenance)
    meta_path = student_path.with_suffix(".json")
    if student_path.is_file() and meta_path.is_file() and not fresh:
        meta = json.loads(meta_path.read_text())
        prepared.compressed = TrainedModel.load(student_path)
        prepared.provenance["compressed"] = _provenance(student_path, meta, reused=True)
        prepared.compression = {"prune": meta["prune"], "distill": meta["distill"]}
        prepared.recovery = meta.get("recovery", {})
        log(f"  reusing pruned + distilled {task.noun} from {student_path}")
        return prepared
    try:
        prepared.compressed = _compress(plan, task, prepared, log=log)
    except Exception as exc:  # noqa: BLE001 - reported in the doc as "not built", not hidden
        prepared.compressed_failure = f"{type(exc).__name__}: {first_line(exc)}"
        log(f"  pruning + distillation FAILED ({prepared.compressed_failure}); the full rows are not built")
        return prepared
    prepared.compressed.save(student_path)
    meta = {**prepared.compression, "recovery": prepared.recovery, **_built_now()}
    meta_path.write_text(json.dumps(meta, indent=2))
    prepared.provenance["compressed"] = _provenance(student_path, meta, reused=False)
    return prepared


def task_splits(data: Path | None, work: Path, task: TaskModels, *, seed: int, log: Log) -> DetectionSplits:
    """--<noun>-data's train/val/test, or the generated digits-on-photos splits (COCO boxes and masks) in `work`."""
    if data is not None:
        missing = [p for p in ("train", "val", "test") if not (data / p / task.split_file).is_file()]
        if missing:
            raise SystemExit(f"--{task.noun}-data {data} has no {', '.join(missing)} split(s) (<split>/{task.split_file})")
        return DetectionSplits(root=data, train=data / "train", val=data / "val", test=data / "test")
    log(f"  detection data set (digits on photos, COCO boxes + masks) in {work / 'detect-data'}")
    return make_detection_dataset(work / "detect-data", seed=seed)


def _trained(plan: CompressPlan, task: TaskModels, splits: DetectionSplits, path: Path, *, fresh: bool, log: Log
             ) -> tuple[TrainedModel, dict[str, float], dict]:
    meta_path = path.with_suffix(".json")
    if path.is_file() and not fresh:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        found = _provenance(path, meta, reused=True)
        log(f"  reusing trained {task.noun} from {path}, built by {found['built_by']['commit']} (--fresh retrains)")
        return TrainedModel.load(path), {}, found
    log(f"  training the {task.noun} for {plan.train_epochs} epochs (seed {plan.seed})")
    started = time.perf_counter()
    report = task.train(splits, path, plan.train_epochs, plan.seed)
    log(f"    val chose epoch {report.best_epoch}/{report.epochs}; {report.seconds:.0f} s")
    meta = _built_now()
    meta_path.write_text(json.dumps(meta, indent=2))
    return TrainedModel.load(path), {"train": time.perf_counter() - started}, _provenance(path, meta, reused=False)


def _compress(plan: CompressPlan, task: TaskModels, prepared: PreparedModel, *, log: Log) -> TrainedModel:
    """prune (MAC target) → distil from the original, and fine-tune beside it; fills prepared.compression,
    .recovery and .seconds."""
    from edgevision.compress.distill import DistillConfig, distill
    from edgevision.compress.prune import PruneConfig, prune

    splits = prepared.splits
    started = time.perf_counter()
    log(f"  pruning to {plan.target_macs_ratio:.0%} of the MACs ({task.kept} kept)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = PruneConfig(target_macs_ratio=plan.target_macs_ratio, round_to=plan.prune_round_to)
        pruned, pruned_report = prune(prepared.original, config=config, train_data=splits.train, val_data=splits.val)
    log(f"    {pruned_report.describe()}")
    prepared.seconds["prune"] = time.perf_counter() - started
    config = DistillConfig(epochs=plan.distill_epochs, batch_size=plan.distill_batch_size,
                           learning_rate=plan.distill_learning_rate, alpha=plan.distill_alpha,
                           feature_weight=plan.distill_feature_weight, patience=None, threads=2)
    prepared.recovery["pruned"] = task.score(pruned, splits)
    trained = {}
    for mode, settings in (("distill", config), ("fine-tune", config.as_fine_tune())):
        started = time.perf_counter()
        log(f"  {'distilling from the original' if mode == 'distill' else 'fine-tuning on labels alone'} for "
            f"{plan.distill_epochs} epochs")
        trained[mode], report = distill(
            pruned, prepared.original, train_data=splits.train, val_data=splits.val, config=settings,
            on_epoch=lambda e, n, loss, score: log(f"    epoch {e}/{n}: loss {loss:.3f}, val {task.metric} {score:.3f}"),
        )
        prepared.seconds[mode] = time.perf_counter() - started
        prepared.recovery[mode] = {**task.score(trained[mode], splits), "best_epoch": report.best_epoch}
    compressed = trained["distill"]
    prepared.compression = {"prune": compressed.notes.get("prune", ""), "distill": compressed.notes.get("distill", "")}
    return compressed


def build_task_bundles(prepared: PreparedModel, out: Path, variants: tuple[TaskVariant, ...], *,
                       calibration_images: int, float_parity: ParityConfig, int8_parity: ParityConfig,
                       head: str | None, describe: Callable[[Any], tuple[dict, str]], log: Log) -> BuiltBundles:
    """Every variant at the model's deployment size; a variant that cannot be built is listed with why.

    `head`: edgevision INT8's head policy for a detector ("float"); None for a task without one.
    """
    from edgevision.compress.calibration import CalibrationConfig
    from edgevision.compress.quantize import quantize

    train = prepared.splits.train
    by_key = {v.key: v for v in variants}

    def build(key: str) -> Bundle:
        variant = by_key[key]
        model = prepared.compressed if variant.compressed else prepared.original
        if model is None:
            raise CompressionError(f"pruning + distillation failed ({prepared.compressed_failure})")
        if variant.how == "oneliner":
            return build_oneliner(model, out / key, train=train, images=calibration_images, parity=int8_parity)
        if variant.how == "int8":
            options = {} if head is None else {"head": head}
            return quantize(model, out / key, format=variant.format, parity=int8_parity, overwrite=True,
                            calibration=CalibrationConfig(data=train, max_images=calibration_images), **options)
        return export(model, out / key, format=variant.format, precision=variant.precision, parity=float_parity,
                      overwrite=True)

    return build_each(list(by_key), build, describe, log=log)


def build_oneliner(model: TrainedModel, path: Path, *, train: Path, images: int, parity: ParityConfig) -> Bundle:
    """What a user gets from NNCF alone: `nncf.quantize(ov.convert_model(onnx), nncf.Dataset(images))`.

    Default settings (no ignored scope, default preset, so a detector's head is quantised too), `images`
    letterboxed train images, written through edgevision's bundle writer so it runs and is checked like
    every other row.
    """
    import nncf
    import openvino as ov

    from edgevision.compress.quantize.base import write_source_onnx
    from edgevision.export.openvino import save_ir
    from edgevision.export.writer import BundleChecks, finish_bundle

    calibration = letterboxed_images(model, train, images)
    with atomic_directory(path, overwrite=True) as workdir, tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        write_source_onnx(model, onnx_path)
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
            quantized = nncf.quantize(ov.convert_model(str(onnx_path)), nncf.Dataset(calibration),
                                      subset_size=len(calibration))
        artifact = save_ir(quantized, workdir, precision=Precision.INT8)
        notes = {**model.notes, "quantize": f"nncf.quantize defaults (no ignored scope, default preset), "
                                            f"{len(calibration)} letterboxed train images"}
        finish_bundle(workdir, model, artifact, format=Format.OPENVINO, file_precision=Precision.INT8, notes=notes,
                      checks=BundleChecks(parity=parity))
    return Bundle.load(path)


def letterboxed_images(model: TrainedModel, split: Path, count: int) -> list:
    """`count` images of a split (seeded subset; COCO for a detector, a mask split for a segmenter), through the
    model's letterbox preprocessing, (1, 3, H, W) each."""
    from edgevision.preprocess import preprocess_batch

    if model.task is Task.SEGMENT:
        from edgevision.data.masks import MaskFolder

        dataset: Any = MaskFolder.open(split, labels=model.labels).subset(count, seed=0)
    else:
        from edgevision.data.coco import CocoDetections

        dataset = CocoDetections.open(split, labels=model.labels).subset(count, seed=0)
    height, width = model.input_size
    spec = InputSpec(name="input", shape=(1, 3, height, width))
    return [preprocess_batch([dataset.image(i)], model.preprocess, spec) for i in range(len(dataset))]


def _data_tag(splits: DetectionSplits) -> str:
    stamp = splits.root / "detection.json"
    text = stamp.read_text(encoding="utf-8") if stamp.is_file() else str(splits.root)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _file_tag(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:8]


def plan_dict(plan: CompressPlan) -> dict:
    return asdict(plan)
