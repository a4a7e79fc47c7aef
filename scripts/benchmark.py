"""`make bench`: PyTorch eager vs ONNX Runtime vs OpenVINO vs "export + INT8 PTQ" vs edgevision's full
pipeline (prune + distil + INT8) for ResNet-18 and MobileNetV3-Small, the same for the demo detector
(with INT8 head-in-float rows and mAP: scripts/benchmark_detect.py) and the demo segmenter (mIoU:
scripts/benchmark_segment.py), the demo Vision Transformer beside a CNN of similar accuracy per engine and
precision (scripts/benchmark_vit.py), plus edgevision's runtime vs plain OpenVINO, plus stream FPS vs raw engine FPS.

Writes <out>/benchmarks.md and <out>/benchmarks.json. Accuracy is measured through each engine at
the training size on the digits TEST split (val chose epochs, checkpoints and parity; test chose
nothing). Latency: 224×224, batch 1, `--threads` threads, each row's engine loaded once in a worker
process of its own (scripts/benchmark_paired.py); each compared pair is timed back to back in every
round, and a speed-up is the median of the per-round ratios, reported with its spread.

    python scripts/benchmark.py --out docs                # what `make bench` runs
    python scripts/benchmark.py --out /tmp/b --quick      # a smoke run: one small model, few rounds
    python scripts/benchmark.py --models detector --out /tmp/b   # the detection section alone
    python scripts/benchmark.py --models segmenter --out docs --merge   # re-measure one section, keep the rest
    python scripts/benchmark.py --models vit --out docs --merge         # the transformer section into docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmark_detect import run_detection
from benchmark_doc import write_markdown
from benchmark_load import wait_for_quiet
from benchmark_machine import code_version, describe_machine, engine_versions, openvino_cpu_capabilities
from benchmark_merge import merge_sections
from benchmark_models import (
    FULL_CANDIDATES,
    INT8_BENCH_AGREEMENT,
    INT8_SANITY_AGREEMENT,
    LATENCY_SIZE,
    SANITY_IMAGES,
    VARIANTS,
    BuiltBundles,
    ModelPlan,
    build_bundles,
    macs_at,
    plan_dict,
    prepare_models,
    run_paired_job,
)
from benchmark_segment import run_segmentation
from benchmark_vit import run_transformer

from edgevision.bench import BenchConfig, bench
from edgevision.bench.paired import RatioStats, pair_key
from edgevision.data.digits import DigitsSplit, make_digits_folder
from edgevision.export.parity import RELATIVE_TOLERANCE, ParityConfig
from edgevision.types import Precision

REPO = Path(__file__).resolve().parent.parent
PLANS = {
    "resnet18": ModelPlan(
        architecture="resnet18", title="ResNet-18", train_epochs=6, channel_ratio=0.5, distill_epochs=4,
        distill_learning_rate=1e-3,
        min_speedup_vs_eager=12.0, min_speedup_vs_oneliner=2.0,
    ),
    "mobilenet_v3_small": ModelPlan(
        architecture="mobilenet_v3_small", title="MobileNetV3-Small", train_epochs=8, channel_ratio=0.35,
        distill_epochs=8, distill_learning_rate=3e-3, min_speedup_vs_eager=5.0, min_speedup_vs_oneliner=1.2,
    ),
}
#: The detection section's name in --models (scripts/benchmark_detect.py).
DETECTOR = "detector"
#: The segmentation section's name in --models (scripts/benchmark_segment.py).
SEGMENTER = "segmenter"
#: The transformer section's name in --models (scripts/benchmark_vit.py).
VIT = "vit"
MODEL_NAMES = (*PLANS, DETECTOR, SEGMENTER, VIT)
MAX_FULL_DROP_PT = 1.0
MAX_PTQ_DROP_PT = 0.5
#: Before each latency round, wait for other processes to use less than this many cores.
QUIET_CORES = 0.3
STREAM_REPEATS = 5  # alternating raw / capture / stream runs per bundle; medians are reported
#: OpenVINO bundles also timed in plain OpenVINO (thread count only), to measure edgevision's runtime overhead.
OVERHEAD_ROWS = ("ov_fp32", "oneliner", "full_openvino")
#: --quick: settings for a smoke run of the whole script (not for publishing: says so in the doc).
QUICK = {"models": "mobilenet_v3_small", "rounds": 3, "iterations": 20, "warmup": 5, "block_warmup": 3,
         "calibration_images": 50, "quiet_wait": 0.0, "no_stream": True}
QUICK_EPOCHS = 1
LABELS = {v.key: v.label for v in VARIANTS}
_STARTED = time.perf_counter()


def log(message: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {message}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write benchmarks.md and benchmarks.json (see module docstring).")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where benchmarks.md/.json go")
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="models, bundles and scratch files")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help=f"comma-separated subset of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--detector-checkpoint", type=Path, default=None,
                        help="a trained demo detector (model.pt) to use instead of training one (needs --detector-data)")
    parser.add_argument("--detector-data", type=Path, default=None,
                        help="the detector's COCO splits (train/ val/ test/); default: generated in --work")
    parser.add_argument("--segmenter-checkpoint", type=Path, default=None,
                        help="a trained demo segmenter (model.pt) to use instead of training one (needs --segmenter-data)")
    parser.add_argument("--segmenter-data", type=Path, default=None,
                        help="the segmenter's mask splits (train/ val/ test/, each images/ masks/ labels.txt); "
                        "default: generated in --work")
    parser.add_argument("--train-size", type=int, default=64, help="training (and accuracy) input size")
    parser.add_argument("--threads", type=int, default=2, help="engine threads for every latency row")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds; speed-ups are the median over rounds")
    parser.add_argument("--iterations", type=int, default=100, help="timed calls per row per block")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per engine after loading it")
    parser.add_argument("--block-warmup", type=int, default=10, help="untimed calls before each timed block")
    parser.add_argument("--calibration-images", type=int, default=300, help="INT8 calibration images (train split)")
    parser.add_argument("--quiet-wait", type=float, default=180.0,
                        help="seconds to wait, before each latency round, for other processes to go quiet")
    parser.add_argument("--fresh", action="store_true", help="retrain instead of reusing models cached in --work")
    parser.add_argument("--no-stream", action="store_true", help="skip the stream FPS benchmark")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_EPOCHS}-epoch models and "
                        + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + " (options given explicitly win)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the sections of the benchmarks.json already in --out that this run does not "
                        "measure (e.g. --models segmenter --merge re-measures that section alone)")
    parser.add_argument("--render-only", action="store_true",
                        help="re-write benchmarks.md from the benchmarks.json already in --out (no measuring)")
    args = parser.parse_args()
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.rounds < 1 or args.iterations < 5 or args.threads < 1:
        raise SystemExit("--rounds must be ≥ 1, --iterations ≥ 5 and --threads ≥ 1")
    if args.detector_checkpoint is not None and args.detector_data is None:
        raise SystemExit("--detector-checkpoint needs --detector-data: the splits it was trained on (train/ val/ test/)")
    if args.segmenter_checkpoint is not None and args.segmenter_data is None:
        raise SystemExit("--segmenter-checkpoint needs --segmenter-data: the splits it was trained on (train/ val/ test/)")
    if args.merge and not (args.out / "benchmarks.json").is_file():
        raise SystemExit(f"--merge keeps the other sections of {args.out / 'benchmarks.json'}, which does not exist: "
                         "run without --merge first")
    return args


def main() -> None:
    args = parse_args()
    if args.render_only:
        payload = json.loads((args.out / "benchmarks.json").read_text(encoding="utf-8"))
        write_markdown(payload, args.out / "benchmarks.md")
        log(f"re-wrote {args.out / 'benchmarks.md'} from {args.out / 'benchmarks.json'}")
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")

    started_at = dt.datetime.now(dt.UTC)
    machine = describe_machine()
    log(f"edgevision benchmark on {machine['cpu_model']} ({machine['cpus']} CPUs), "
        f"load average {machine['load_start']}")
    plans = [PLANS[name] for name in names if name in PLANS]
    if args.quick:
        plans = [replace(plan, train_epochs=QUICK_EPOCHS, distill_epochs=QUICK_EPOCHS) for plan in plans]
    digits = make_digits_folder(args.work / "digits", size=args.train_size) if plans else None
    results = [run_model(plan, digits, args) for plan in plans]
    detection = run_detection(args, quiet_cores=QUIET_CORES, log=log) if DETECTOR in names else None
    segmentation = run_segmentation(args, quiet_cores=QUIET_CORES, log=log) if SEGMENTER in names else None
    transformer = run_transformer(args, quiet_cores=QUIET_CORES, log=log) if VIT in names else None
    stream = None if args.no_stream or not results else run_stream_benchmarks(results, args.work, args.quiet_wait, args.threads)
    machine["load_end"] = [round(v, 2) for v in os.getloadavg()]
    payload = {
        "command": " ".join(["python", "scripts/benchmark.py", *sys.argv[1:]]),
        "quick": args.quick,
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "code_version": code_version(),
        "machine": machine,
        "settings": {
            "train_size": args.train_size, "latency_size": LATENCY_SIZE, "batch_size": 1, "threads": args.threads,
            "iterations": args.iterations, "warmup": args.warmup, "block_warmup": args.block_warmup,
            "rounds": args.rounds, "quiet_wait_s": args.quiet_wait, "quiet_cores": QUIET_CORES,
            "calibration_images": args.calibration_images, "accuracy_split": "test", "selection_split": "val",
            "parity": {
                "fp32_relative_tolerance": RELATIVE_TOLERANCE[Precision.FP32],
                "int8_bench_agreement": INT8_BENCH_AGREEMENT,
                "default_int8_agreement": ParityConfig().min_top1_agreement,
                "int8_sanity_agreement": INT8_SANITY_AGREEMENT, "sanity_images": SANITY_IMAGES,
            },
            "targets": {"max_full_drop_pt": MAX_FULL_DROP_PT, "max_ptq_drop_pt": MAX_PTQ_DROP_PT},
        },
        "versions": engine_versions(),
        "labels": LABELS,
        "full_candidates": list(FULL_CANDIDATES),
        "models": results,
        "detection": detection,
        "segmentation": segmentation,
        "transformer": transformer,
        "stream": stream,
        "seconds": round(time.perf_counter() - _STARTED, 1),
    }
    if args.merge:
        payload = merge_sections(json.loads((args.out / "benchmarks.json").read_text(encoding="utf-8")), payload)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    write_markdown(payload, args.out / "benchmarks.md")
    log(f"wrote {args.out / 'benchmarks.md'} and {args.out / 'benchmarks.json'}")


def run_model(plan: ModelPlan, digits: DigitsSplit, args: argparse.Namespace) -> dict:
    log(f"{plan.title}: models")
    prepared = prepare_models(plan, digits, train_size=args.train_size, work=args.work, fresh=args.fresh, log=log)
    bundle_root = args.work / "bundles" / plan.architecture
    if bundle_root.exists():
        shutil.rmtree(bundle_root)
    log(f"{plan.title}: bundles at {args.train_size}×{args.train_size} (accuracy)")
    small = build_bundles(prepared, bundle_root, size=args.train_size, digits=digits,
                          calibration_images=args.calibration_images, log=log)
    log(f"{plan.title}: bundles at {LATENCY_SIZE}×{LATENCY_SIZE} (latency)")
    large = build_bundles(prepared, bundle_root, size=LATENCY_SIZE, digits=digits,
                          calibration_images=args.calibration_images, log=log)

    log(f"{plan.title}: accuracy through each engine on {digits.test} (test split) "
        f"at {args.train_size}×{args.train_size}")
    keys = [v.key for v in VARIANTS if v.key in small.bundles]
    accuracy_report = bench([small.bundles[k] for k in keys],
                            config=BenchConfig(threads=(args.threads,), iterations=10, warmup=2, data=digits.test))
    accuracy = {k: row.accuracy for k, row in zip(keys, accuracy_report.rows, strict=True)}
    images = accuracy_report.rows[0].accuracy_images

    keys = [v.key for v in VARIANTS if v.key in large.bundles]
    pairs = plan_pairs(keys)
    log(f"{plan.title}: latency, {args.rounds} paired rounds of {len(pairs)} pairs × {args.iterations} calls")
    timing = run_paired(plan, large, keys, pairs, args)
    rows = timing["rows"]
    ratios = {name: {"reference": p["reference"], "candidate": p["candidate"],
                     **RatioStats.from_times(p["reference_ms"], p["candidate_ms"]).to_dict()}
              for name, p in timing["pairs"].items()}
    macs = {
        "original": macs_at(prepared.original, LATENCY_SIZE), "compressed": macs_at(prepared.compressed, LATENCY_SIZE),
        "original_at_train_size": macs_at(prepared.original, args.train_size),
        "compressed_at_train_size": macs_at(prepared.compressed, args.train_size),
    }
    for key, row in rows.items():
        base = key.removeprefix("plain_")
        row["macs"] = macs["compressed" if base in FULL_CANDIDATES else "original"]
        row["accuracy"] = accuracy.get(key)
    candidates = [k for k in FULL_CANDIDATES if k in rows]
    # A candidate whose accuracy could not be measured (it failed parity at the training size) cannot
    # show the pipeline kept its accuracy, so it is chosen only when no candidate has one.
    eligible = [k for k in candidates if accuracy.get(k) is not None] or candidates
    best = min(eligible, key=lambda k: rows[k]["p50_ms"]) if eligible else None
    for key in rows:
        log(f"    {key:22s} p50 {rows[key]['p50_ms']:8.3f} ms  p90 {rows[key]['p90_ms']:8.3f} ms")
    result = {
        "architecture": plan.architecture, "title": plan.title, "plan": plan_dict(plan),
        "train_size": args.train_size, "accuracy_split": "test", "accuracy_images": images, "accuracy": accuracy,
        "rows": rows, "ratios": ratios, "rounds": timing["rounds"], "best_engine": best, "macs": macs,
        "compression": prepared.compression, "provenance": prepared.provenance,
        "parity": {"train_size": small.parity, "latency_size": large.parity},
        "failures": {f"{k} ({size})": why for size, built in ((args.train_size, small), (LATENCY_SIZE, large))
                     for k, why in built.failures.items()},
        "seconds": {**{k: round(v, 1) for k, v in prepared.seconds.items()},
                    "bundles": round(small.seconds + large.seconds, 1)},
        "bundles_224": {k: str(b.path) for k, b in large.bundles.items()},
    }
    result["targets"] = evaluate_targets(plan, result)
    for target in result["targets"]:
        log(f"  {'MET   ' if target['met'] else 'MISSED'} {target['name']}: {target['measured']} "
            f"(target {target['target']})")
    return result


def plan_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """(reference, candidate) pairs to time: every row against eager, the full-pipeline candidates against
    the one-liner, INT8 against FP32 in OpenVINO, and edgevision's OpenVINO rows against plain OpenVINO."""
    candidates = [k for k in FULL_CANDIDATES if k in keys]
    pairs: list[tuple[str, str]] = []
    if "eager" in keys:
        pairs += [("eager", k) for k in keys if k != "eager"]
    if "oneliner" in keys:
        pairs += [("oneliner", k) for k in candidates]
        if "ov_fp32" in keys:
            pairs.append(("ov_fp32", "oneliner"))
    pairs += [(k, f"plain_{k}") for k in OVERHEAD_ROWS if k in keys]
    return pairs


