"""The detection section of `make bench`: the demo detector through every engine, INT8 with and without
the head in float, and edgevision full (prune + KD + INT8 head-float), with mAP on the held-out test split.

Run from scripts/benchmark.py (`--models detector` runs this section alone). Accuracy and the
post-processing column come from one pass over the test split per bundle (`edgevision.bench.bench`,
each row in a worker process: letterbox preprocess → engine → decode + NMS, COCO mAP). Latency comes
from paired rounds (scripts/benchmark_paired.py): each row's engine in a worker process of its own,
timed for inference alone (a random input) and end to end (test frames: preprocess + inference +
decode/NMS), each row paired with the one-liner in every round; × one-liner is the median of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmark_detect_models import (
    FULL_CANDIDATES,
    INT8_BENCH_MAP50,
    PARITY_IMAGES,
    VARIANTS,
    DetectPlan,
    PreparedDetector,
    build_detect_bundles,
    plan_dict,
    prepare_detector,
)
from benchmark_models import BuiltBundles, run_paired_job
from benchmark_paired import END_TO_END_IMAGES

from edgevision.bench import BenchConfig, bench
from edgevision.bench.paired import RatioStats, pair_key

REPO = Path(__file__).resolve().parent.parent
PLAN = DetectPlan()
#: --quick: the detector for a smoke run (not for publishing).
QUICK_PLAN = replace(PLAN, train_epochs=1, distill_epochs=1)
#: --quick: mAP on this many test images only (a smoke run's figures are not for publishing).
QUICK_ACCURACY_IMAGES = 50
#: The one-liner every row is paired with, and the suffix that names a row's end-to-end timer.
REFERENCE = "oneliner"
E2E = "@e2e"
LABELS = {v.key: v.label for v in VARIANTS}
Log = Callable[[str], None]


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
    size = tuple(prepared.original.input_size)
    keys = [v.key for v in VARIANTS if v.key in built.bundles]

    accuracy = measure_accuracy(built, keys, test=prepared.splits.test, threads=args.threads,
                                max_images=QUICK_ACCURACY_IMAGES if args.quick else None, log=log)

    pairs = plan_pairs(keys)
    log(f"{plan.title}: latency, {args.rounds} paired rounds of {len(pairs)} pairs × {args.iterations} calls")
    timing = run_paired(built, keys, pairs, args, test=prepared.splits.test, quiet_cores=quiet_cores) if pairs else {}
    rows = timing.get("rows", {})
    ratios = {name: {"reference": p["reference"], "candidate": p["candidate"],
                     **RatioStats.from_times(p["reference_ms"], p["candidate_ms"]).to_dict()}
              for name, p in timing.get("pairs", {}).items()}
    macs = {"original": _macs(prepared.original, size),
            "compressed": _macs(prepared.compressed, size) if prepared.compressed is not None else None}
    for key, row in rows.items():
        row["macs"] = macs["compressed" if key in FULL_CANDIDATES else "original"]
        row.update(accuracy.get(key) or {})
    best = choose_best(rows, ratios)
    for key, row in rows.items():
        e2e = row.get("end_to_end", {}).get("p50_ms")
        log(f"    {key:18s} inference p50 {row['p50_ms']:7.3f} ms  end to end p50 {_ms(e2e)}  "
            f"mAP50-95 {_num(row.get('map50_95'))}")
    result = {
        "title": plan.title, "plan": plan_dict(plan), "input_size": list(size), "accuracy_split": "test",
        "accuracy_images": next((a["images"] for a in accuracy.values() if a), None), "rows": rows,
        "ratios": ratios, "rounds": timing.get("rounds", []), "best_engine": best, "macs": macs,
        "labels": LABELS, "full_candidates": list(FULL_CANDIDATES), "compression": prepared.compression,
        "recovery": prepared.recovery,
        "provenance": prepared.provenance, "parity": built.parity, "failures": built.failures,
        "int8_bench_map50": INT8_BENCH_MAP50, "parity_images": PARITY_IMAGES, "fp32_parity_map50": _fp32_parity(),
        "calibration_images": args.calibration_images, "frame_size": _frame_size(prepared.splits.test),
        "end_to_end_images": END_TO_END_IMAGES,
        "seconds": {**{k: round(v, 1) for k, v in prepared.seconds.items()}, "bundles": round(built.seconds, 1)},
    }
    result["targets"] = evaluate_targets(plan, result)
    for target in result["targets"]:
        log(f"  {'MET   ' if target['met'] else 'MISSED'} {target['name']}: {target['measured']} "
            f"(target {target['target']})")
    return result


def measure_accuracy(built: BuiltBundles, keys: list[str], *, test: Path, threads: int, max_images: int | None,
                     log: Log) -> dict[str, dict | None]:
    """mAP, post-processing and end-to-end per image through each row's engine: one pass over the test split."""
    if not keys:
        return {}
    log(f"  mAP through each engine on {test} (test split{f', first {max_images} images' if max_images else ''})")
    report = bench([built.bundles[k] for k in keys],
                   config=BenchConfig(threads=(threads,), iterations=10, warmup=2, data=test, split_name="test",
                                      max_images=max_images))
    return {k: _accuracy(row) for k, row in zip(keys, report.rows, strict=True)}


