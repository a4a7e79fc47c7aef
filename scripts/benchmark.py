"""`make bench`: PyTorch eager vs ONNX Runtime vs OpenVINO vs "export + INT8 PTQ" vs edgevision's full
pipeline (prune + distil + INT8) for ResNet-18 and MobileNetV3-Small, plus stream FPS vs raw engine FPS.

Writes <out>/benchmarks.md and <out>/benchmarks.json. Accuracy is measured through each engine at
the training size on the digits validation split; latency at 224×224, batch 1, 2 threads, every
row of a model in the same `edgevision.bench` run (each row in its own process). Latency runs are
repeated `--rounds` times, interleaving all rows, and each row keeps its fastest round: the
machine this runs on is shared, and a burst of other work should not decide a ratio.

    python scripts/benchmark.py --out docs            # ≈ 25-35 min on 2 cores
    python scripts/benchmark.py --out /tmp/b --models mobilenet_v3_small --rounds 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmark_doc import LABELS, write_markdown
from benchmark_load import CpuMonitor, wait_for_quiet
from benchmark_models import (
    FULL_CANDIDATES,
    LATENCY_SIZE,
    VARIANTS,
    ModelPlan,
    build_bundles,
    macs_at,
    plan_dict,
    prepare_models,
)

from edgevision.bench import BenchConfig, bench
from edgevision.data.digits import DigitsSplit, make_digits_folder
from edgevision.export.base import package_version

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
MAX_FULL_DROP_PT = 1.0
MAX_PTQ_DROP_PT = 0.5
THREADS = 2
#: Before each latency round, wait for other processes to use less than this many cores.
QUIET_CORES = 0.3
STREAM_REPEATS = 5  # alternating raw / capture / stream runs per bundle; medians are reported
_STARTED = time.perf_counter()


def log(message: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write benchmarks.md and benchmarks.json (see module docstring).")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where benchmarks.md/.json go")
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="models, bundles and scratch files")
    parser.add_argument("--models", default=",".join(PLANS), help=f"comma-separated subset of {', '.join(PLANS)}")
    parser.add_argument("--train-size", type=int, default=64, help="training (and accuracy) input size")
    parser.add_argument("--iterations", type=int, default=300, help="timed calls per latency row")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before timing")
    parser.add_argument("--rounds", type=int, default=2, help="latency runs per model; each row keeps its fastest")
    parser.add_argument("--calibration-images", type=int, default=300, help="INT8 calibration images (train split)")
    parser.add_argument("--quiet-wait", type=float, default=180.0,
                        help="seconds to wait, before each latency round, for other processes to go quiet")
    parser.add_argument("--fresh", action="store_true", help="retrain instead of reusing models cached in --work")
    parser.add_argument("--no-stream", action="store_true", help="skip the stream FPS benchmark")
    parser.add_argument("--render-only", action="store_true",
                        help="re-write benchmarks.md from the benchmarks.json already in --out (no measuring)")
    args = parser.parse_args()
    if args.render_only:
        payload = json.loads((args.out / "benchmarks.json").read_text(encoding="utf-8"))
        write_markdown(payload, args.out / "benchmarks.md")
        log(f"re-wrote {args.out / 'benchmarks.md'} from {args.out / 'benchmarks.json'}")
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLANS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(PLANS)}")
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    machine = describe_machine()
    log(f"edgevision benchmark on {machine['cpu_model']} ({machine['cpus']} CPUs), load average {machine['load_start']}")
    digits = make_digits_folder(args.work / "digits", size=args.train_size)
    results = [run_model(PLANS[name], digits, args) for name in names]
    stream = None if args.no_stream else run_stream_benchmarks(results, args.work, args.quiet_wait)
    machine["load_end"] = [round(v, 2) for v in os.getloadavg()]
    payload = {
        "command": " ".join(["python", "scripts/benchmark.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "settings": {
            "train_size": args.train_size, "latency_size": LATENCY_SIZE, "batch_size": 1, "threads": THREADS,
            "iterations": args.iterations, "warmup": args.warmup, "rounds": args.rounds,
            "quiet_wait_s": args.quiet_wait, "quiet_cores": QUIET_CORES,
            "calibration_images": args.calibration_images,
            "targets": {"max_full_drop_pt": MAX_FULL_DROP_PT, "max_ptq_drop_pt": MAX_PTQ_DROP_PT},
        },
        "versions": {name: package_version(name) for name in ("edgevision", "torch", "onnxruntime", "openvino", "nncf",
                                                                 "torch-pruning", "litert-torch", "ai-edge-litert")},
        "models": results,
        "stream": stream,
        "seconds": round(time.perf_counter() - _STARTED, 1),
    }
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

    log(f"{plan.title}: accuracy through each engine on {digits.val} at {args.train_size}×{args.train_size}")
    keys = [v.key for v in VARIANTS if v.key in small.bundles]
    accuracy_report = bench([small.bundles[k] for k in keys],
                            config=BenchConfig(threads=(THREADS,), iterations=10, warmup=2, data=digits.val))
    accuracy = {k: row.accuracy for k, row in zip(keys, accuracy_report.rows, strict=True)}
    images = accuracy_report.rows[0].accuracy_images

    keys = [v.key for v in VARIANTS if v.key in large.bundles]
    rounds: list[dict[str, dict]] = []
    for index in range(1, args.rounds + 1):
        others = wait_for_quiet(max_wait_s=args.quiet_wait, threshold_cores=QUIET_CORES, log=log)
        log(f"{plan.title}: latency round {index}/{args.rounds} ({len(keys)} rows × {args.iterations} calls; "
            f"other processes using {_cores(others)} cores)")
        rows_load: list[float | None] = []
        monitor = CpuMonitor()

        def on_progress(phase: str, _amount: int, loads: list = rows_load, cpu: CpuMonitor = monitor) -> None:
            if phase == "row":
                loads.append(cpu.mark())

        report = bench([large.bundles[k] for k in keys], progress=on_progress,
                       config=BenchConfig(threads=(THREADS,), iterations=args.iterations, warmup=args.warmup))
        rounds.append({k: {**row_dict(row), "others_cores": load}
                       for k, row, load in zip(keys, report.rows, rows_load, strict=True)})
        for k in keys:
            row = rounds[-1][k]
            log(f"    {k:18s} p50 {row['p50_ms']:8.3f} ms  p90 {row['p90_ms']:8.3f} ms  "
                f"(others used {_cores(row['others_cores'])} cores)")
    rows = {k: {**min((r[k] for r in rounds), key=lambda row: row["p50_ms"]),
                "p50_ms_per_round": [round(r[k]["p50_ms"], 4) for r in rounds],
                "others_cores_per_round": [r[k]["others_cores"] for r in rounds]} for k in keys}
    macs = {
        "original": macs_at(prepared.original, LATENCY_SIZE), "compressed": macs_at(prepared.compressed, LATENCY_SIZE),
        "original_at_train_size": macs_at(prepared.original, args.train_size),
        "compressed_at_train_size": macs_at(prepared.compressed, args.train_size),
    }
    for key, row in rows.items():
        row["macs"] = macs["compressed" if key in FULL_CANDIDATES else "original"]
        row["accuracy"] = accuracy.get(key)
    candidates = [k for k in FULL_CANDIDATES if k in rows]
    best = min(candidates, key=lambda k: rows[k]["p50_ms"]) if candidates else None
    result = {
        "architecture": plan.architecture, "title": plan.title, "plan": plan_dict(plan),
        "train_size": args.train_size, "accuracy_images": images, "accuracy": accuracy, "rows": rows,
        "best_engine": best, "macs": macs, "compression": prepared.compression,
        "parity": {"train_size": small.parity, "latency_size": large.parity},
        "failures": {f"{k} ({size})": why for size, built in ((args.train_size, small), (LATENCY_SIZE, large))
                     for k, why in built.failures.items()},
        "seconds": {**{k: round(v, 1) for k, v in prepared.seconds.items()},
                    "bundles": round(small.seconds + large.seconds, 1)},
        "bundles_224": {k: str(b.path) for k, b in large.bundles.items()},
    }
    result["targets"] = evaluate_targets(plan, result)
    for target in result["targets"]:
        log(f"  {'MET   ' if target['met'] else 'MISSED'} {target['name']}: {target['measured']} (target {target['target']})")
    return result


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def row_dict(row) -> dict:
    lat = row.latency
    return {
        "runtime": row.runtime, "format": row.format, "precision": row.precision,
        "engine_precision": row.engine_precision, "threads": row.threads, "p50_ms": lat.p50_ms, "p90_ms": lat.p90_ms,
        "p99_ms": lat.p99_ms, "mean_ms": lat.mean_ms, "std_ms": lat.std_ms, "min_ms": lat.min_ms,
        "iterations": lat.n, "throughput_ips": row.throughput_ips, "size_mb": row.size_mb, "peak_rss_mb": row.peak_rss_mb,
    }


def evaluate_targets(plan: ModelPlan, result: dict) -> list[dict]:
    """The issue's targets for this model, each with what was measured and whether it was met."""
    rows, accuracy, best = result["rows"], result["accuracy"], result["best_engine"]
    targets = []

    def add(name: str, target: str, measured: float | None, met: bool | None, unit: str) -> None:
        shown = "not measured" if measured is None else f"{measured:.2f}{unit}"
        targets.append({"name": name, "target": target, "measured": shown, "value": measured, "met": bool(met)})

    def ratio(numerator: str, denominator: str | None) -> float | None:
        if denominator is None or numerator not in rows or denominator not in rows:
            return None
        return rows[numerator]["p50_ms"] / rows[denominator]["p50_ms"]

    def drop(key: str | None) -> float | None:
        if key is None or accuracy.get("eager") is None or accuracy.get(key) is None:
            return None
        return (accuracy["eager"] - accuracy[key]) * 100.0

    vs_eager, vs_oneliner = ratio("eager", best), ratio("oneliner", best)
    add("full pipeline speed-up vs PyTorch eager", f"≥ {plan.min_speedup_vs_eager:g}×", vs_eager,
        vs_eager is not None and vs_eager >= plan.min_speedup_vs_eager, "×")
    add("full pipeline speed-up vs export + INT8 PTQ", f"≥ {plan.min_speedup_vs_oneliner:g}×", vs_oneliner,
        vs_oneliner is not None and vs_oneliner >= plan.min_speedup_vs_oneliner, "×")
    full_drop, ptq_drop = drop(best), drop("oneliner")
    add("full pipeline top-1 drop through the engine", f"≤ {MAX_FULL_DROP_PT:g} pt", full_drop,
        full_drop is not None and full_drop <= MAX_FULL_DROP_PT + 1e-9, " pt")
    add("INT8 PTQ alone top-1 drop", f"≤ {MAX_PTQ_DROP_PT:g} pt", ptq_drop,
        ptq_drop is not None and ptq_drop <= MAX_PTQ_DROP_PT + 1e-9, " pt")
    return targets


