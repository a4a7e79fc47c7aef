"""One exception hierarchy for everything edgevision raises on purpose.

Every error message says what went wrong and how to fix it, in one line, so a CLI user
never needs a traceback from deep inside an engine.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeVisionError(Exception):
    """Root of every error edgevision raises deliberately."""


class ConfigError(EdgeVisionError, ValueError):
    """An option, recipe or profile value is invalid."""


class BundleError(EdgeVisionError):
    """A bundle directory is missing, incomplete or unreadable."""


class ManifestError(BundleError):
    """The bundle's edgevision.json is missing or does not validate."""


class ModelFileError(EdgeVisionError):
    """A model file (checkpoint, ONNX, IR, TFLite) is missing, corrupt or truncated."""


class InputError(EdgeVisionError, ValueError):
    """An array or image handed to a runtime does not match the bundle's input spec."""


class DataError(EdgeVisionError):
    """A data folder is missing, empty, or holds files that are not images."""


class UnknownNameError(EdgeVisionError, KeyError):
    """A registry lookup (runtime, format, architecture...) found no such name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class EngineNotInstalledError(EdgeVisionError, ImportError):
    """An optional engine package is not installed; the message names the extra."""


class ExportError(EdgeVisionError):
    """Converting a model to a deployable format failed."""


class ParityError(ExportError):
    """An exported model disagrees with its source beyond the allowed tolerance."""


class RuntimeEngineError(EdgeVisionError):
    """An engine failed to load or run a bundle."""


class CompressionError(EdgeVisionError):
    """A compression stage failed or broke the accuracy budget."""


class AccuracyBudgetError(CompressionError):
    """A compressed model lost more accuracy than `max_accuracy_drop` allows."""


class TrainingError(CompressionError):
    """A training stage could not run or resume: a failed rank, a checkpoint made by another run."""


class DeviceError(EdgeVisionError):
    """A device profile is invalid or no profile matches the board."""


class StreamError(EdgeVisionError):
    """A video source cannot be opened or read."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
