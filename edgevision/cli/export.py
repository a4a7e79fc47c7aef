"""`edgevision export MODEL`: one bundle per format × precision, each parity-checked."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)


def export_command(
    model: Path = typer.Argument(..., help="Checkpoint (.pt) from `edgevision train-demo` or TrainedModel.save."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the bundles into (one sub-folder each)."),
    format: str = typer.Option("onnx", "--format", "-f", help="Comma-separated: torch, onnx, openvino, tflite."),  # noqa: A002
    precision: str = typer.Option("fp32", "--precision", "-p", help="Comma-separated: fp32, fp16."),
    arch: str = typer.Option(None, "--arch", help="Architecture, if the checkpoint does not name it."),
    parity_data: Path = typer.Option(None, "--parity-data", help="ImageFolder to check parity on (e.g. the val split)."),
    force: bool = typer.Option(False, "--force", help="Replace existing bundles."),
) -> None:
    """Export a checkpoint to deployable bundles (model + manifest + parity report)."""
    from ..export import ParityConfig, export
    from ..model import TrainedModel
    from ..types import Format, Precision, parse_enum_list
    from .console import console, progress

    formats = parse_enum_list(Format, format, option="format")
    precisions = parse_enum_list(Precision, precision, option="precision")
    trained = TrainedModel.load(model, architecture=arch)
    jobs = [(f, p) for f in formats for p in precisions]
    with progress() as bar:
        task = bar.add_task("exporting", total=len(jobs))
        for fmt, prec in jobs:
            bar.update(task, description=f"exporting {fmt.value} {prec.value}")
            bundle = export(
                trained, out / f"{fmt.value}-{prec.value}", format=fmt, precision=prec,
                parity=ParityConfig(data=parity_data), overwrite=force,
            )
            parity = bundle.manifest.parity
            console.print(
                f"[green]✓[/] {bundle.path}  {bundle.size_bytes / 1e6:.2f} MB  parity: top-1 agreement "
                f"{parity.top1_agreement:.2%}, max |Δ| {parity.max_abs_diff:.2g} ({parity.engine} {parity.engine_precision})"
            )
            bar.advance(task)
