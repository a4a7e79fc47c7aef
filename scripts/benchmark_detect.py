"""The detection section of `make bench`: the demo detector through every engine, INT8 with and without
the head in float, and edgevision full (prune + KD + INT8 head-float), with mAP on the held-out test split.

Run from scripts/benchmark.py (`--models detector` runs this section alone); measured and judged by
scripts/benchmark_task.py (one test-split pass per bundle for mAP and post-processing, paired rounds
against the one-liner for inference alone and end to end: letterbox preprocess + inference + decode/NMS).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import replace

from benchmark_detect_models import (
    FULL_CANDIDATES,
    INT8_BENCH_MAP50,
    PARITY_IMAGES,
    VARIANTS,
    DetectPlan,
    PreparedDetector,
    build_detect_bundles,
    prepare_detector,
)
from benchmark_models import BuiltBundles
from benchmark_task import TaskSection, measure_section
from benchmark_task import choose_best as _choose_best
from benchmark_task import evaluate_targets as _evaluate_targets
from benchmark_task import plan_pairs as plan_pairs  # noqa: PLC0414 - the section's pairs, as tests read them

PLAN = DetectPlan()
#: --quick: the detector for a smoke run (not for publishing).
QUICK_PLAN = replace(PLAN, train_epochs=1, distill_epochs=1)
LABELS = {v.key: v.label for v in VARIANTS}
Log = Callable[[str], None]


def section(plan: DetectPlan) -> TaskSection:
    """The detection rows, metric (COCO mAP50-95, mAP50 beside it) and targets of `plan`."""
    return TaskSection(name="detector", metric="map50_95", metric_name="mAP50-95", second=("map50", "mAP50"),
                       labels=LABELS, full_candidates=FULL_CANDIDATES, max_drop_pt=plan.max_head_float_drop_pt,
                       max_full_drop_pt=plan.max_full_drop_pt, min_full_speedup=plan.min_full_speedup_vs_oneliner)


def run_detection(args: argparse.Namespace, *, quiet_cores: float, log: Log) -> dict:
    """Build, measure and judge the detection rows; a JSON-able dict for benchmarks.json."""
    plan = QUICK_PLAN if args.quick else PLAN
    log(f"{plan.title}: models")
    prepared = prepare_detector(plan, work=args.work, checkpoint=args.detector_checkpoint, data=args.detector_data,
                                fresh=args.fresh, log=log)
    size = tuple(prepared.original.input_size)
    bundle_root = args.work / "bundles" / "detector"
    if bundle_root.exists():
        shutil.rmtree(bundle_root)
    log(f"{plan.title}: bundles at {size[0]}×{size[1]} (letterboxed), parity on {PARITY_IMAGES} val images")
    built = build_detect_bundles(prepared, bundle_root, calibration_images=args.calibration_images, log=log)
    return measure_detection(plan, prepared, built, args, quiet_cores=quiet_cores, log=log)


def measure_detection(plan: DetectPlan, prepared: PreparedDetector, built: BuiltBundles, args: argparse.Namespace, *,
                      quiet_cores: float, log: Log) -> dict:
    """mAP, paired latency, MACs and targets of the built bundles, as the JSON-able result."""
    parity = {"int8_bench_map50": INT8_BENCH_MAP50, "parity_images": PARITY_IMAGES, "fp32_parity_map50": _fp32_parity()}
    return measure_section(section(plan), plan, prepared, built, args, quiet_cores=quiet_cores, parity=parity, log=log)


def choose_best(rows: dict[str, dict], ratios: dict[str, dict]) -> str | None:
    """The detection full-pipeline row to show (see benchmark_task.choose_best)."""
    return _choose_best(rows, ratios, candidates=FULL_CANDIDATES, metric="map50_95")


def evaluate_targets(plan: DetectPlan, result: dict) -> list[dict]:
    """The issue's detection targets, each with what was measured and whether it was met."""
    return _evaluate_targets(section(plan), result)


def _fp32_parity() -> float:
    from edgevision.export.parity_detect import MIN_DETECTION_MAP50
    from edgevision.types import Precision

    return MIN_DETECTION_MAP50[Precision.FP32]