def bf16_rows(keys: list[str]) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """Where OpenVINO's CPU plugin reports BF16: the FP32 bundle through edgevision with bf16 asked for,
    paired with plain OpenVINO (which picks its own default), so the overhead is compared at one precision."""
    capabilities = openvino_cpu_capabilities() or []
    if "ov_fp32" not in keys or "BF16" not in capabilities:
        return {}, []
    rows = {"ov_fp32_bf16": {"precision_hint": "bf16", "same_bundle_as": "ov_fp32"}}
    return rows, [("ov_fp32_bf16", "plain_ov_fp32")]


def run_paired(plan: ModelPlan, built: BuiltBundles, keys: list[str], pairs: list[tuple[str, str]],
               args: argparse.Namespace) -> dict:
    """scripts/benchmark_paired.py in a subprocess: it starts one worker process per row and times the pairs."""
    rows = {k: {"bundle": str(built.bundles[k].path)} for k in keys}
    extra, extra_pairs = bf16_rows(keys)
    rows |= {k: {"bundle": rows[spec["same_bundle_as"]]["bundle"], **spec} for k, spec in extra.items()}
    rows |= {f"plain_{k}": {"bundle": str(built.bundles[k].path), "plain_openvino": True, "same_bundle_as": k}
             for k in OVERHEAD_ROWS if k in keys}
    pairs = [*pairs, *extra_pairs]
    job = {"rows": rows, "pairs": pairs, "threads": args.threads, "rounds": args.rounds,
           "iterations": args.iterations, "warmup": args.warmup, "block_warmup": args.block_warmup,
           "quiet_wait_s": args.quiet_wait, "quiet_cores": QUIET_CORES, "pause_s": 0.1}
    return run_paired_job(job, work=args.work, name=plan.architecture, title=plan.title)


