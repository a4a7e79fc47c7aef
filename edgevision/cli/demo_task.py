"""What the demo's halves share: every export with parity on val (all three tasks), and compression (detection and
segmentation).

The two halves differ only in words and numbers (which layers pruning keeps, how distillation is weighted, which
metric the guard reads), so those live in a `DemoTask` per task and the steps are written once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class DemoTask:
    """One task's demo: its noun, what its parity and guard measure, and how it is compressed."""

    noun: str  # "detector" / "segmenter"
    parity: str  # "detection parity" / "mask parity"
    metric: str  # the val metric the guard and distillation report ("mAP50-95" / "mIoU")
    kept: str  # what pruning leaves whole
    distilled: str  # what distillation matches
    int8: str  # how INT8 is made and checked
    alpha: float  # DistillConfig.alpha: the teacher's share of the output loss
    #: prune to this fraction of the MACs in channel multiples of `round_to`, distil `distill_epochs` epochs from the
    #: original, INT8 with `int8_budget` (val metric, against the compressed FP32 model) per engine.
    macs_ratio: float = 0.6
    round_to: int = 16
    distill_epochs: int = 3
    int8_budget: float = 0.015


def export_all(model: Any, root: Path, *, jobs: list[tuple[Any, Any]], val: Path, noun: str, parity: str) -> list[Any]:
    """The torch reference, then every (format, precision) of `jobs`, in a fresh root/bundles, each parity-checked on
    `val`."""
    from ..export import ParityConfig, export
    from ..types import Format, Precision
    from .console import progress

    jobs = [(Format.TORCH, Precision.FP32), *jobs]
    shutil.rmtree(root / "bundles", ignore_errors=True)  # no stale bundle from an earlier run's formats
    bundles = []
    with progress() as bar:
        progress_task = bar.add_task("exporting", total=len(jobs))
        for fmt, prec in jobs:
            bar.update(progress_task, description=f"exporting the {noun}: {fmt.value} {prec.value} (+ {parity} on val)")
            name = "torch-reference" if fmt is Format.TORCH else f"{fmt.value}-{prec.value}"
            bundles.append(export(model, root / "bundles" / name, format=fmt, precision=prec,
                                  parity=ParityConfig(data=val), overwrite=True))
            bar.advance(progress_task)
    return bundles


def compress_for_demo(model: Any, splits: Any, root: Path, *, task: DemoTask, formats: list[Any], threads: int) -> list[Any]:
    """Prune → distil from the original → INT8 per format under the guard; the bundles written (a refused one is shown)."""
    from ..compress.calibration import CalibrationConfig
    from ..compress.distill import DistillConfig, distill
    from ..compress.prune import PruneConfig, prune
    from ..compress.quantize import quantize
    from ..errors import AccuracyBudgetError, ParityError
    from .console import console, progress

    console.print(f"[bold]›[/] compressing the {task.noun}: prune to {task.macs_ratio:.0%} of the MACs (torch-pruning; "
                  f"{task.kept}) → distil {task.distill_epochs} epochs from the original ({task.distilled}) → {task.int8}")
    with progress() as bar:
        progress_task = bar.add_task(f"pruning the {task.noun}", total=None)
        pruned, pruning = prune(model, config=PruneConfig(target_macs_ratio=task.macs_ratio, round_to=task.round_to),
                                train_data=splits.train, val_data=splits.val)
        bar.update(progress_task, description=f"distilling the pruned {task.noun} ({task.distill_epochs} epochs)",
                   total=task.distill_epochs, completed=0)

        def on_epoch(epoch: int, total: int, loss: float, score: float) -> None:
            bar.update(progress_task, completed=epoch,
                       description=f"distilling (epoch {epoch}/{total}: val {task.metric} {score:.3f})")

        student, distilled = distill(pruned, model, train_data=splits.train, val_data=splits.val,
                                     config=DistillConfig(epochs=task.distill_epochs, batch_size=16, learning_rate=2e-3,
                                                          alpha=task.alpha, feature_weight=1.0, patience=None,
                                                          threads=threads),
                                     on_epoch=on_epoch)
    console.print(f"  pruned: {pruning.describe()}")
    console.print(f"  distilled: {distilled.describe()}")
    bundles = []
    with progress() as bar:
        progress_task = bar.add_task("quantising", total=len(formats))
        for fmt in formats:
            bar.update(progress_task, description=f"INT8 {fmt.value} ({task.metric} guard and parity on val)")
            try:
                bundles.append(quantize(
                    student, root / "bundles" / f"compressed-{fmt.value}-int8", format=fmt,
                    calibration=CalibrationConfig(data=splits.train), validation=splits.val,
                    max_accuracy_drop=task.int8_budget, overwrite=True,
                ))
            except (AccuracyBudgetError, ParityError) as refused:  # the guard doing its job: shown, nothing written
                console.print(f"  [yellow]{fmt.value} INT8 refused, no bundle written:[/] {refused}")
            bar.advance(progress_task)
    return bundles
