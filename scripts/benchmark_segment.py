"""The segmentation section of `make bench`: the demo segmenter through every engine, the one-liner,
edgevision INT8 and edgevision full (prune + KD + INT8), with mIoU on the held-out test split.

Run from scripts/benchmark.py (`--models segmenter` runs this section alone); measured and judged by
scripts/benchmark_task.py (one test-split pass per bundle for mIoU, pixel accuracy and post-processing,
paired rounds against the one-liner for inference alone and end to end: letterbox preprocess + inference +
argmax, letterbox inverse and resize to the frame).
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace

from benchmark_models import Log
from benchmark_segment_models import (
    FULL_CANDIDATES,
    INT8_BENCH_MIOU,
    PARITY_IMAGES,
    VARIANTS,
    SegmentPlan,
    build_segment_bundles,
    prepare_segmenter,
)
from benchmark_task import TaskSection, measure_section

PLAN = SegmentPlan()
#: --quick: the segmenter for a smoke run (not for publishing).
QUICK_PLAN = replace(PLAN, train_epochs=1, distill_epochs=1)
LABELS = {v.key: v.label for v in VARIANTS}


def section(plan: SegmentPlan) -> TaskSection:
    """The segmentation rows, metric (mIoU, pixel accuracy beside it) and targets of `plan`."""
    return TaskSection(name="segmenter", metric="miou", metric_name="mIoU",
                       second=("pixel_accuracy", "pixel_accuracy"), labels=LABELS, full_candidates=FULL_CANDIDATES,
                       max_drop_pt={"int8_openvino": plan.max_int8_drop_pt}, max_full_drop_pt=plan.max_full_drop_pt,
                       min_full_speedup=plan.min_full_speedup_vs_oneliner)


def run_segmentation(args: argparse.Namespace, *, quiet_cores: float, log: Log) -> dict:
    """Build, measure and judge the segmentation rows; a JSON-able dict for benchmarks.json."""
    from edgevision.export.parity_segment import MIN_MASK_MIOU
    from edgevision.types import Precision

    plan = QUICK_PLAN if args.quick else PLAN
    log(f"{plan.title}: models")
    prepared = prepare_segmenter(plan, work=args.work, checkpoint=args.segmenter_checkpoint,
                                 data=args.segmenter_data, fresh=args.fresh, log=log)
    size = tuple(prepared.original.input_size)
    bundle_root = args.work / "bundles" / "segmenter"
    if bundle_root.exists():
        shutil.rmtree(bundle_root)
    log(f"{plan.title}: bundles at {size[0]}×{size[1]} (letterboxed), parity on {PARITY_IMAGES} val images")
    built = build_segment_bundles(prepared, bundle_root, calibration_images=args.calibration_images, log=log)
    parity = {"int8_bench_miou": INT8_BENCH_MIOU, "parity_images": PARITY_IMAGES,
              "fp32_parity_miou": MIN_MASK_MIOU[Precision.FP32]}
    return measure_section(section(plan), plan, prepared, built, args, quiet_cores=quiet_cores, parity=parity, log=log)
