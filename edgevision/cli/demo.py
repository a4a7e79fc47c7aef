"""`edgevision demo`: the whole job on the digits default — train, export, bench, print the table."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Working folder (data, model, bundles, bench)."),
    arch: str = typer.Option("resnet18", help="torchvision architecture to train."),
    size: int = typer.Option(32, help="Input size (pixels, square)."),
    epochs: int = typer.Option(6, help="Training epochs."),
    formats: str = typer.Option("onnx,openvino,tflite", help="Formats to export (those whose engine is installed)."),
    precisions: str = typer.Option("fp32,fp16", help="Precisions to export."),
    threads: int = typer.Option(2, help="Threads for every engine in the bench."),
    iterations: int = typer.Option(200, help="Timed calls per bench row."),
) -> None:
    """Train the digits model, export every format × precision, bench all against the torch reference."""
    import shutil

    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..export import ParityConfig, export
    from ..model import TrainedModel
    from ..types import Format, Precision, parse_enum_list
    from .console import console, progress
    from .training import train_with_progress

    model_path, report = train_with_progress(out, arch=arch, size=size, epochs=epochs, threads=threads, seed=0)
    console.print(f"[green]✓[/] trained {arch}: val top-1 {report.val_accuracy:.2%} in {report.seconds:.0f} s")
    model = TrainedModel.load(model_path)
    val = out / "data" / "val"
    wanted = [f for f in parse_enum_list(Format, formats, option="format") if _engine_installed(f)]
    skipped = set(parse_enum_list(Format, formats, option="format")) - set(wanted)
    for fmt in sorted(skipped):
        console.print(f"[yellow]skipping {fmt.value}: its engine is not installed[/]")
    jobs = [(Format.TORCH, Precision.FP32)] + [(f, p) for f in wanted for p in parse_enum_list(Precision, precisions, option="precision")]
    bundles_dir = out / "bundles"
    shutil.rmtree(bundles_dir, ignore_errors=True)
    bundles = []
    with progress() as bar:
        task = bar.add_task("exporting", total=len(jobs))
        for fmt, prec in jobs:
            bar.update(task, description=f"exporting {fmt.value} {prec.value} (+ parity on {val.name})")
            name = "torch-reference" if fmt is Format.TORCH else f"{fmt.value}-{prec.value}"
            bundles.append(export(model, bundles_dir / name, format=fmt, precision=prec, parity=ParityConfig(data=val)))
            bar.advance(task)
    for bundle in bundles[1:]:
        p = bundle.manifest.parity
        console.print(f"  {bundle.path.name:<16} parity: {p.top1_agreement:.2%} of {p.samples} val labels agree, "
                      f"max |Δlogit| {p.max_abs_diff:.2g} ({p.engine}, {p.engine_precision})")
    config = BenchConfig(threads=(threads,), iterations=iterations, warmup=20, data=val)
    with progress() as bar:
        task = bar.add_task("benchmarking", total=len(bundles))
        result = bench(bundles, config=config, progress=lambda phase, n: bar.advance(task, n) if phase == "row" else None)
    written = save_report(result, out / "bench")
    console.print(to_table(result, title=f"edgevision demo: {arch} @ {size}×{size} on digits, batch 1, {threads} threads"))
    console.print(f"reports: {', '.join(str(p) for p in written.values())}")


def _engine_installed(fmt) -> bool:  # noqa: ANN001
    from ..runtimes import DEFAULT_RUNTIME, available_runtimes

    return available_runtimes().get(DEFAULT_RUNTIME[fmt], False)
