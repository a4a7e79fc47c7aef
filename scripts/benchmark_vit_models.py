"""The models and bundles behind `make bench`'s transformer section: the demo ViT, a CNN of similar accuracy, and
each of them exported for ONNX Runtime, OpenVINO and TFLite in FP32 and INT8.

Everything runs at one input size (32×32): a ViT's position embeddings fix the number of patches, so unlike
the classifier section (trained at 64 px, timed at 224 px) the ViT cannot be timed at a size it was not
built for, and the CNN is kept at the same size so the two compare like for like.

The CNN is chosen by measurement, not by hand: candidate (architecture, epochs) budgets are trained in
increasing order until one reaches the ViT's validation top-1, and the working budget (clearly above chance)
whose validation top-1 is closest to the ViT's is taken. Validation chooses (the ViT's best epoch, the CNN and its epochs, parity);
the test split is only measured. Trained models are cached in `<work>/models` with the commit that built them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark_models import INT8_BENCH_AGREEMENT, BuiltBundles, Log, _built_now, _provenance, build_each, data_tag

from edgevision.bundle import Bundle
from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.quantize import quantize
from edgevision.data.digits import DigitsSplit
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel
from edgevision.train import TrainConfig, train_classifier

#: (row key part, bundle format, name in the doc), in table order.
ENGINES = (("onnxruntime", "onnx", "ONNX Runtime"), ("openvino", "openvino", "OpenVINO"), ("tflite", "tflite", "TFLite"))
PRECISIONS = ("fp32", "int8")
#: The two compared models' row-key prefixes.
ROLES = ("vit", "cnn")
#: A CNN candidate must beat chance by this factor on val to count as a working classifier (see choose_cnn).
CHANCE_FACTOR = 1.5


@dataclass(frozen=True, kw_only=True)
class VitPlan:
    """How the section's models are trained and how the CNN is searched for."""

    title: str = "Vision Transformer vs a CNN of similar accuracy (digits, 32×32)"
    architecture: str = "vit_tiny"
    input_size: int = 32
    vit_epochs: int | None = None  # None: the architecture's own recipe (TrainConfig.for_architecture)
    #: Searched in this order; for each architecture the epoch budgets grow until one reaches the ViT's val top-1.
    cnn_architectures: tuple[str, ...] = ("mobilenet_v3_small", "resnet18")
    cnn_epochs: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    seed: int = 0


@dataclass
class TrainedEntry:
    """One trained (or reused) model with its torch figures and where it came from."""

    model: TrainedModel
    architecture: str
    epochs: int
    best_epoch: int
    val_top1: float  # the best epoch's: it chose that epoch
    test_top1: float  # torch FP32 on the test split; chose nothing
    seconds: float  # training time (0 when reused)
    provenance: dict
    recipe: dict  # learning_rate, weight_decay, batch_size (AdamW + one-cycle)

    def describe(self) -> dict:
        return {"architecture": self.architecture, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "val_top1": self.val_top1, "test_top1": self.test_top1, "recipe": self.recipe,
                "provenance": self.provenance}


@dataclass
class PreparedPair:
    """The ViT, the CNN chosen for it and every CNN budget tried."""

    vit: TrainedEntry
    cnn: TrainedEntry
    candidates: list[dict]  # every CNN budget tried: architecture, epochs, val_top1, test_top1, chosen
    seconds: dict[str, float]

    def model(self, role: str) -> TrainedEntry:
        return self.vit if role == "vit" else self.cnn


def train_or_reuse(architecture: str, epochs: int | None, digits: DigitsSplit, *, plan: VitPlan, work: Path,
                   fresh: bool, log: Log) -> TrainedEntry:
    """`architecture` trained with its own recipe (`TrainConfig.for_architecture`: a ViT's learning rate and weight
    decay differ from a CNN's) for `epochs` (None: the recipe's) at the plan's size, val keeping the best epoch; or
    the cached copy, keyed on every setting that changes the weights."""
    # threads=None: torch's default (OMP_NUM_THREADS where set), so a run beside other work can be held to one core.
    config = TrainConfig.for_architecture(architecture, input_size=plan.input_size, epochs=epochs, seed=plan.seed)
    epochs = config.epochs
    recipe = {"learning_rate": config.learning_rate, "weight_decay": config.weight_decay,
              "batch_size": config.batch_size}
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    path = models / (f"vit-section-{architecture}-{plan.input_size}px-{epochs}ep-lr{config.learning_rate:g}"
                     f"-wd{config.weight_decay:g}-b{config.batch_size}-seed{plan.seed}-data{data_tag(digits)}.pt")
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file() and not fresh:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        log(f"  reusing {architecture} ({epochs} epochs) from {path}, built by {meta['built_by']['commit']}")
        return TrainedEntry(TrainedModel.load(path), architecture, epochs, meta["best_epoch"], meta["val_top1"],
                            meta["test_top1"], 0.0, _provenance(path, meta, reused=True), recipe)
    log(f"  training {architecture} at {plan.input_size}×{plan.input_size} for {epochs} epoch(s) (learning rate "
        f"{config.learning_rate:g}, weight decay {config.weight_decay:g})")
    started = time.perf_counter()
    model, report = train_classifier(
        digits.train, digits.val, test_dir=digits.test, config=config,
        on_epoch=lambda e, n, loss, acc: log(f"    epoch {e}/{n}: loss {loss:.3f}, val top-1 {acc:.2%}"))
    seconds = time.perf_counter() - started
    model.save(path)
    meta = {"best_epoch": report.best_epoch, "val_top1": report.val_accuracy, "test_top1": report.test_accuracy,
            "history": report.history, "seconds": round(seconds, 1), **_built_now()}
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log(f"    val chose epoch {report.best_epoch}/{epochs}: val top-1 {report.val_accuracy:.2%}, "
        f"test top-1 {report.test_accuracy:.2%}, {seconds:.0f} s")
    return TrainedEntry(model, architecture, epochs, report.best_epoch, report.val_accuracy, report.test_accuracy,
                        seconds, _provenance(path, meta, reused=False), recipe)


