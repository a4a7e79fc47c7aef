"""Shared rich console and progress helpers for every subcommand."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import os
import sys

# Piped output (CI logs, `| tee`) would otherwise wrap wide tables at 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def print_error(error: object) -> None:
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)


def progress() -> Progress:
    """A progress bar with a spinner, count and elapsed time (for anything over a second)."""
    return Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
    )
