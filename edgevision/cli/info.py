"""`edgevision info BUNDLE`: print a bundle's manifest in a readable form."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(
    bundle: Path = typer.Argument(..., help="Bundle directory (holds edgevision.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw manifest JSON."),
) -> None:
    """Show what a bundle holds: format, precision, input, preprocessing, labels, parity."""
    from rich.table import Table

    from ..bundle import Bundle
    from .console import console

    loaded = Bundle.load(bundle)
    m = loaded.manifest
    if as_json:
        console.print_json(m.model_dump_json())
        return
    table = Table(title=f"{loaded.path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    p = m.preprocess
    rows = [
        ("name", m.name),
        ("format / precision", f"{m.format.value} / {m.precision.value}"),
        ("files", ", ".join(m.model_files) + f"  ({loaded.size_bytes / 1e6:.2f} MB)"),
        ("input", f"{m.input.name} {list(m.input.shape)} {m.input.layout.value} {m.input.dtype}"),
        ("preprocess", f"{p.color_order.value}, {p.resize.value} → {p.size[0]}×{p.size[1]} {p.interpolation}, "
                       f"×{p.scale:.5g}, mean {list(p.mean)}, std {list(p.std)}"),
        ("labels", f"{m.num_classes}: " + ", ".join(m.labels[:10]) + (" …" if len(m.labels) > 10 else "")),
        ("source", f"{m.source.architecture or '?'} sha256 {m.source.sha256[:16]}…"),
        ("versions", ", ".join(f"{k} {v}" for k, v in m.versions.items())),
    ]
    if m.parity:
        q = m.parity
        verdict = "[green]passed[/]" if q.passed else "[red]FAILED[/]"
        rows.append(("parity", f"{verdict}: top-1 agreement {q.top1_agreement:.2%}, max |Δ| {q.max_abs_diff:.3g} "
                               f"on {q.data} via {q.engine} ({q.engine_precision})"))
    else:
        rows.append(("parity", "[yellow]not checked[/]"))
    for stage, summary in m.compression.items():
        rows.append((f"compression: {stage}", summary))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
