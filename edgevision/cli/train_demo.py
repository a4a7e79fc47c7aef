"""`edgevision train-demo`: the digits data set on disk and a model trained on it from scratch."""

from __future__ import annotations

from pathlib import Path

import typer

from .outputs import removes_outputs_on_failure


def register(app: typer.Typer) -> None:
    app.command("train-demo")(removes_outputs_on_failure("out")(train_demo))


def train_demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for data/ (train, val, test), model.pt and train.json."),
    arch: str = typer.Option("resnet18", help="torchvision architecture (resnet18, mobilenet_v3_small, ...)."),
    size: int = typer.Option(32, help="Input size (pixels, square)."),
    epochs: int = typer.Option(6, help="Training epochs."),
    threads: int = typer.Option(None, help="torch threads (default: all cores)."),
    seed: int = typer.Option(0),
) -> None:
    """Write scikit-learn's digits as an ImageFolder and train a classifier on it (random init)."""
    from .console import console
    from .training import describe_training, train_with_progress

    model_path, report = train_with_progress(out, arch=arch, size=size, epochs=epochs, threads=threads, seed=seed)
    console.print(f"[green]✓[/] {arch} @ {size}×{size}: {describe_training(report)} → {model_path}")
