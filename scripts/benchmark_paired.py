"""Time a model's benchmark rows in paired rounds, all engines loaded in this one process.

Run by scripts/benchmark.py in a subprocess (the parent has trained models and holds torch's
threads). Reads a job as JSON (rows: key → bundle path, optionally "plain_openvino": true for
OpenVINO itself with only the thread count set), waits for the machine to go quiet before each
round, times every pair back to back (`edgevision.bench.paired.time_round`) and writes per-round
p50s, per-row block statistics, each row's engine configuration and the CPU others used.

    python scripts/benchmark_paired.py --job job.json --out timings.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmark_load import CpuMonitor, wait_for_quiet

import edgevision
from edgevision.bench.paired import pair_key, time_block, time_round
from edgevision.bundle import Bundle

#: OpenVINO properties read back from a compiled model, so a row shows what the engine runs with.
OPENVINO_READBACK = ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
                     "EXECUTION_MODE_HINT", "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING")


def log(message: str) -> None:
    print(message, flush=True)


def openvino_readback(compiled: Any) -> dict[str, str]:
    """The compiled model's own view of its settings (what OpenVINO chose, not what was asked)."""
    found = {}
    for name in OPENVINO_READBACK:
        try:
            value = compiled.get_property(name)
        except Exception:  # noqa: BLE001 - devices differ in which properties they expose
            found[name] = "not reported"
        else:
            found[name] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return found


class PlainOpenVINO:
    """OpenVINO as a user calls it with no edgevision in between: read, compile with threads only, infer."""

    def __init__(self, bundle: Bundle, *, threads: int) -> None:
        import openvino as ov

        files = bundle.manifest.model_files
        weights = str(bundle.path / files[1]) if len(files) > 1 else ""
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(bundle.model_path), weights), "CPU",
                                           {"INFERENCE_NUM_THREADS": threads})
        self.request = self.compiled.create_infer_request()
        self.requested = {"INFERENCE_NUM_THREADS": threads}

    def infer(self, batch: np.ndarray) -> object:
        return self.request.infer({0: batch})


def engine_config(runtime: edgevision.runtimes.Runtime) -> dict:
    """What the row ran with: `Runtime.engine_config` where the runtime has it, else what was asked
    (its options) plus, for OpenVINO, the compiled model's read-back."""
    config = getattr(runtime, "engine_config", None)
    if config is not None:
        return dict(config)
    options = runtime.options
    found: dict[str, Any] = {"requested": {k: _plain(v) for k, v in vars(options).items()}}
    compiled = getattr(runtime, "_compiled", None)
    if runtime.name == "openvino" and compiled is not None:
        found["readback"] = openvino_readback(compiled)
    return found


