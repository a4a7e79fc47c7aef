"""`edgevision devices`: which board this is, what its profile recommends, which runtimes work here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)


def devices(
    device: str = typer.Option("auto", "--device", "-d", help="'auto' to detect, a profile name, or a profile YAML path."),
    list_profiles: bool = typer.Option(False, "--list", help="List every bundled profile instead."),
) -> None:
    """Detect the device, show its profile's settings and the runtimes installed and usable here."""
    from rich.markup import escape
    from rich.table import Table

    from ..devices import bundled_profiles, opencv_info, resolve_device, runtime_support
    from .console import console

    if list_profiles:
        table = Table(title="Device profiles", title_justify="left")
        for column in ("name", "title", "runtimes (preferred first)", "precisions", "threads"):
            table.add_column(column)
        for p in bundled_profiles():
            table.add_row(p.name, p.title, ", ".join(p.runtimes), ", ".join(x.value for x in p.precisions), _threads(p.threads))
        console.print(table)
        return

    profile, reasons = resolve_device(device)
    how = "Detected" if device == "auto" else "Profile"
    console.print(f"[bold]{how}:[/] {profile.name} — {profile.title}")
    for reason in reasons:
        console.print(f"  • {escape(reason)}", highlight=False)

    settings = Table(title="Profile settings", show_header=False, title_justify="left")
    settings.add_column(style="bold")
    settings.add_column()
    settings.add_row("runtimes (preferred first)", ", ".join(profile.runtimes))
    settings.add_row("precisions worth using", ", ".join(p.value for p in profile.precisions))
    settings.add_row("threads", _threads(profile.threads))
    if profile.notes:
        settings.add_row("notes", escape(profile.notes.strip()))
    console.print(settings)

    runtimes = Table(title="Runtimes on this machine", title_justify="left")
    for column in ("runtime", "installed", "runs formats", "profile rank", "status"):
        runtimes.add_column(column)
    preferred = {name: i + 1 for i, name in enumerate(profile.runtimes)}
    for support in sorted(runtime_support(), key=lambda s: (preferred.get(s.name, len(preferred) + 1), s.name)):
        rank = str(preferred[support.name]) if support.name in preferred else "—"
        status = "[green]usable[/]" if support.usable else f"[yellow]{escape(support.problem)}[/]"
        runtimes.add_row(
            support.name, "yes" if support.installed else "no", ", ".join(sorted(f.value for f in support.formats)),
            rank, status,
        )
    console.print(runtimes)
    cv = opencv_info()
    colour = "green" if cv.installed and not cv.shadows else "yellow"
    console.print(f"[bold]OpenCV:[/] [{colour}]{escape(cv.describe().removeprefix('OpenCV').strip())}[/]", highlight=False)


def _threads(threads: int | None) -> str:
    return "all cores" if threads is None else str(threads)
