"""A failed command leaves nothing behind: outputs it created are removed when it raises.

Commands validate their inputs before they create anything; this is the second line, for
failures that only show during the work (a parity check, a lost camera, Ctrl-C). Only paths
that did not exist when the command started are removed: the highest missing ancestor of each
output, so `-o new/deeper/out` takes `new/` with it and an existing folder is never touched.
"""

from __future__ import annotations

import functools
import inspect
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def removes_outputs_on_failure(*parameters: str) -> Callable[[F], F]:
    """Decorate a command: on an exception, remove what the path `parameters` created.

    `typer.Exit` (a deliberate exit code after the work was done) keeps the outputs.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command)

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            paths = [bound.arguments.get(name) for name in parameters]
            created = [root for root in (first_missing(Path(p)) for p in paths if isinstance(p, (str, Path))) if root]
            try:
                return command(*args, **kwargs)
            except BaseException as exc:
                from click.exceptions import Exit

                if not isinstance(exc, Exit):
                    for root in created:
                        remove(root)
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def first_missing(path: Path) -> Path | None:
    """The highest ancestor of `path` (or `path` itself) that does not exist yet; None if it exists."""
    path = path.absolute()
    if path.exists():
        return None
    missing = path
    for parent in path.parents:
        if parent.exists():
            break
        missing = parent
    return missing


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def check_image_folder(path: Path, *, option: str, labels: tuple[str, ...] | list[str] | None = None,
                       decode: bool = True) -> None:
    """Fail before any output exists if `path` is not a readable labelled image folder.

    `decode` reads every image (parity and validation folders are read whole anyway); without
    it only the first image of each class is decoded.
    """
    from ..data.folder import ImageFolder, read_image
    from ..errors import DataError

    try:
        folder = ImageFolder.open(path, labels=labels)
        first_per_class: dict[int, Path] = {}
        for file, label in folder.samples:
            if decode:
                read_image(file)
            else:
                first_per_class.setdefault(label, file)
        for file in first_per_class.values():
            read_image(file)
    except DataError as exc:
        raise DataError(f"{option} {path}: {exc}") from None
