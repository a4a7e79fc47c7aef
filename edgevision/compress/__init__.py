"""Compression stages: each takes a TrainedModel and returns a smaller one plus a report.

`prune` → `distill` → `quantize` (per target format), or a `Pipeline` running a YAML `Recipe`.
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
from .calibration import CalibrationConfig as CalibrationConfig
from .onnx_input import OnnxModel as OnnxModel
from .pipeline import CompressResult as CompressResult
from .pipeline import Pipeline as Pipeline
from .quantize import quantize as quantize
from .recipe import Recipe as Recipe
from .recipe import load_recipe as load_recipe

__all__ = [
    "CalibrationConfig", "CompressResult", "OnnxModel", "Pipeline", "Recipe", "load_recipe", "quantize",
    "DistillConfig", "DistillReport", "LatencyConfig", "ModelStats", "PruneConfig", "PruneImportance", "PruneReport",
    "distill", "measure", "prune",
]
