"""`edgevision compress MODEL --data DIR`: prune, distil, quantise and bench, from flags or a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .outputs import removes_outputs_on_failure

if TYPE_CHECKING:
    from ..data.splits import DataSplits


def register(app: typer.Typer) -> None:
    app.command("compress")(removes_outputs_on_failure("out")(compress_command))


def compress_command(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="Checkpoint (.pt) — or an .onnx file (quantise/convert only)."),
    data: Path = typer.Option(
        None, "--data", "-d",
        help="Folder with train/ (fits) and val/ (chooses) image folders, and optionally test/ (held out: the reported "
        "accuracy). Without test/ the report says its accuracy is on val, the selection set. --task detect: COCO "
        "splits (each images/ + annotations.json); --task segment: mask splits val/ [test/] (each images/ + masks/ + "
        "labels.txt).",
    ),
    test: Path = typer.Option(
        None, "--test", help="Held-out image folder for the reported accuracy, if not DIR/test (overrides the recipe's)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: bundles/, model.pt, compress_report.*"),
    recipe: Path = typer.Option(None, "--recipe", help="YAML recipe (flags below are ignored when given)."),
    prune_ratio: float = typer.Option(None, "--prune", help="Keep this fraction of MACs (e.g. 0.5)."),
    importance: str = typer.Option("l2", help="Pruning importance: l1, l2 or taylor."),
    distill_flag: bool = typer.Option(False, "--distill", help="Distil from the original model after pruning."),
    epochs: int = typer.Option(4, help="Distillation epochs."),
    quantize: str = typer.Option(None, "--quantize", help="Target precision: int8, fp16 or fp32 (default: int8; "
                                 "fp16 for an .onnx detector or segmenter; a detector's int8 keeps its head in float, a segmenter "
                                 "takes fp16 or fp32)."),
    export_formats: str = typer.Option(None, "--export", help="Formats to produce (default: onnx,openvino,tflite; "
                                       "onnx,openvino for an .onnx file)."),
    max_accuracy_drop: float = typer.Option(0.01, help="Largest top-1 loss allowed vs the original (fraction)."),
    calibration_images: int = typer.Option(300, help="Calibration images for INT8."),
    ignored_scope: str = typer.Option("", help="Comma-separated module names kept in float (e.g. fc)."),
    task: str = typer.Option(None, "--task", help="ONNX input only: classify, detect (a YOLOv8/YOLO11-style export, "
                             "--data with COCO splits) or segment (per-pixel class scores [N, classes, h, w], --data "
                             "with mask splits). Default: the model's metadata 'task', else classify."),
    labels: str = typer.Option(None, help="ONNX input only: comma-separated labels in output order, or a .txt file "
                               "with one per line (default: the model's metadata, else the data's: sorted folder names, "
                               "COCO categories, or labels.txt)."),
    size: str = typer.Option(None, help="ONNX input only: input size as N or HxW (height x width, e.g. 48x192); "
                             "needed when the graph's height/width are dynamic."),
    color: str = typer.Option(None, help="ONNX input only: channel order the model takes: rgb (default) or bgr."),
    resize: str = typer.Option(None, help="ONNX input only: resize (stretch to the size; the classify default), "
                               "shorter_side_center_crop (shorter side to --resize-shorter, then a centre crop) or "
                               "letterbox (keep the aspect ratio, pad 114; the detect and segment default)."),
    resize_shorter: int = typer.Option(None, help="ONNX input only: shorter side before the centre crop "
                                       "(default: the larger of H and W)."),
    mean: str = typer.Option(None, help="ONNX input only: per-channel mean, after --scale (default: ImageNet's "
                             "0.485,0.456,0.406; detect: 0,0,0 as Ultralytics)."),
    std: str = typer.Option(None, help="ONNX input only: per-channel std, after --scale (default: ImageNet's "
                            "0.229,0.224,0.225; detect: 1,1,1)."),
    scale: str = typer.Option(None, help="ONNX input only: pixel multiplier before mean/std (default 1/255; 1 keeps "
                              "0..255)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run of the same command from its "
                                "last completed training epoch (state kept in OUT.training/)."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help="Training processes on this machine "
                                       "(torch.distributed.run + DDP; default: the recipe's distributed section, 1)."),
    nnodes: int = typer.Option(None, "--nnodes", help="Machines taking part (run the same command on each)."),
    node_rank: int = typer.Option(None, "--node-rank", help="This machine's index, 0..nnodes-1 (0 writes the output)."),
    master_addr: str = typer.Option(None, "--master-addr", help="Address of the node-rank-0 machine."),
    master_port: int = typer.Option(None, "--master-port", help="A free TCP port on the node-rank-0 machine."),
) -> None:
    """Make a model smaller and faster without losing what it learned; fails if accuracy drops too much."""
    from .console import console

    launch_flags = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank,
                    "master_addr": master_addr, "master_port": master_port}

    if model.suffix.lower() == ".onnx":
        from .compress_onnx import compress_onnx

        if prune_ratio is not None or distill_flag or resume or any(v is not None for v in launch_flags.values()):
            from ..errors import CompressionError

            raise CompressionError(
                "Pruning and distillation need the torch model (its layers and weights); an .onnx file can only be "
                "quantised, converted and benched (no training: nothing to resume or distribute). Pass the .pt "
                "checkpoint, or drop --prune/--distill/--resume and the launch flags."
            )
        from .compress_onnx import preprocess_from_flags

        preprocess = preprocess_from_flags(size=size, color=color, resize=resize, resize_shorter=resize_shorter,
                                           mean=mean, std=std, scale=scale)
        compress_onnx(model, data=data, out=out, quantize=quantize, formats=export_formats or "onnx,openvino",
                      labels=labels, preprocess=preprocess, max_accuracy_drop=max_accuracy_drop,
                      calibration_images=calibration_images, force=force, test=test, task=task)
        return
    if task is not None:
        from ..errors import ConfigError

        raise ConfigError("--task is for .onnx input (a checkpoint carries its own task): drop --task.")
    quantize, export_formats = quantize or "int8", export_formats or "onnx,openvino,tflite"
    recipe_obj = _recipe(recipe, prune_ratio, importance, distill_flag, epochs, quantize, export_formats,
                         max_accuracy_drop, calibration_images, ignored_scope)
    splits = _split(data, test=test) if data else None
    if splits is None and test is not None and recipe_obj.data is None:
        from ..errors import ConfigError

        raise ConfigError("--test needs --data DIR (train/ and val/) or a recipe with a 'data:' section.")
    from ..compress.distributed import LaunchConfig, launched_by_torchrun, process_group, run_under_torchrun
    from ..compress.pipeline import Pipeline
    from ..model import TrainedModel
    from .training import run_pipeline_with_progress

    launch = LaunchConfig(**{**recipe_obj.distributed.model_dump(),
                             **{k: v for k, v in launch_flags.items() if v is not None}})
    if launch.distributed and not launched_by_torchrun():
        _check_output(out, force=force, resume=resume)
        console.print(f"[bold]›[/] training on {launch.nproc_per_node} process(es) × {launch.nnodes} machine(s) "
                      "through torch.distributed.run (DDP); rank 0 writes the output")
        run_under_torchrun(launch, ["edgevision", *_child_arguments(ctx, set(launch_flags))])
        if launch.node_rank != 0:  # rank 0's process (on node 0) printed the report and where it wrote it
            console.print(f"[green]✓[/] node {launch.node_rank} finished training; node 0 wrote the output")
        return
    arguments = {"train": splits.train if splits else None, "val": splits.val if splits else None,
                 "test": splits.test if splits else test, "overwrite": force, "resume": resume}
    with process_group() as here:
        if not here.main:  # trains along with rank 0, which alone writes
            Pipeline(recipe_obj).run(TrainedModel.load(model), out, **arguments)
            return
        result = run_pipeline_with_progress(recipe_obj, TrainedModel.load(model), out, **arguments)
    console.print((result.output / "compress_report.md").read_text())
    console.print(f"[green]✓[/] wrote {len(result.bundles)} bundles and the report to {result.output}")


def _check_output(out: Path, *, force: bool, resume: bool) -> None:
    """Before launching: the same checks the pipeline makes, so a bad output fails once, not once per rank."""
    from ..compress.pipeline import require_training_state, training_state
    from ..errors import ConfigError

    if out.exists() and not force:
        raise ConfigError(f"{out} already exists. Pass --force to replace it, or choose another --out.")
    if resume:
        require_training_state(training_state(out))


def _child_arguments(context: typer.Context, skipped: set[str]) -> list[str]:
    """This command's arguments as given, minus the launch flags: what each rank runs."""
    found: list[str] = [context.info_name or "compress"]
    for param in context.command.params:
        value = context.params.get(param.name)
        if param.name in skipped or value is None or value == param.default:
            continue
        if param.param_type_name == "argument":
            found.append(str(value))
        elif getattr(param, "is_flag", False):
            found.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            found += [param.opts[0], str(value)]
    return found


def _split(data: Path, *, test: Path | None = None) -> DataSplits:
    """DIR/train, DIR/val and DIR/test (if there, or `test`): val chooses, test reports."""
    from ..data.splits import DataSplits

    return DataSplits.from_root(data, test=test)


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
