"""`edgevision compress MODEL --data DIR`: prune, distil, quantise and bench, from flags or a recipe."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("compress")(compress_command)


def compress_command(
    model: Path = typer.Argument(..., help="Checkpoint (.pt) — or an .onnx file (quantise/convert only)."),
    data: Path = typer.Option(None, "--data", "-d", help="Folder with train/ and val/ image folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: bundles/, model.pt, compress_report.*"),
    recipe: Path = typer.Option(None, "--recipe", help="YAML recipe (flags below are ignored when given)."),
    prune_ratio: float = typer.Option(None, "--prune", help="Keep this fraction of MACs (e.g. 0.5)."),
    importance: str = typer.Option("l2", help="Pruning importance: l1, l2 or taylor."),
    distill_flag: bool = typer.Option(False, "--distill", help="Distil from the original model after pruning."),
    epochs: int = typer.Option(4, help="Distillation epochs."),
    quantize: str = typer.Option("int8", "--quantize", help="Target precision: int8, fp16 or fp32."),
    export_formats: str = typer.Option("onnx,openvino,tflite", "--export", help="Formats to produce."),
    max_accuracy_drop: float = typer.Option(0.01, help="Largest top-1 loss allowed vs the original (fraction)."),
    calibration_images: int = typer.Option(300, help="Calibration images for INT8."),
    ignored_scope: str = typer.Option("", help="Comma-separated module names kept in float (e.g. fc)."),
    labels: str = typer.Option(None, help="ONNX input only: comma-separated labels (default: the data folder's)."),
    size: int = typer.Option(None, help="ONNX input only: the input size, if the graph does not fix it."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
) -> None:
    """Make a model smaller and faster without losing what it learned; fails if accuracy drops too much."""
    from .console import console

    if model.suffix.lower() == ".onnx":
        from .compress_onnx import compress_onnx

        if prune_ratio is not None or distill_flag:
            from ..errors import CompressionError

            raise CompressionError(
                "Pruning and distillation need the torch model (its layers and weights); an .onnx file can only be "
                "quantised, converted and benched. Pass the .pt checkpoint, or drop --prune/--distill."
            )
        compress_onnx(model, data=data, out=out, quantize=quantize, formats=export_formats, labels=labels, size=size,
                      calibration_images=calibration_images, force=force)
        return
    recipe_obj = _recipe(recipe, prune_ratio, importance, distill_flag, epochs, quantize, export_formats,
                         max_accuracy_drop, calibration_images, ignored_scope)
    train, val = _split(data) if data else (None, None)
    from ..model import TrainedModel
    from .training import run_pipeline_with_progress

    result = run_pipeline_with_progress(recipe_obj, TrainedModel.load(model), out, train=train, val=val, overwrite=force)
    console.print((result.output / "compress_report.md").read_text())
    console.print(f"[green]✓[/] wrote {len(result.bundles)} bundles and the report to {result.output}")


def _split(data: Path) -> tuple[Path, Path]:
    from ..errors import DataError

    train, val = data / "train", data / "val"
    if not train.is_dir() or not val.is_dir():
        raise DataError(f"{data} needs train/ and val/ sub-folders (each <label>/<image>), e.g. runs/demo/data.")
    return train, val


def _recipe(recipe, prune_ratio, importance, distill_flag, epochs, quantize, formats, max_drop, calibration_images, ignored):  # noqa: ANN001, ANN202, PLR0913
    from ..compress.recipe import Recipe, load_recipe

    if recipe is not None:
        return load_recipe(recipe)
    stages = []
    if prune_ratio is not None:
        stages.append({"prune": {"target_macs_ratio": prune_ratio, "importance": importance}})
    if distill_flag:
        stages.append({"distill": {"epochs": epochs}})
    raw = {
        "stages": stages, "max_accuracy_drop": max_drop,
        "export": {"formats": [f.strip() for f in formats.split(",") if f.strip()], "precision": quantize,
                   "calibration_images": calibration_images,
                   "ignored_scope": [s.strip() for s in ignored.split(",") if s.strip()]},
    }
    from pydantic import ValidationError

    from ..errors import ConfigError

    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"Invalid option ({where}): {error['msg'].removeprefix('Value error, ')}.") from None