def run_stream_benchmarks(results: list[dict], work: Path, quiet_wait: float) -> list[dict]:
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
        log(f"stream: {title} {label} (640×480 video, {THREADS} engine threads, {workers} worker(s); "
            f"other processes using {_cores(others)} cores)")
        out = work / "stream" / f"{result['architecture']}-{Path(bundle).name}-w{workers}.json"
        command = [sys.executable, str(REPO / "scripts" / "bench_stream.py"), "--bundle", bundle,
                   "--threads", str(THREADS), "--workers", str(workers), "--repeats", str(STREAM_REPEATS),
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
            "stream_fps", "ratio", "ratio_to_ceiling", "video",
            "raw_fps_runs", "capture_fps_runs", "stream_fps_runs", "stream_cpu_cores_used")},
            "stage_mean_ms": data["stream_summary"].get("stage_mean_ms", {})})
    return measured


def describe_machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        found = {f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f" {f}" in cpuinfo}
        flags = ", ".join(sorted(found))
    except OSError:
        pass
    return {
        "cpu_model": model, "cpus": os.cpu_count(), "isa": flags, "platform": platform.platform(),
        "python": platform.python_version(), "load_start": [round(v, 2) for v in os.getloadavg()],
    }


if __name__ == "__main__":
    main()
