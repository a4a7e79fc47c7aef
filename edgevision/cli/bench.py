"""`edgevision bench`: bundles × runtimes × threads, as a table, JSON, CSV and a plot."""

from __future__ import annotations

from pathlib import Path

import typer

from .outputs import removes_outputs_on_failure


def register(app: typer.Typer) -> None:
    app.command("bench")(removes_outputs_on_failure("out")(bench_command))


def bench_command(
    bundles: list[Path] = typer.Argument(..., help="Bundle directories to compare."),
    runtime: str = typer.Option(None, "--runtime", "-r", help="Comma-separated runtimes (default: each bundle's own)."),
    threads: str = typer.Option("default", "--threads", "-t", help="Comma-separated thread counts, or 'default'."),
    data: Path = typer.Option(
        None, "--data", help="ImageFolder for top-1 through each engine, or a data root with a held-out test/ (then test/)."
    ),
    split_name: str = typer.Option(
        None, "--split-name", help="What --data is, for the report's top-1 column (default: the folder's name)."
    ),
    warmup: int = typer.Option(10, help="Untimed calls before timing."),
    iterations: int = typer.Option(100, "--iterations", "-n", help="Timed calls per row."),
    batch_size: int = typer.Option(1, "--batch-size", "-b"),
    baseline: str = typer.Option(None, help="Bundle name the speed-up is measured against (default: first row)."),
    device: str = typer.Option(None, "--device", help="auto or a profile name/YAML: picks runtimes and threads."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for bench.json, bench.csv, bench.md, latency.png."),
) -> None:
    """Measure latency percentiles, throughput, peak memory, size and accuracy side by side."""
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from .console import console, progress

    if data is not None:  # a broken folder fails now, not after every row was timed
        from ..data.splits import resolve_measured_folder
        from .outputs import check_image_folder

        check_image_folder(resolve_measured_folder(data)[0], option="--data")
    config = BenchConfig(
        warmup=warmup, iterations=iterations, batch_size=batch_size, threads=parse_threads(threads), data=data,
        split_name=split_name,
    )
    runtimes = [r.strip() for r in runtime.split(",") if r.strip()] if runtime else None
    profile = None
    if device:
        from ..devices import resolve_device

        profile, reasons = resolve_device(device)
        console.print(f"device profile [bold]{profile.name}[/] ({profile.title}): {'; '.join(reasons)}")
    with progress() as bar:
        task = bar.add_task("benchmarking", total=None)

        def tick(phase: str, amount: int) -> None:
            bar.update(task, description=f"benchmarking ({phase})", advance=amount if phase == "row" else 0)

        from ..bench import plan_rows
        from ..bundle import Bundle

        loaded = [Bundle.load(b) for b in bundles]
        thread_counts = len(config.threads) if not profile or profile.threads is None or threads != "default" else 1
        bar.update(task, total=len(plan_rows(loaded, runtimes, device=profile)) * thread_counts)
        report = bench(loaded, runtimes=runtimes, config=config, baseline=baseline, device=profile, progress=tick)
    console.print(to_table(report))
    if out:
        written = save_report(report, out)
        console.print("wrote " + ", ".join(str(p) for p in written.values()))


def parse_threads(text: str) -> tuple[int | None, ...]:
    from ..errors import ConfigError

    values: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "default":
            values.append(None)
        elif part.isdigit() and int(part) > 0:
            values.append(int(part))
        else:
            raise ConfigError(f"--threads takes positive integers or 'default', got {part!r}.")
    return tuple(values) or (None,)
