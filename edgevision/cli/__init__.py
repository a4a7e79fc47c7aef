"""The `edgevision` command. One module per subcommand, each a thin layer over the Python API.

Each module defines ``register(app: typer.Typer) -> None``; heavy imports happen inside the
command functions so `edgevision --help` stays instant and works without torch.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from ..errors import EdgeVisionError

#: Subcommand modules under edgevision.cli, in help order.
COMMAND_MODULES = ("train_demo", "export", "compress", "info", "bench", "run", "devices", "demo")

app = typer.Typer(
    name="edgevision",
    help="Make image-recognition models small, fast and correct on edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Make image-recognition models small, fast and correct on edge devices."""
    # OpenVINO's model converter starts its telemetry sender with multiprocessing's fork, and JAX (imported by
    # litert-torch for TFLite export) warns about any fork in the process. edgevision itself never forks (bench
    # rows are fresh subprocesses), so the warning only repeats a library's internals to the user.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a subcommand not built yet
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Entry point: EdgeVisionError becomes one red line and exit code 2, never a traceback."""
    from .console import print_error

    try:
        app()
    except EdgeVisionError as exc:
        print_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        print_error("Interrupted.")
        sys.exit(130)
