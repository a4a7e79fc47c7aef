"""Training with a progress bar, shared by `train-demo` and `demo`."""

from __future__ import annotations

import json
from pathlib import Path


def train_with_progress(out: Path, *, arch: str, size: int, epochs: int, threads: int | None, seed: int):  # noqa: ANN201
    from ..data.digits import make_digits_folder
    from ..train import TrainConfig, train_classifier
    from .console import console, progress

    console.print(f"writing the digits data set to {out / 'data'} …")
    split = make_digits_folder(out / "data", size=size, seed=seed)
    config = TrainConfig(architecture=arch, input_size=size, epochs=epochs, threads=threads, seed=seed)
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
