"""`enum.StrEnum` for Python 3.10 (JetPack 6's Python); the standard one from 3.11 on."""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    from enum import StrEnum as StrEnum
else:  # pragma: no cover - exercised by the Python 3.10 device check

    class StrEnum(str, enum.Enum):
        """Members are strings; str() and format() give the value, as in 3.11."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)

        @staticmethod
        def _generate_next_value_(name: str, start: int, count: int, last_values: list) -> str:
            return name.lower()
