"""`edgevision export MODEL`: one bundle per format × precision, each parity-checked."""

from __future__ import annotations

from pathlib import Path

import typer

from .outputs import removes_outputs_on_failure


def register(app: typer.Typer) -> None:
    app.command("export")(removes_outputs_on_failure("out")(export_command))


def export_command(
    model: Path = typer.Argument(..., help="Checkpoint (.pt) from `edgevision train-demo` or TrainedModel.save."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the bundles into (one sub-folder each)."),
    format: str = typer.Option("onnx", "--format", "-f", help="Comma-separated: torch, onnx, openvino, tflite."),  # noqa: A002
    precision: str = typer.Option(
        "fp32", "--precision", "-p", help="Comma-separated: fp32, fp16, bf16 (OpenVINO, CPUs with AVX512-BF16 or AMX)."
    ),
    arch: str = typer.Option(None, "--arch", help="Architecture, if the checkpoint does not name it."),
    parity_data: Path = typer.Option(None, "--parity-data", help="Validation split to check parity on: an image folder "
                                     "(classify), a COCO split (detect) or a mask split (segment)."),
    force: bool = typer.Option(False, "--force", help="Replace existing bundles."),
) -> None:
    """Export a checkpoint to deployable bundles (model + manifest + parity report)."""
    from ..export import ParityConfig, check_export_request, export
    from ..model import TrainedModel
    from ..types import Format, Precision, Task, parse_enum_list
    from .console import console, progress
    from .outputs import check_image_folder

    if model.suffix.lower() == ".onnx":
        from ..errors import ConfigError

        raise ConfigError(
            f"edgevision export takes a torch checkpoint (.pt); {model.name} is ONNX. Convert it with "
            f"`edgevision compress {model} --data DIR --quantize fp32 --export onnx,openvino` (TFLite needs the "
            "torch model)."
        )
    formats = parse_enum_list(Format, format, option="format")
    precisions = parse_enum_list(Precision, precision, option="precision")
    jobs = [(f, p) for f in formats for p in precisions]
    for fmt, prec in jobs:
        check_export_request(fmt, prec)
    trained = TrainedModel.load(model, architecture=arch)
    if parity_data is not None and trained.task is Task.CLASSIFY:
        check_image_folder(parity_data, option="--parity-data", labels=trained.labels)
    elif parity_data is not None:
        from ..errors import DataError
        from ..export.parity import open_parity_data

        try:
            open_parity_data(ParityConfig(data=parity_data), task=trained.task, labels=trained.labels)
        except DataError as exc:
            raise DataError(f"--parity-data {parity_data}: {exc}") from None
    if not force:
        existing = [out / f"{f.value}-{p.value}" for f, p in jobs if (out / f"{f.value}-{p.value}").exists()]
        if existing:
            from ..errors import BundleError

            raise BundleError(f"{existing[0]} already exists. Choose another --out or pass --force.")
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
                f"[green]✓[/] {bundle.path}  {bundle.size_bytes / 1e6:.2f} MB  parity: {_agreement(parity)}, "
                f"max |Δ| {parity.max_abs_diff:.2g} ({parity.engine} {parity.engine_precision})"
            )
            bar.advance(task)


def _agreement(parity) -> str:  # noqa: ANN001 - a ParityReport
    """The figure parity was judged on, in the task's own terms."""
    if parity.mask_miou is not None:
        return f"mask mIoU {parity.mask_miou:.4f}"
    if parity.detection_map50 is not None:
        return f"detection mAP50 {parity.detection_map50:.3f}"
    return f"top-1 agreement {parity.top1_agreement:.2%}"