def open_runtime(bundle: Bundle, *, threads: int, precision_hint: str | None) -> edgevision.runtimes.Runtime:
    """The bundle's usual runtime with `threads`; an OpenVINO precision hint where the row asks for one."""
    if precision_hint is None:
        return edgevision.load_runtime(bundle, threads=threads)
    from edgevision.runtimes.openvino import OpenVINOOptions

    return edgevision.load_runtime(bundle, "openvino", options=OpenVINOOptions(threads=threads,
                                                                              precision_hint=precision_hint))


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description="Paired-round latency of a model's rows (see module docstring).")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    job = json.loads(args.job.read_text(encoding="utf-8"))
    threads, iterations = job["threads"], job["iterations"]

    runtimes: dict[str, edgevision.runtimes.Runtime] = {}
    plains: dict[str, PlainOpenVINO] = {}
    rows: dict[str, dict] = {}
    calls = {}
    for key, spec in job["rows"].items():
        bundle = Bundle.load(spec["bundle"])
        base = spec.get("same_bundle_as")
        if spec.get("plain_openvino"):
            plain = plains[key] = PlainOpenVINO(bundle, threads=threads)
            spec_runtime = runtimes[base]
            batch = _batch(spec_runtime)
            calls[key] = lambda p=plain, b=batch: p.infer(b)
            readback = openvino_readback(plain.compiled)
            computes = readback.get("INFERENCE_PRECISION_HINT", "not reported").replace("not reported", "unknown")
            rows[key] = {"runtime": "openvino (plain)", "format": bundle.manifest.format.value,
                         "precision": bundle.manifest.precision.value,
                         "engine_precision": f"int8+{computes}" if bundle.manifest.precision.value == "int8" else computes,
                         "engine_config": {"requested": plain.requested, "readback": readback}}
        else:
            runtime = runtimes[key] = open_runtime(bundle, threads=threads, precision_hint=spec.get("precision_hint"))
            batch = _batch(runtime)
            calls[key] = lambda r=runtime, b=batch: r.infer(b)
            rows[key] = {"runtime": runtime.name, "format": bundle.manifest.format.value,
                         "precision": bundle.manifest.precision.value, "engine_precision": runtime.engine_precision,
                         "engine_config": engine_config(runtime)}
        rows[key].update(bundle=str(bundle.path), size_mb=bundle.size_bytes / 1e6, threads=threads)
    for key, call in calls.items():  # once per engine: compile caches, allocations, thread pools
        time_block(call, iterations=5, warmup=job["warmup"])

    pairs = [tuple(pair) for pair in job["pairs"]]
    per_pair: dict[str, dict[str, list]] = {
        pair_key(a, b): {"reference": a, "candidate": b, "reference_ms": [], "candidate_ms": [], "reference_first": []}
        for a, b in pairs
    }
    blocks: dict[str, list] = {key: [] for key in calls}
    rounds = []
    for index in range(job["rounds"]):
        others_before = wait_for_quiet(max_wait_s=job["quiet_wait_s"], threshold_cores=job["quiet_cores"], log=log)
        monitor, started = CpuMonitor(), time.perf_counter()
        measured, stats = time_round(calls, pairs, round_index=index, iterations=iterations,
                                     warmup=job["block_warmup"], pause_s=job["pause_s"])
        others = monitor.mark()
        rounds.append({"others_cores_before": others_before, "others_cores": others,
                       "seconds": round(time.perf_counter() - started, 2)})
        for pair in measured:
            entry = per_pair[pair_key(pair.reference, pair.candidate)]
            entry["reference_ms"].append(pair.reference_ms)
            entry["candidate_ms"].append(pair.candidate_ms)
            entry["reference_first"].append(pair.reference_first)
        for key, found in stats.items():
            blocks[key] += [{**s.__dict__, "round": index} for s in found]
        log(f"    round {index + 1}/{job['rounds']}: {rounds[-1]['seconds']:.0f} s, other processes used "
            f"{'?' if others is None else f'{others:.2f}'} cores")
    for key, found in blocks.items():
        rows[key].update(
            p50_ms=statistics.median(b["p50_ms"] for b in found), p90_ms=statistics.median(b["p90_ms"] for b in found),
            mean_ms=statistics.median(b["mean_ms"] for b in found), min_ms=min(b["min_ms"] for b in found),
            blocks=len(found), iterations=iterations, p50_ms_per_block=[round(b["p50_ms"], 4) for b in found],
        )
        rows[key]["throughput_ips"] = 1000.0 / rows[key]["mean_ms"]
        known = [r["others_cores"] for r in rounds if r["others_cores"] is not None]
        rows[key]["others_cores"] = statistics.median(known) if known else None
    for runtime in runtimes.values():
        runtime.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "pairs": per_pair, "rounds": rounds}, indent=2) + "\n",
                        encoding="utf-8")


def _batch(runtime: edgevision.runtimes.Runtime) -> np.ndarray:
    """One image in the runtime's layout; the same seeded values for every row."""
    shape = (1, *runtime.input_spec.shape[1:])
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


if __name__ == "__main__":
    main()
