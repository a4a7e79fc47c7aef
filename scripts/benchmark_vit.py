"""The transformer section of `make bench` (`--models vit`): the demo Vision Transformer (`vit_tiny`) beside a CNN
of similar accuracy, each through ONNX Runtime, OpenVINO and TFLite in FP32 and in edgevision's INT8.

Run from scripts/benchmark.py. Models and bundles: scripts/benchmark_vit_models.py (the CNN is chosen on the
validation split). Accuracy: top-1 on the test split through each row's own engine (`edgevision.bench.bench`,
one worker process per row). Latency: scripts/benchmark_paired.py, one worker process per row, batch 1 at the
models' 32×32 input; in every round each INT8 row is timed back to back with its FP32 row on the same engine
(the INT8 speed-up) and each ViT row with the CNN row of the same engine and precision (what the transformer
costs), so each ratio is the median of per-round ratios measured in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import replace

from benchmark_models import INT8_BENCH_AGREEMENT, BuiltBundles, Log, run_paired_job
from benchmark_vit_models import (
    CHANCE_FACTOR,
    ENGINES,
    PRECISIONS,
    ROLES,
    VitPlan,
    build_pair_bundles,
    macs_params,
    plan_dict,
    prepare_pair,
    row_key,
)

from edgevision.bench import BenchConfig, bench
from edgevision.bench.paired import RatioStats
from edgevision.data.digits import make_digits_folder
from edgevision.export.parity import RELATIVE_TOLERANCE, ParityConfig
from edgevision.types import Precision

PLAN = VitPlan()
#: --quick: one-epoch models and one CNN budget per architecture (a smoke run, not for publishing).
QUICK_PLAN = replace(PLAN, vit_epochs=1, cnn_epochs=(1,))


def plan_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """(reference, candidate) pairs among the built rows: FP32 → INT8 on each engine (ratio = INT8 speed-up), then
    ViT → CNN at each engine and precision (ratio = how many times the CNN's latency the ViT's is). A built row in
    none of them (its partners were refused) is paired with another row, preferably of its own model, so that every
    row that can be timed is."""
    present = set(keys)
    pairs = [(row_key(role, engine, "fp32"), row_key(role, engine, "int8"))
             for role in ROLES for engine, _, _ in ENGINES]
    pairs += [(row_key("vit", engine, precision), row_key("cnn", engine, precision))
              for engine, _, _ in ENGINES for precision in PRECISIONS]
    pairs = [(a, b) for a, b in pairs if a in present and b in present]
    covered = {key for pair in pairs for key in pair}
    for key in keys:
        if key in covered:
            continue
        others = [k for k in keys if k != key]
        own = [k for k in others if k.split("_")[0] == key.split("_")[0]]
        if own or others:
            partner = (own or others)[0]
            pairs.append((partner, key))
            covered |= {key, partner}
    return pairs


def run_transformer(args: argparse.Namespace, *, quiet_cores: float, log: Log) -> dict:
    """Train or reuse the models, build, measure; a JSON-able dict for benchmarks.json's "transformer" entry."""
    plan = QUICK_PLAN if args.quick else PLAN
    size = plan.input_size
    log(f"{plan.title}: models")
    digits = make_digits_folder(args.work / f"digits-{size}", size=size)
    prepared = prepare_pair(plan, digits, work=args.work, fresh=args.fresh, log=log)
    bundle_root = args.work / "bundles" / "transformer"
    if bundle_root.exists():
        shutil.rmtree(bundle_root)
    log(f"{plan.title}: bundles at {size}×{size}")
    built = build_pair_bundles(prepared, bundle_root, digits=digits, calibration_images=args.calibration_images,
                               log=log)
    keys = [k for k in built.bundles]

    accuracy: dict[str, float | None] = {}
    images = None
    if keys:
        log(f"  top-1 through each engine on {digits.test} (test split)")
        report = bench([built.bundles[k] for k in keys],
                       config=BenchConfig(threads=(args.threads,), iterations=10, warmup=2, data=digits.test,
                                          split_name="test"))
        accuracy = {k: row.accuracy for k, row in zip(keys, report.rows, strict=True)}
        images = next((row.accuracy_images for row in report.rows if row.accuracy_images), None)

    pairs = plan_pairs(keys)
    log(f"{plan.title}: latency, {args.rounds} paired rounds of {len(pairs)} pairs × {args.iterations} calls")
    timing = run_paired(keys, built, pairs, args, quiet_cores=quiet_cores) if pairs else {}
    rows = timing.get("rows", {})
    ratios = {name: {"reference": p["reference"], "candidate": p["candidate"],
                     **RatioStats.from_times(p["reference_ms"], p["candidate_ms"]).to_dict()}
              for name, p in timing.get("pairs", {}).items()}
    models = {}
    for role in ROLES:
        entry = prepared.model(role)
        macs, params = macs_params(entry.model, size)
        models[role] = {**entry.describe(), "macs": macs, "params": params}
    models["vit"]["config"] = vit_config()
    for key, row in rows.items():
        role, engine, precision = key.split("_")
        row.update({"model": role, "engine": engine, "precision": precision, "accuracy": accuracy.get(key),
                    "macs": models[role]["macs"]})
        log(f"    {key:22s} p50 {row['p50_ms']:8.3f} ms  top-1 {_pct(accuracy.get(key))}")
    for name, ratio in ratios.items():
        log(f"    {name:45s} {ratio['median']:.2f}× (min–max {ratio['min']:.2f}–{ratio['max']:.2f})")
    return {
        "title": plan.title, "plan": plan_dict(plan), "input_size": size, "accuracy_split": "test",
        "selection_split": "val", "accuracy_images": images, "models": models, "cnn_candidates": prepared.candidates,
        "cnn_chance_factor": CHANCE_FACTOR, "classes": len(prepared.vit.model.labels),
        "accuracy": accuracy, "rows": rows, "ratios": ratios, "rounds": timing.get("rounds", []), "parity": built.parity,
        "failures": built.failures, "calibration_images": args.calibration_images,
        "int8_bench_agreement": INT8_BENCH_AGREEMENT, "default_int8_agreement": ParityConfig().min_top1_agreement,
        "fp32_relative_tolerance": RELATIVE_TOLERANCE[Precision.FP32], "cpus": os.cpu_count(),
        "seconds": {**prepared.seconds, "bundles": round(built.seconds, 1)},
    }


def vit_config() -> dict:
    """The demo ViT's shape (edgevision/transformers.py), for the doc."""
    from edgevision import transformers

    return {"patch_size": transformers.PATCH_SIZE, "layers": transformers.LAYERS, "heads": transformers.HEADS,
            "hidden": transformers.HIDDEN, "mlp": transformers.MLP}


def run_paired(keys: list[str], built: BuiltBundles, pairs: list[tuple[str, str]], args: argparse.Namespace, *,
               quiet_cores: float) -> dict:
    """scripts/benchmark_paired.py in a subprocess: one worker process per row, inference timers only."""
    rows = {k: {"bundle": str(built.bundles[k].path)} for k in keys if any(k in pair for pair in pairs)}
    job = {"rows": rows, "pairs": pairs, "threads": args.threads, "rounds": args.rounds,
           "iterations": args.iterations, "warmup": args.warmup, "block_warmup": args.block_warmup,
           "quiet_wait_s": args.quiet_wait, "quiet_cores": quiet_cores, "pause_s": 0.1}
    return run_paired_job(job, work=args.work, name="transformer", title="the transformer section")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"
