"""`edgevision demo`: the whole job on the digits default — train, export, bench, print the table.

The digits data is split three ways: train fits, val chooses (best epoch, parity, distillation,
the accuracy budget, INT8 accuracy control), test reports: every top-1 in the tables is on test.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .outputs import removes_outputs_on_failure


def register(app: typer.Typer) -> None:
    app.command("demo")(removes_outputs_on_failure("out")(demo))


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Working folder (data, model, bundles, bench)."),
    arch: str = typer.Option("resnet18", help="torchvision architecture to train."),
    size: int = typer.Option(32, help="Input size (pixels, square)."),
    epochs: int = typer.Option(None, help="Training epochs (default: the architecture's: 6 for the CNNs, 40 for vit_tiny)."),
    formats: str = typer.Option("onnx,openvino,tflite", help="Formats to export (those whose engine is installed)."),
    precisions: str = typer.Option(
        "fp32,fp16", help="Precisions to export (plus OpenVINO bf16 where the CPU computes bf16)."
    ),
    threads: int = typer.Option(2, help="Threads for every engine in the bench."),
    iterations: int = typer.Option(200, help="Timed calls per bench row."),
    compress: bool = typer.Option(True, help="Then prune 50 % of MACs, distil, quantise to INT8 and bench again."),
    detect: bool = typer.Option(True, help="Then the detection demo: digits on photos, a small detector, every engine."),
    compress_detector: bool = typer.Option(
        True, "--compress-detector/--no-compress-detector",
        help="Also prune, distil and INT8-quantise (head in float) the detector and bench it beside the rest.",
    ),
    full: bool = typer.Option(
        False, "--full",
        help="The detector in every format × precision and compressed for every engine, then segmentation (make "
        "demo-full); by default FP32 per format and the compressed detector on OpenVINO, to keep the demo near 10 minutes.",
    ),
    segment: bool = typer.Option(
        None, "--segment/--no-segment",
        help="The segmentation demo: the same photos' masks, a small LR-ASPP segmenter, every engine, compressed "
        "(default: with --full only; its training alone takes ~7 CPU-minutes).",
    ),
) -> None:
    """Train the digits classifier, export every format × precision, bench all; compress and bench again; then
    detection; with --full (or --segment) segmentation too."""
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..model import TrainedModel
    from ..types import Format, Precision, parse_enum_list
    from .console import console, progress
    from .demo_task import export_all
    from .training import describe_training, train_with_progress

    parse_enum_list(Format, formats, option="format")  # a typo fails before training, not after
    parse_enum_list(Precision, precisions, option="precision")
    model_path, report = train_with_progress(out, arch=arch, size=size, epochs=epochs, threads=threads, seed=0)
    console.print(f"[green]✓[/] trained {arch}: {describe_training(report)}")
    model = TrainedModel.load(model_path)
    val, test = out / "data" / "val", out / "data" / "test"  # val gates parity; test is what the tables report
    wanted = [f for f in parse_enum_list(Format, formats, option="format") if _engine_installed(f)]
    skipped = set(parse_enum_list(Format, formats, option="format")) - set(wanted)
    for fmt in sorted(skipped):
        console.print(f"[yellow]skipping {fmt.value}: its engine is not installed[/]")
    jobs = [(Format.TORCH, Precision.FP32)] + [(f, p) for f in wanted for p in parse_enum_list(Precision, precisions, option="precision")]
    if Format.OPENVINO in wanted and Precision.BF16 not in {p for _, p in jobs}:
        if _bf16_available():
            jobs.append((Format.OPENVINO, Precision.BF16))
        else:
            console.print("[yellow]skipping openvino bf16: this CPU computes no bf16 (needs AVX512-BF16 or AMX)[/]")
    bundles = export_all(model, out, jobs=jobs[1:], val=val, noun="classifier", parity="parity")
    for bundle in bundles[1:]:
        p = bundle.manifest.parity
        console.print(f"  {bundle.path.name:<16} parity: {p.top1_agreement:.2%} of {p.samples} val labels agree, "
                      f"max |Δlogit| {p.max_abs_diff:.2g} ({p.engine}, {p.engine_precision})")
    config = BenchConfig(threads=(threads,), iterations=iterations, warmup=20, data=test, split_name="test")
    with progress() as bar:
        task = bar.add_task("benchmarking", total=len(bundles))
        result = bench(bundles, config=config, progress=lambda phase, n: bar.advance(task, n) if phase == "row" else None)
    written = save_report(result, out / "bench")
    console.print(to_table(result, title=f"1/2 every format: {arch} @ {size}×{size} on digits, batch 1, {threads} threads, "
                                         f"top-1 on the held-out test split ({_images(test)} images)"))
    console.print(f"reports: {', '.join(str(p) for p in written.values())}")
    if compress:
        _compress(model, out, wanted, threads=threads, iterations=iterations)
    if detect:
        from .demo_detect import detection_demo

        detect_precisions = [p for p in parse_enum_list(Precision, precisions, option="precision")
                             if p is not Precision.INT8 and (full or p is Precision.FP32)]
        compress_formats = wanted if full else ([Format.OPENVINO] if Format.OPENVINO in wanted else wanted[:1])
        detection_demo(out, formats=wanted, precisions=detect_precisions, threads=threads, iterations=iterations,
                       compress_formats=compress_formats if compress_detector else [])
    if full if segment is None else segment:
        from ..data.detection import make_detection_dataset
        from .demo_segment import segmentation_demo

        segment_precisions = [p for p in parse_enum_list(Precision, precisions, option="precision")
                              if p is not Precision.INT8]
        # the detection demo's images (reused, not rewritten): their masks sit beside the boxes
        splits = make_detection_dataset(out / "detect" / "data") if detect else None
        segmentation_demo(out, formats=wanted, precisions=segment_precisions, threads=threads, iterations=iterations,
                          compress_formats=wanted if compress else [], splits=splits)


def _compress(model, out: Path, formats, *, threads: int, iterations: int) -> None:  # noqa: ANN001
    """Stage 2: the compression pipeline on the same model, benched against the uncompressed FP32 bundles."""
    from ..bench.report import to_table
    from ..compress.recipe import Recipe
    from .console import console
    from .training import run_pipeline_with_progress

    recipe = Recipe.model_validate({
        "name": "digits-edge",
        "stages": [{"prune": {"target_macs_ratio": 0.5}}, {"distill": {"epochs": 3}}],
        "export": {"formats": [f.value for f in formats], "precision": "int8"},
        "max_accuracy_drop": 0.01, "bench_threads": threads, "bench_iterations": iterations,
    })
    console.rule("compressing: prune 50 % of MACs → distil → INT8 per format")
    data = out / "data"
    result = run_pipeline_with_progress(
        recipe, model, out / "compressed", train=data / "train", val=data / "val", test=data / "test", overwrite=True
    )
    split = result.accuracy_split
    for stage in result.stages:
        console.print(f"  {stage.stage:<10} {stage.macs / 1e6:7.1f} MMACs  {stage.params / 1e6:6.2f} M params  "
                      f"top-1 ({split}) {stage.accuracy:.2%}")
    comparison = result.finetune_comparison
    if "fine-tune" in comparison:
        console.print(f"  recovery after pruning, top-1 ({split}) ({comparison['before']:.2%}): distillation "
                      f"{comparison['distill']:.2%}, plain fine-tuning {comparison['fine-tune']:.2%} (same epochs)")
    for fmt, verdict in result.int8_verdicts.items():
        console.print(f"  {fmt}: {verdict}")
    console.print(to_table(result.bench, title="2/2 compressed (prune + KD + INT8) vs uncompressed FP32, through each "
                                               f"engine, top-1 on the held-out {split} split"))
    console.print(f"report: {result.report_paths.get('markdown')}")


def _images(folder: Path) -> int:
    from ..data.folder import ImageFolder

    return len(ImageFolder.open(folder))


def _engine_installed(fmt) -> bool:  # noqa: ANN001
    from ..runtimes import DEFAULT_RUNTIME, available_runtimes

    return available_runtimes().get(DEFAULT_RUNTIME[fmt], False)


def _bf16_available() -> bool:
    """Whether OpenVINO computes bf16 on this CPU (AVX512-BF16 or AMX): then the demo shows a bf16 bundle too."""
    from ..errors import ConfigError
    from ..export.openvino import check_bf16_cpu

    try:
        check_bf16_cpu()
    except ConfigError:
        return False
    return True
