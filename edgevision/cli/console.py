"""Shared rich console and progress helpers for every subcommand."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console()
err_console = Console(stderr=True)


def print_error(error: object) -> None:
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)


def progress() -> Progress:
    """A progress bar with a spinner, count and elapsed time (for anything over a second)."""
    return Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
    )
