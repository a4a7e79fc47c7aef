"""A small name → "module:Attr" registry: plug-ins are import strings, loaded on first use.

Used for runtimes, exporters, quantisers and task heads. Third parties add entries through
an entry-point group (e.g. ``edgevision.runtimes``) without edgevision importing them early.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError, UnknownNameError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to lazily imported objects; a duplicate name is an error."""

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points_read = entry_point_group is None

    def register(self, name: str, target: str) -> None:
        """Register `name` → "package.module:Attribute" (not imported until `get`)."""
        if ":" not in target:
            raise ConfigError(f"{self.kind} target {target!r} must look like 'package.module:Attr'.")
        if name in self._targets and self._targets[name] != target:
            raise ConfigError(
                f"{self.kind} {name!r} is already registered to {self._targets[name]}; "
                "pick another name."
            )
        self._targets[name] = target

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._targets)

    def target(self, name: str) -> str:
        self._read_entry_points()
        try:
            return self._targets[name]
        except KeyError:
            available = ", ".join(self.names()) or "none"
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}. Available: {available}."
                f"{did_you_mean(name, self._targets)}"
            ) from None

    def get(self, name: str) -> T:
        """Import and return the object registered as `name`."""
        if name not in self._loaded:
            module_name, _, attr = self.target(name).partition(":")
            module = importlib.import_module(module_name)
            self._loaded[name] = getattr(module, attr)
        return self._loaded[name]

    def module_attribute(self, name: str, attribute: str, default: object = None) -> object:
        """An attribute of the module `name` lives in (e.g. a format module's PRECISIONS)."""
        module_name = self.target(name).partition(":")[0]
        return getattr(importlib.import_module(module_name), attribute, default)

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in entry_points(group=self.entry_point_group or ""):
            if ep.name not in self._targets:
                self._targets[ep.name] = ep.value
