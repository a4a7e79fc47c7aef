"""What an engine really computes in, as read back from the engine's own plan of the model.

A bundle's manifest says what the *file* holds; engines then decide for themselves: ONNX Runtime
casts FP16 weights back to fp32 on CPUs without fp16 kernels, OpenVINO runs f32 layers in bf16 on
CPUs that have it, a QDQ model runs in int8 only if the optimiser fuses it. Each backend counts its
compute layers (convolutions, matrix products) by the precision the engine chose for them, and the
summary is what bench tables and parity reports show. Where an engine cannot say: "unknown".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

UNKNOWN = "unknown"
#: Display order of a mixed summary after the leading (most common) precision.
_ORDER = ("int8", "fp16", "bf16", "fp32", "fp64")

_ALIASES = {
    "i8": "int8", "u8": "int8", "int8": "int8", "uint8": "int8", "i4": "int8", "u4": "int8",
    "f32": "fp32", "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "f16": "fp16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "f64": "fp64", "fp64": "fp64", "float64": "fp64", "double": "fp64",
}


def normalise(name: str) -> str | None:
    """An engine's type name ("u8", "f32", "float16", "FLOAT") in edgevision's words, or None if not numeric."""
    return _ALIASES.get(str(name).strip().lower())


@dataclass(frozen=True)
class EnginePrecision:
    """Compute layers per precision as the engine planned them, and where that was read."""

    layers: Mapping[str, int] = field(default_factory=dict)  # "int8" / "fp32" / "bf16" / "fp16" → layer count
    source: str = ""  # what was read: "OpenVINO runtime model", "ONNX Runtime optimised graph", ...
    note: str = ""  # e.g. "fp16 weights cast to fp32 by the engine"

    @classmethod
    def unknown(cls, why: str) -> EnginePrecision:
        return cls({}, source=why)

    @property
    def summary(self) -> str:
        """"int8", "int8+fp32" (mixed, most common first), "fp32", "bf16"... or "unknown"."""
        counted = {name: n for name, n in self.layers.items() if n > 0}
        if not counted:
            return UNKNOWN
        rank = {name: i for i, name in enumerate(_ORDER)}
        ordered = sorted(counted, key=lambda name: (name != "int8", -counted[name], rank.get(name, len(rank))))
        return "+".join(ordered)

    def to_dict(self) -> dict[str, object]:
        return {"summary": self.summary, "layers": dict(self.layers), "source": self.source, "note": self.note}


def count(precisions: list[str | None]) -> dict[str, int]:
    """Tally normalised precision names, skipping ones no engine type maps to."""
    tally: dict[str, int] = {}
    for name in precisions:
        if name:
            tally[name] = tally.get(name, 0) + 1
    return tally
