"""`edgevision train-demo`: the digits data set on disk and a model trained on it from scratch."""

from __future__ import annotations

from pathlib import Path

import typer

from .outputs import removes_outputs_on_failure


def register(app: typer.Typer) -> None:
    app.command("train-demo")(removes_outputs_on_failure("out")(train_demo))


def train_demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for data/ (train, val, test), model.pt and train.json (detect: in OUT/detect/; segment: in OUT/segment/)."),
    arch: str = typer.Option("resnet18", help="torchvision architecture (resnet18, mobilenet_v3_small, ...) or vit_tiny (a small ViT for the 32 px digits)."),
    size: int = typer.Option(32, help="Input size (pixels, square)."),
    epochs: int = typer.Option(None, help="Training epochs (default: the architecture's: 6 for the CNNs, 40 for vit_tiny; the detector's or segmenter's own for detect or segment)."),
    threads: int = typer.Option(None, help="torch threads (default: all cores)."),
    seed: int = typer.Option(0),
    task: str = typer.Option("classify", help="classify (digits ImageFolder), detect (digits on photos, COCO; FCOS) or segment (the same photos' masks; LRASPP)."),
) -> None:
    """Write a digits data set and train a model on it from random init: a classifier, a detector or a segmenter."""
    from ..types import Task, parse_one_enum
    from .console import console
    from .training import describe_training, train_with_progress

    chosen = parse_one_enum(Task, task, option="task")
    if chosen is Task.SEGMENT:
        from .demo_segment import train_segmenter_with_progress

        # OUT/segment/{data,model.pt,train.json}, beside OUT/detect/.
        _, report = train_segmenter_with_progress(out / "segment", threads=threads, seed=seed, epochs=epochs)
        console.print(f"[green]✓[/] segmenter: test mIoU {report.test_miou:.3f}, pixel accuracy "
                      f"{report.test_pixel_accuracy:.3f} (held out); val chose epoch {report.best_epoch}/{report.epochs} "
                      f"in {report.seconds:.0f} s → {report.checkpoint}")
        return
    if chosen is Task.DETECT:
        from .demo_detect import train_detector_with_progress

        # OUT/detect/{data,model.pt,train.json}: where `edgevision demo` puts its detector too.
        _, report = train_detector_with_progress(out / "detect", threads=threads, seed=seed, epochs=epochs)
        console.print(f"[green]✓[/] detector: test mAP50 {report.test_map50:.3f}, mAP50-95 {report.test_map50_95:.3f} "
                      f"(held out); val chose epoch {report.best_epoch}/{report.epochs} in {report.seconds:.0f} s → "
                      f"{report.checkpoint}")
        return
    model_path, report = train_with_progress(out, arch=arch, size=size, epochs=epochs, threads=threads, seed=seed)
    console.print(f"[green]✓[/] {arch} @ {size}×{size}: {describe_training(report)} → {model_path}")