def evaluate_targets(plan: ModelPlan, result: dict) -> list[dict]:
    """The issue's targets for this model, each with the paired median measured and whether it was met."""
    ratios, accuracy, best = result["ratios"], result["accuracy"], result["best_engine"]
    targets = []

    def add(name: str, target: str, measured: float | None, met: bool | None, unit: str,
            spread: dict | None = None) -> None:
        shown = "not measured" if measured is None else f"{measured:.2f}{unit}"
        if spread is not None:
            shown += f" (IQR {spread['q1']:.2f}–{spread['q3']:.2f}, range {spread['min']:.2f}–{spread['max']:.2f})"
        targets.append({"name": name, "target": target, "measured": shown, "value": measured, "met": bool(met),
                        "spread": spread})

    def ratio(reference: str, candidate: str | None) -> dict | None:
        return None if candidate is None else ratios.get(pair_key(reference, candidate))

    def drop(key: str | None) -> float | None:
        if key is None or accuracy.get("eager") is None or accuracy.get(key) is None:
            return None
        return (accuracy["eager"] - accuracy[key]) * 100.0

    for reference, name, needed in (("eager", "full pipeline speed-up vs PyTorch eager", plan.min_speedup_vs_eager),
                                    ("oneliner", "full pipeline speed-up vs export + INT8 PTQ",
                                     plan.min_speedup_vs_oneliner)):
        found = ratio(reference, best)
        value = None if found is None else found["median"]
        add(name, f"≥ {needed:g}× (paired median)", value, value is not None and value >= needed, "×", found)
    full_drop, ptq_drop = drop(best), drop("oneliner")
    add("full pipeline top-1 drop through the engine", f"≤ {MAX_FULL_DROP_PT:g} pt", full_drop,
        full_drop is not None and full_drop <= MAX_FULL_DROP_PT + 1e-9, " pt")
    add("INT8 PTQ alone top-1 drop", f"≤ {MAX_PTQ_DROP_PT:g} pt", ptq_drop,
        ptq_drop is not None and ptq_drop <= MAX_PTQ_DROP_PT + 1e-9, " pt")
    return targets


