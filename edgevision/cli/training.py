"""Long CLI jobs with progress: training (train-demo, demo) and the compression pipeline (compress, demo)."""

from __future__ import annotations

import json
from pathlib import Path


def train_with_progress(out: Path, *, arch: str, size: int, epochs: int, threads: int | None, seed: int):  # noqa: ANN201
    from ..data.digits import make_digits_folder
    from ..model import build_architecture
    from ..train import TrainConfig, train_classifier
    from .console import console, progress

    config = TrainConfig(architecture=arch, input_size=size, epochs=epochs, threads=threads, seed=seed)
    build_architecture(arch, num_classes=10)  # an unknown architecture fails before anything is written
    console.print(f"writing the digits data set to {out / 'data'} …")
    split = make_digits_folder(out / "data", size=size, seed=seed)
    with progress() as bar:
        task = bar.add_task(f"training {arch}", total=epochs)

        def on_epoch(epoch: int, total: int, loss: float, accuracy: float) -> None:
            bar.update(task, advance=1, description=f"training {arch} (epoch {epoch}: loss {loss:.3f}, val {accuracy:.2%})")

        model, report = train_classifier(split.train, split.val, config=config, on_epoch=on_epoch)
    model_path = model.save(out / "model.pt")
    (out / "train.json").write_text(json.dumps({
        "architecture": arch, "input_size": size, "epochs": epochs, "val_accuracy": report.val_accuracy,
        "seconds": report.seconds, "history": report.history, "train": str(split.train), "val": str(split.val),
    }, indent=2))
    return model_path, report


def run_pipeline_with_progress(recipe, model, out: Path, *, train: Path | None, val: Path | None, overwrite: bool):  # noqa: ANN001, ANN201
    """Run a compression Pipeline with a progress line; stage changes are printed as they start."""
    from ..compress.pipeline import Pipeline
    from .console import console, progress

    with progress() as bar:
        task = bar.add_task("compressing", total=None)

        def on_event(kind: str, message: str, fraction: float | None) -> None:
            if kind == "stage":
                console.print(f"[bold]›[/] {message}")
            bar.update(task, description=message)

        return Pipeline(recipe, on_event=on_event).run(model, out, train=train, val=val, overwrite=overwrite)