def _accuracy(row: object) -> dict | None:
    """mAP and the post-processing / end-to-end medians of one test-split pass (None if not measured)."""
    if getattr(row, "accuracy", None) is None:
        return None
    post, e2e = row.postprocess, row.end_to_end
    return {"map50_95": row.accuracy, "map50": row.metrics.get("mAP50"), "images": row.accuracy_images,
            "post_p50_ms": post.p50_ms if post else None, "post_p90_ms": post.p90_ms if post else None,
            "test_pass_e2e_p50_ms": e2e.p50_ms if e2e else None}


def _fp32_parity() -> float:
    from edgevision.export.parity_detect import MIN_DETECTION_MAP50
    from edgevision.types import Precision

    return MIN_DETECTION_MAP50[Precision.FP32]


def _frame_size(split: Path) -> list[int]:
    """(height, width) of the split's first image: the camera frame the end-to-end timer letterboxes."""
    from edgevision.data.coco import CocoDetections

    first = CocoDetections.open(split, check_images=False).targets[0]
    return [first.height, first.width]


def _macs(model: object, size: tuple[int, int]) -> int | None:
    from edgevision.compress.measure import count_macs_params

    try:
        return count_macs_params(model.module, size)[0]
    except Exception:  # noqa: BLE001 - a counter that cannot trace the model leaves the column empty
        return None


def plan_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """Every row against the one-liner, for inference alone and end to end."""
    if REFERENCE not in keys:
        return []
    others = [k for k in keys if k != REFERENCE]
    return [(REFERENCE, k) for k in others] + [(REFERENCE + E2E, k + E2E) for k in others]


def choose_best(rows: dict[str, dict], ratios: dict[str, dict]) -> str | None:
    """The full-pipeline engine fastest end to end among those whose mAP was measured: the highest paired
    median × one-liner (end to end), or, without pairs, the lowest end-to-end p50."""
    candidates = [k for k in FULL_CANDIDATES if k in rows]
    eligible = [k for k in candidates if rows[k].get("map50_95") is not None] or candidates
    paired = {k: ratios[pair_key(REFERENCE + E2E, k + E2E)]["median"] for k in eligible
              if pair_key(REFERENCE + E2E, k + E2E) in ratios}
    if paired:
        return max(paired, key=paired.__getitem__)
    timed = [k for k in eligible if rows[k].get("end_to_end")]
    return min(timed, key=lambda k: rows[k]["end_to_end"]["p50_ms"]) if timed else None


def run_paired(built: BuiltBundles, keys: list[str], pairs: list[tuple[str, str]], args: argparse.Namespace, *,
               test: Path, quiet_cores: float) -> dict:
    """scripts/benchmark_paired.py in a subprocess: one worker per row, inference and end-to-end timers."""
    rows = {k: {"bundle": str(built.bundles[k].path), "end_to_end_data": str(test)} for k in keys}
    job = {"rows": rows, "pairs": pairs, "threads": args.threads, "rounds": args.rounds,
           "iterations": args.iterations, "warmup": args.warmup, "block_warmup": args.block_warmup,
           "quiet_wait_s": args.quiet_wait, "quiet_cores": quiet_cores, "pause_s": 0.1}
    return run_paired_job(job, work=args.work, name="detector", title="the detector")


def evaluate_targets(plan: DetectPlan, result: dict) -> list[dict]:
    """The issue's detection targets, each with what was measured and whether it was met."""
    rows, ratios, best = result["rows"], result["ratios"], result["best_engine"]
    fp32 = rows.get("eager", {}).get("map50_95")
    targets = []

    def add(name: str, target: str, measured: float | None, met: bool, unit: str, spread: dict | None = None,
            why: str = "") -> None:
        shown = (why or "not measured") if measured is None else f"{measured:.2f}{unit}"
        if spread is not None:
            shown += f" (IQR {spread['q1']:.2f}–{spread['q3']:.2f}, range {spread['min']:.2f}–{spread['max']:.2f})"
        targets.append({"name": name, "target": target, "measured": shown, "value": measured, "met": bool(met),
                        "spread": spread})

    def drop(key: str | None) -> float | None:
        found = None if key is None else rows.get(key, {}).get("map50_95")
        return None if fp32 is None or found is None else (fp32 - found) * 100.0

    def why_missing(key: str | None) -> str:
        if key is None:
            return "not measured: no full-pipeline bundle was built"
        return f"not measured: {result['failures'].get(key, 'no mAP')}"

    for key, limit in plan.max_head_float_drop_pt.items():
        value = drop(key)
        add(f"{LABELS[key]}: mAP50-95 drop vs FP32", f"≤ {limit:g} pt", value,
            value is not None and value <= limit + 1e-9, " pt", why=why_missing(key) if value is None else "")
    found = None if best is None else ratios.get(pair_key(REFERENCE + E2E, best + E2E))
    value = None if found is None else found["median"]
    needed = plan.min_full_speedup_vs_oneliner
    add("edgevision full vs the one-liner, end to end", f"≥ {needed:g}× (paired median)", value,
        value is not None and value >= needed, "×", found, why=why_missing(best) if value is None else "")
    value = drop(best)
    add("edgevision full: mAP50-95 drop vs FP32", f"≤ {plan.max_full_drop_pt:g} pt", value,
        value is not None and value <= plan.max_full_drop_pt + 1e-9, " pt",
        why=why_missing(best) if value is None else "")
    return targets


def _ms(value: float | None) -> str:
    return "      —" if value is None else f"{value:7.3f} ms"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