def run_stream_benchmarks(results: list[dict], work: Path, quiet_wait: float, threads: int) -> list[dict]:
    """scripts/bench_stream.py on a 640×480 video for a few 224×224 bundles (in a subprocess each).

    The uncompressed FP32 bundles are inference-bound (the case the 0.9 target is about), each with
    one worker and with two (StreamConfig.workers: two frames in flight sharing the engine's threads);
    the compressed ones show what happens once inference is faster than decoding a frame.
    """
    chosen = []
    for result in results:
        bundles = result["bundles_224"]
        if result["architecture"] == "resnet18":
            chosen += [(result, LABELS[key], bundles[key], workers)
                       for key in ("ov_fp32", "ort_fp32") if key in bundles for workers in (1, 2)]
        if result["best_engine"] in bundles:
            chosen.append((result, LABELS[result["best_engine"]], bundles[result["best_engine"]], 1))
    measured = []
    for result, label, bundle, workers in chosen:
        title = result["title"]
        others = wait_for_quiet(max_wait_s=quiet_wait, threshold_cores=QUIET_CORES, log=log)
        log(f"stream: {title} {label} (640×480 video, {threads} engine threads, {workers} worker(s); "
            f"other processes using {_cores(others)} cores)")
        out = work / "stream" / f"{result['architecture']}-{Path(bundle).name}-w{workers}.json"
        command = [sys.executable, str(REPO / "scripts" / "bench_stream.py"), "--bundle", bundle,
                   "--threads", str(threads), "--workers", str(workers), "--repeats", str(STREAM_REPEATS),
                   "--frames", "300", "--out", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            log(f"    FAILED: {tail[0]}")
            measured.append({"model": title, "bundle_label": label, "error": tail[0]})
            continue
        data = json.loads(out.read_text())
        log(f"    raw {data['raw_fps']:.1f} FPS, capture alone {data['capture_fps']:.1f} FPS, "
            f"stream {data['stream_fps']:.1f} FPS, stream/raw {data['ratio']:.3f}")
        measured.append({"model": title, "bundle_label": label, "repeats": STREAM_REPEATS,
                         "others_cores_before": others, **{k: data[k] for k in (
            "bundle", "runtime", "threads", "workers", "raw_fps", "capture_fps", "capture_cpu_ms", "shared_cpu_bound",
            "stream_fps", "ratio", "ratio_spread", "ratio_to_ceiling", "video",
            "raw_fps_runs", "capture_fps_runs", "stream_fps_runs", "stream_cpu_cores_used")},
            "stage_mean_ms": data["stream_summary"].get("stage_mean_ms", {})})
    return measured

def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
