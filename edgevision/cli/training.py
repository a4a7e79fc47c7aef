"""Long CLI jobs with progress: training (train-demo, demo) and the compression pipeline (compress, demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..compress.pipeline import CompressResult
    from ..train import TrainReport


def train_with_progress(out: Path, *, arch: str, size: int, epochs: int | None, threads: int | None, seed: int):  # noqa: ANN201
    from ..data.digits import make_digits_folder
    from ..model import build_architecture
    from ..train import TrainConfig, train_classifier
    from .console import console, progress

    config = TrainConfig.for_architecture(arch, input_size=size, epochs=epochs, threads=threads, seed=seed)
    build_architecture(arch, num_classes=10)  # an unknown architecture fails before anything is written
    console.print(f"writing the digits data set to {out / 'data'} …")
    split = make_digits_folder(out / "data", size=size, seed=seed)
    with progress() as bar:
        task = bar.add_task(f"training {arch}", total=config.epochs)

        def on_epoch(epoch: int, total: int, loss: float, accuracy: float) -> None:
            bar.update(task, advance=1, description=f"training {arch} (epoch {epoch}: loss {loss:.3f}, val {accuracy:.2%})")

        model, report = train_classifier(split.train, split.val, test_dir=split.test, config=config, on_epoch=on_epoch)
    model_path = model.save(out / "model.pt")
    (out / "train.json").write_text(json.dumps({
        "architecture": arch, "input_size": size, "epochs": config.epochs, "best_epoch": report.best_epoch,
        "val_accuracy": report.val_accuracy, "test_accuracy": report.test_accuracy, "seconds": report.seconds,
        "history": report.history, "train": str(split.train), "val": str(split.val), "test": str(split.test),
        "note": "val chose the best epoch (its accuracy is optimistic); test chose nothing and is the figure to report",
    }, indent=2))
    return model_path, report


def describe_training(report: TrainReport) -> str:
    """One line: the held-out test figure first, then the val figure that chose the epoch."""
    test = "" if report.test_accuracy is None else f"test top-1 {report.test_accuracy:.2%} (held out); "
    return (f"{test}val top-1 {report.val_accuracy:.2%} (chose epoch {report.best_epoch}/{report.epochs}) "
            f"in {report.seconds:.0f} s")


def run_pipeline_with_progress(
    recipe, model, out: Path, *, train: Path | None, val: Path | None, test: Path | None = None, overwrite: bool,  # noqa: ANN001
    resume: bool = False,
) -> CompressResult:
    """Run a compression Pipeline with a progress line; stage changes are printed as they start."""
    from ..compress.pipeline import Pipeline
    from .console import console, progress

    with progress() as bar:
        task = bar.add_task("compressing", total=None)

        def on_event(kind: str, message: str, fraction: float | None) -> None:
            if kind == "stage":
                console.print(f"[bold]›[/] {message}")
            bar.update(task, description=message)

        return Pipeline(recipe, on_event=on_event).run(model, out, train=train, val=val, test=test, overwrite=overwrite,
                                                       resume=resume)