def choose_cnn(vit_val_top1: float, candidates: list[dict], *, chance: float) -> int:
    """Index of the candidate whose val top-1 is closest to the ViT's; a tie goes to the one tried first.

    A candidate within CHANCE_FACTOR × chance (1 / number of classes) is not a working classifier (its outputs
    barely vary, so no export of it can even be checked), and is chosen only when every candidate is one.
    """
    if not candidates:
        raise ValueError("no CNN candidate was trained")
    working = [i for i, c in enumerate(candidates) if c["val_top1"] > CHANCE_FACTOR * chance] or range(len(candidates))
    return min(working, key=lambda i: (round(abs(candidates[i]["val_top1"] - vit_val_top1), 9), i))


def prepare_pair(plan: VitPlan, digits: DigitsSplit, *, work: Path, fresh: bool, log: Log) -> PreparedPair:
    """Train (or reuse) the ViT, then search the CNN budgets for the one closest to it on val (see module docstring)."""
    vit = train_or_reuse(plan.architecture, plan.vit_epochs, digits, plan=plan, work=work, fresh=fresh, log=log)
    log(f"  the ViT: val top-1 {vit.val_top1:.2%}; searching {', '.join(plan.cnn_architectures)} at "
        f"{', '.join(map(str, plan.cnn_epochs))} epoch(s) for the closest val top-1")
    tried: list[TrainedEntry] = []
    for architecture in plan.cnn_architectures:
        for epochs in plan.cnn_epochs:
            entry = train_or_reuse(architecture, epochs, digits, plan=plan, work=work, fresh=fresh, log=log)
            tried.append(entry)
            if entry.val_top1 >= vit.val_top1:
                break  # longer budgets only move further above the ViT
    candidates = [{"architecture": e.architecture, "epochs": e.epochs, "best_epoch": e.best_epoch,
                   "val_top1": e.val_top1, "test_top1": e.test_top1, "chosen": False} for e in tried]
    chosen = choose_cnn(vit.val_top1, candidates, chance=1 / len(vit.model.labels))
    candidates[chosen]["chosen"] = True
    cnn = tried[chosen]
    log(f"  chose {cnn.architecture} trained {cnn.epochs} epoch(s): val top-1 {cnn.val_top1:.2%} "
        f"(the ViT's {vit.val_top1:.2%})")
    seconds = {"train_vit": round(vit.seconds, 1), "train_cnn_candidates": round(sum(e.seconds for e in tried), 1)}
    return PreparedPair(vit=vit, cnn=cnn, candidates=candidates, seconds=seconds)


def row_key(role: str, engine: str, precision: str) -> str:
    return f"{role}_{engine}_{precision}"


def all_row_keys() -> list[str]:
    """Every row of the section, in table order: per model, per engine, FP32 then INT8."""
    return [row_key(role, engine, precision) for role in ROLES for engine, _, _ in ENGINES for precision in PRECISIONS]


def build_pair_bundles(prepared: PreparedPair, out: Path, *, digits: DigitsSplit, calibration_images: int,
                       log: Log) -> BuiltBundles:
    """Every row's bundle. FP32: `export`, parity on the val images (logits, relative tolerance). INT8:
    `edgevision.compress.quantize` with its defaults for each engine, calibrated on `calibration_images` train
    images, parity = top-1 agreement with the torch model on the val images ≥ INT8_BENCH_AGREEMENT. A bundle
    edgevision refuses is listed with why and not timed."""
    calibration = CalibrationConfig(data=digits.train, max_images=calibration_images)
    float_parity = ParityConfig(data=digits.val)
    int8_parity = ParityConfig(data=digits.val, min_top1_agreement=INT8_BENCH_AGREEMENT)
    formats = {engine: fmt for engine, fmt, _ in ENGINES}

    def build(key: str) -> Bundle:
        role, engine, precision = key.split("_")
        model = prepared.model(role).model
        if precision == "int8":
            return quantize(model, out / key, format=formats[engine], calibration=calibration, parity=int8_parity,
                            overwrite=True)
        return export(model, out / key, format=formats[engine], precision=precision, parity=float_parity,
                      overwrite=True)

    def describe(report: Any) -> tuple[dict, str]:
        return ({"top1_agreement": report.top1_agreement, "max_abs_diff": report.max_abs_diff, "data": report.data},
                f"top-1 agreement with torch {report.top1_agreement:.2%}")

    return build_each(all_row_keys(), build, describe, log=log)


def macs_params(model: TrainedModel, size: int) -> tuple[int | None, int | None]:
    """MACs per image and parameters at `size`×`size` (torch-pruning's counter); None where it cannot trace."""
    from edgevision.compress.measure import count_macs_params

    try:
        macs, params = count_macs_params(model.module, (size, size))
    except Exception:  # noqa: BLE001 - a counter that cannot trace the model leaves the column empty
        return None, None
    return int(macs), int(params)


def plan_dict(plan: VitPlan) -> dict:
    return asdict(plan)
