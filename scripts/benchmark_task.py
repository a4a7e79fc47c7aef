"""What the detection and segmentation sections of `make bench` share: measure the built bundles and judge
the issue's targets from the measurements.

Accuracy and the post-processing column come from one pass over the test split per bundle
(`edgevision.bench.bench`, each row in a worker process: letterbox preprocess → engine → the task's
post-processing, scored against the split's labels). Latency comes from paired rounds
(scripts/benchmark_paired.py): each row's engine in a worker process of its own, timed for inference
alone (a random input) and end to end (test frames: preprocess + inference + post-processing), each row
paired with the one-liner in every round; × one-liner is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from benchmark_models import BuiltBundles, Log, run_paired_job
from benchmark_paired import END_TO_END_IMAGES
from benchmark_task_models import CompressPlan, PreparedModel, plan_dict

from edgevision.bench import BenchConfig, bench
from edgevision.bench.paired import RatioStats, pair_key

#: The one-liner every row is paired with, and the suffix that names a row's end-to-end timer.
REFERENCE = "oneliner"
E2E = "@e2e"
#: --quick: accuracy on this many test images only (a smoke run's figures are not for publishing).
QUICK_ACCURACY_IMAGES = 50


@dataclass(frozen=True)
class TaskSection:
    """What one task's section measures and judges: its metric, its rows and the issue's targets."""

    name: str  # the paired job's file name ("detector", "segmenter")
    metric: str  # the accuracy key in a row ("map50_95", "miou")
    metric_name: str  # how the doc and the log say it ("mAP50-95", "mIoU")
    second: tuple[str, str]  # (key in a row, key in the bench row's metrics): mAP50, pixel accuracy
    labels: dict[str, str]  # row key → label, in table order
    full_candidates: tuple[str, ...]  # the edgevision full rows, one per engine
    max_drop_pt: dict[str, float]  # row → most accuracy it may lose vs PyTorch eager FP32, in points
    max_full_drop_pt: float
    min_full_speedup: float  # edgevision full vs the one-liner, end to end, paired median


def measure_section(section: TaskSection, plan: CompressPlan, prepared: PreparedModel, built: BuiltBundles,
                    args: argparse.Namespace, *, quiet_cores: float, parity: dict, log: Log) -> dict:
    """Accuracy, paired latency, MACs and targets of the built bundles, as the JSON-able result.

    `parity`: the section's parity settings, kept in the result for the doc (floors, images read).
    """
    size = tuple(prepared.original.input_size)
    keys = [k for k in section.labels if k in built.bundles]
    test = prepared.splits.test
    accuracy = measure_accuracy(section, built, keys, test=test, threads=args.threads,
                                max_images=QUICK_ACCURACY_IMAGES if args.quick else None, log=log)

    pairs = plan_pairs(keys)
    log(f"{plan.title}: latency, {args.rounds} paired rounds of {len(pairs)} pairs × {args.iterations} calls")
    timing = run_paired(section, built, keys, pairs, args, test=test, quiet_cores=quiet_cores) if pairs else {}
    rows = timing.get("rows", {})
    ratios = {name: {"reference": p["reference"], "candidate": p["candidate"],
                     **RatioStats.from_times(p["reference_ms"], p["candidate_ms"]).to_dict()}
              for name, p in timing.get("pairs", {}).items()}
    macs = {"original": _macs(prepared.original, size),
            "compressed": _macs(prepared.compressed, size) if prepared.compressed is not None else None}
    for key, row in rows.items():
        row["macs"] = macs["compressed" if key in section.full_candidates else "original"]
        row.update(accuracy.get(key) or {})
    best = choose_best(rows, ratios, candidates=section.full_candidates, metric=section.metric)
    for key, row in rows.items():
        e2e = row.get("end_to_end", {}).get("p50_ms")
        log(f"    {key:18s} inference p50 {row['p50_ms']:7.3f} ms  end to end p50 {_ms(e2e)}  "
            f"{section.metric_name} {_num(row.get(section.metric))}")
    result = {
        "title": plan.title, "plan": plan_dict(plan), "input_size": list(size), "accuracy_split": "test",
        "accuracy_images": next((a["images"] for a in accuracy.values() if a), None), "rows": rows,
        "ratios": ratios, "rounds": timing.get("rounds", []), "best_engine": best, "macs": macs,
        "labels": section.labels, "full_candidates": list(section.full_candidates),
        "compression": prepared.compression, "recovery": prepared.recovery,
        "provenance": prepared.provenance, "parity": built.parity, "failures": built.failures, **parity,
        "calibration_images": args.calibration_images, "frame_size": frame_size(test),
        "end_to_end_images": END_TO_END_IMAGES,
        "seconds": {**{k: round(v, 1) for k, v in prepared.seconds.items()}, "bundles": round(built.seconds, 1)},
    }
    result["targets"] = evaluate_targets(section, result)
    for target in result["targets"]:
        log(f"  {'MET   ' if target['met'] else 'MISSED'} {target['name']}: {target['measured']} "
            f"(target {target['target']})")
    return result


def measure_accuracy(section: TaskSection, built: BuiltBundles, keys: list[str], *, test: Path, threads: int,
                     max_images: int | None, log: Log) -> dict[str, dict | None]:
    """The metric, post-processing and end-to-end per image through each row's engine: one pass over the test split."""
    if not keys:
        return {}
    log(f"  {section.metric_name} through each engine on {test} (test split"
        f"{f', first {max_images} images' if max_images else ''})")
    report = bench([built.bundles[k] for k in keys],
                   config=BenchConfig(threads=(threads,), iterations=10, warmup=2, data=test, split_name="test",
                                      max_images=max_images))
    return {k: accuracy_of(section, row) for k, row in zip(keys, report.rows, strict=True)}


