"""Compression stages: each takes a TrainedModel and returns a smaller one plus a report.

Importing this package loads torch only when a stage runs.
"""

from .distill import DistillConfig as DistillConfig
from .distill import DistillReport as DistillReport
from .distill import distill as distill
from .measure import LatencyConfig as LatencyConfig
from .measure import ModelStats as ModelStats
from .measure import measure as measure
from .prune import PruneConfig as PruneConfig
from .prune import PruneImportance as PruneImportance
from .prune import PruneReport as PruneReport
from .prune import prune as prune

__all__ = [
    "DistillConfig", "DistillReport", "LatencyConfig", "ModelStats", "PruneConfig", "PruneImportance", "PruneReport",
    "distill", "measure", "prune",
]