def accuracy_of(section: TaskSection, row: object) -> dict | None:
    """The metrics and the post-processing / end-to-end medians of one test-split pass (None if not measured)."""
    if getattr(row, "accuracy", None) is None:
        return None
    post, e2e = row.postprocess, row.end_to_end
    second, measured_as = section.second
    return {section.metric: row.accuracy, second: row.metrics.get(measured_as), "images": row.accuracy_images,
            "post_p50_ms": post.p50_ms if post else None, "post_p90_ms": post.p90_ms if post else None,
            "test_pass_e2e_p50_ms": e2e.p50_ms if e2e else None}


def frame_size(split: Path) -> list[int]:
    """(height, width) of the split's first image: the camera frame the end-to-end timer letterboxes."""
    if (split / "annotations.json").is_file():
        from edgevision.data.coco import CocoDetections

        first = CocoDetections.open(split, check_images=False).targets[0]
        return [first.height, first.width]
    from edgevision.data.masks import MaskFolder

    return list(MaskFolder.open(split).image(0).shape[:2])


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


def choose_best(rows: dict[str, dict], ratios: dict[str, dict], *, candidates: tuple[str, ...], metric: str
                ) -> str | None:
    """The full-pipeline engine fastest end to end among those whose accuracy was measured: the highest paired
    median × one-liner (end to end), or, without pairs, the lowest end-to-end p50."""
    present = [k for k in candidates if k in rows]
    eligible = [k for k in present if rows[k].get(metric) is not None] or present
    paired = {k: ratios[pair_key(REFERENCE + E2E, k + E2E)]["median"] for k in eligible
              if pair_key(REFERENCE + E2E, k + E2E) in ratios}
    if paired:
        return max(paired, key=paired.__getitem__)
    timed = [k for k in eligible if rows[k].get("end_to_end")]
    return min(timed, key=lambda k: rows[k]["end_to_end"]["p50_ms"]) if timed else None


def run_paired(section: TaskSection, built: BuiltBundles, keys: list[str], pairs: list[tuple[str, str]],
               args: argparse.Namespace, *, test: Path, quiet_cores: float) -> dict:
    """scripts/benchmark_paired.py in a subprocess: one worker per row, inference and end-to-end timers."""
    rows = {k: {"bundle": str(built.bundles[k].path), "end_to_end_data": str(test)} for k in keys}
    job = {"rows": rows, "pairs": pairs, "threads": args.threads, "rounds": args.rounds,
           "iterations": args.iterations, "warmup": args.warmup, "block_warmup": args.block_warmup,
           "quiet_wait_s": args.quiet_wait, "quiet_cores": quiet_cores, "pause_s": 0.1}
    return run_paired_job(job, work=args.work, name=section.name, title=f"the {section.name}")


def evaluate_targets(section: TaskSection, result: dict) -> list[dict]:
    """The issue's targets for the section, each with what was measured and whether it was met."""
    rows, ratios, best, metric = result["rows"], result["ratios"], result["best_engine"], section.metric
    fp32 = rows.get("eager", {}).get(metric)
    targets = []

    def add(name: str, target: str, measured: float | None, met: bool, unit: str, spread: dict | None = None,
            why: str = "") -> None:
        shown = (why or "not measured") if measured is None else f"{measured:.2f}{unit}"
        if spread is not None:
            shown += f" (IQR {spread['q1']:.2f}–{spread['q3']:.2f}, range {spread['min']:.2f}–{spread['max']:.2f})"
        targets.append({"name": name, "target": target, "measured": shown, "value": measured, "met": bool(met),
                        "spread": spread})

    def drop(key: str | None) -> float | None:
        found = None if key is None else rows.get(key, {}).get(metric)
        return None if fp32 is None or found is None else (fp32 - found) * 100.0

    def why_missing(key: str | None) -> str:
        if key is None:
            return "not measured: no full-pipeline bundle was built"
        return f"not measured: {result['failures'].get(key, f'no {section.metric_name}')}"

    for key, limit in section.max_drop_pt.items():
        value = drop(key)
        add(f"{section.labels[key]}: {section.metric_name} drop vs FP32", f"≤ {limit:g} pt", value,
            value is not None and value <= limit + 1e-9, " pt", why=why_missing(key) if value is None else "")
    found = None if best is None else ratios.get(pair_key(REFERENCE + E2E, best + E2E))
    value = None if found is None else found["median"]
    needed = section.min_full_speedup
    add("edgevision full vs the one-liner, end to end", f"≥ {needed:g}× (paired median)", value,
        value is not None and value >= needed, "×", found, why=why_missing(best) if value is None else "")
    value = drop(best)
    add(f"edgevision full: {section.metric_name} drop vs FP32", f"≤ {section.max_full_drop_pt:g} pt", value,
        value is not None and value <= section.max_full_drop_pt + 1e-9, " pt",
        why=why_missing(best) if value is None else "")
    return targets


def _ms(value: float | None) -> str:
    return "      —" if value is None else f"{value:7.3f} ms"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
