"""Time a model's benchmark rows in paired rounds, each row's engine in a process of its own.

Run by scripts/benchmark.py in a subprocess. Reads a job as JSON (rows: key → bundle path,
optionally "plain_openvino": true for OpenVINO itself with only the thread count set, or an OpenVINO
"precision_hint"; for a detector or segmenter "end_to_end_data": its test split, which adds the timer
"<key>@e2e": decoded test images through letterbox preprocessing + inference + the task's post-processing,
as a camera feeds a device). Every row gets one worker process (this script with --serve) that loads its
engine once and then times blocks of calls when told to, so engines never share a process (no
thread pool, allocator or pinning of one engine touches another, and peak RSS is the row's own),
while the orchestrator times each compared pair back to back (`edgevision.bench.paired.time_round`).
Before each round it waits for the machine to go quiet. Writes per-round p50s, per-row block
statistics, each row's engine configuration and peak RSS, and the CPU other processes used.

    python scripts/benchmark_paired.py --job job.json --out timings.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchmark_load import CpuMonitor, wait_for_quiet

import edgevision
from edgevision.bench.paired import BlockTimer, pair_key, time_block, time_round
from edgevision.bench.result import LatencyStats
from edgevision.bench.worker import peak_rss_mb
from edgevision.bundle import Bundle

#: A row's end-to-end timer is named "<row>@e2e" in pairs and blocks.
END_TO_END_SUFFIX = "@e2e"
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


# -- worker side: one engine ------------------------------------------------------------------


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


def open_runtime(bundle: Bundle, *, threads: int, precision_hint: str | None) -> edgevision.runtimes.Runtime:
    """The bundle's usual runtime with `threads`; an OpenVINO precision hint where the row asks for one."""
    if precision_hint is None:
        return edgevision.load_runtime(bundle, threads=threads)
    from edgevision.runtimes.openvino import OpenVINOOptions

    return edgevision.load_runtime(bundle, "openvino", options=OpenVINOOptions(threads=threads,
                                                                              precision_hint=precision_hint))


def engine_config(runtime: edgevision.runtimes.Runtime) -> dict:
    """What the row ran with: `Runtime.engine_config` where the runtime has it, else what was asked
    (its options) plus, for OpenVINO, the compiled model's read-back."""
    config = getattr(runtime, "engine_config", None)
    if config is not None:
        return dict(config)
    found: dict[str, Any] = {"requested": {k: _plain(v) for k, v in vars(runtime.options).items()}}
    compiled = getattr(runtime, "_compiled", None)  # until Runtime.engine_config exists
    if runtime.name == "openvino" and compiled is not None:
        found["readback"] = openvino_readback(compiled)
    return found


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def serve(spec: dict) -> None:
    """Worker: load one engine, say what it is, then time a block per request line until stdin closes."""
    bundle, threads = Bundle.load(spec["bundle"]), spec["threads"]
    batch = np.random.default_rng(0).standard_normal((1, *bundle.manifest.input.shape[1:]), dtype=np.float32)
    info: dict[str, Any] = {"format": bundle.manifest.format.value, "precision": bundle.manifest.precision.value,
                            "bundle": str(bundle.path), "size_mb": bundle.size_bytes / 1e6, "threads": threads}
    if spec.get("plain_openvino"):
        plain = PlainOpenVINO(bundle, threads=threads)
        readback = openvino_readback(plain.compiled)
        computes = readback["INFERENCE_PRECISION_HINT"].replace("not reported", "unknown")
        int8 = bundle.manifest.precision.value == "int8"
        info |= {"runtime": "openvino (plain)", "engine_precision": f"int8+{computes}" if int8 else computes,
                 "engine_config": {"requested": plain.requested, "readback": readback}}
        call, close = (lambda: plain.infer(batch)), (lambda: None)
    else:
        runtime = open_runtime(bundle, threads=threads, precision_hint=spec.get("precision_hint"))
        info |= {"runtime": runtime.name, "engine_precision": runtime.engine_precision,
                 "engine_config": engine_config(runtime)}
        call, close = (lambda: runtime.infer(batch)), runtime.close
    calls = {"inference": call}
    if spec.get("end_to_end_data") and not spec.get("plain_openvino"):
        calls["end_to_end"] = end_to_end_call(runtime, spec["end_to_end_data"])
    for timed in calls.values():
        time_block(timed, iterations=5, warmup=spec["warmup"])  # compile caches, allocations, thread pools
    _send(info)
    for line in sys.stdin:
        request = json.loads(line)
        timed = calls[request.get("mode", "inference")]
        _send(time_block(timed, iterations=request["iterations"], warmup=request["warmup"]).__dict__)
    close()
    _send({"peak_rss_mb": peak_rss_mb()})


#: Test images a task model's end-to-end timer cycles through (decoded once, before timing).
END_TO_END_IMAGES = 32


def end_to_end_call(runtime: edgevision.runtimes.Runtime, data: str) -> Callable[[], object]:
    """One camera frame per call: letterbox preprocessing + inference + the task's post-processing (a detector:
    decode + NMS at the deployment thresholds; a segmenter: argmax, letterbox inverse, resize to the frame).

    The frames are the first END_TO_END_IMAGES of the split (COCO or masks), decoded once (decoding a PNG is
    the camera's cost, not the model's), taken in turn so no call sees a cached result.
    """
    from edgevision.preprocess import letterbox_geometry, preprocess_batch

    manifest = runtime.bundle.manifest
    if manifest.task.value == "segment":
        from edgevision.data.masks import MaskFolder
        from edgevision.tasks.segment import postprocess_masks as postprocess

        dataset = MaskFolder.open(data, labels=manifest.labels)
        output = manifest.segmentation.output
    else:
        from edgevision.data.coco import CocoDetections
        from edgevision.tasks.detect import postprocess_batch as postprocess

        dataset = CocoDetections.open(data, labels=manifest.labels)
        output = manifest.detection.output
    frames = [dataset.image(i) for i in range(min(END_TO_END_IMAGES, len(dataset)))]
    spec = runtime.input_spec
    turn = itertools.cycle(frames)

    def call() -> object:
        image = next(turn)
        raw = runtime.infer_outputs(preprocess_batch([image], manifest.preprocess, spec))[output]
        return postprocess(raw, manifest, [letterbox_geometry(*image.shape[:2], manifest.preprocess)])

    return call


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- orchestrator side ------------------------------------------------------------------------


class Worker:
    """One row's engine in its own process; calling it times one block there."""

    def __init__(self, key: str, spec: dict) -> None:
        self.key = key
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = self._receive()

    def __call__(self, iterations: int, warmup: int, mode: str = "inference") -> LatencyStats:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"iterations": iterations, "warmup": warmup, "mode": mode}) + "\n")
        self.process.stdin.flush()
        return LatencyStats(**self._receive())

    def finish(self) -> float | None:
        """Close the worker; its peak RSS in MB (None if it had already died)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
            return self._receive().get("peak_rss_mb")
        except (OSError, SystemExit):
            return None
        finally:
            self.process.wait(timeout=60)

    def _receive(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        while line and not line.startswith("{"):  # engines may print to stdout; only JSON lines are ours
            line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            raise SystemExit(f"the worker for {self.key} died (exit code {self.process.wait()}); see its output above")
        return json.loads(line)


def run(job: dict) -> dict:
    """Start a worker per row, time the pairs in rounds, collect everything as one JSON-able dict."""
    workers: dict[str, Worker] = {}
    try:
        for key, spec in job["rows"].items():
            workers[key] = Worker(key, {**spec, "threads": job["threads"], "warmup": job["warmup"]})
        timers: dict[str, BlockTimer] = dict(workers)
        timers |= {f"{key}{END_TO_END_SUFFIX}": functools.partial(workers[key], mode="end_to_end")
                   for key, spec in job["rows"].items() if spec.get("end_to_end_data")}
        pairs = [tuple(pair) for pair in job["pairs"]]
        per_pair = {pair_key(a, b): {"reference": a, "candidate": b, "reference_ms": [], "candidate_ms": [],
                                     "reference_first": []} for a, b in pairs}
        blocks: dict[str, list[dict]] = {key: [] for key in timers}
        rounds = []
        pids = [w.process.pid for w in workers.values()]
        for index in range(job["rounds"]):
            before = wait_for_quiet(max_wait_s=job["quiet_wait_s"], threshold_cores=job["quiet_cores"], log=log,
                                    own_pids=pids)
            monitor, started = CpuMonitor(own_pids=pids), time.perf_counter()
            measured, stats = time_round(timers, pairs, round_index=index, iterations=job["iterations"],
                                         warmup=job["block_warmup"], pause_s=job["pause_s"])
            others = monitor.mark()
            rounds.append({"others_cores_before": before, "others_cores": others,
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
        rows = {key: {**worker.info, **_summary(blocks[key], job["iterations"], rounds)}
                for key, worker in workers.items()}
        for key in workers:
            found = blocks.get(f"{key}{END_TO_END_SUFFIX}")
            if found:
                rows[key]["end_to_end"] = _summary(found, job["iterations"], rounds)
    finally:
        peaks = {key: worker.finish() for key, worker in workers.items()}
    for key, peak in peaks.items():
        rows[key]["peak_rss_mb"] = peak
    return {"rows": rows, "pairs": per_pair, "rounds": rounds}


def _summary(found: list[dict], iterations: int, rounds: list[dict]) -> dict:
    if not found:  # a row only its end-to-end timer was paired for
        return {}
    known = [r["others_cores"] for r in rounds if r["others_cores"] is not None]
    mean = statistics.median(b["mean_ms"] for b in found)
    return {"p50_ms": statistics.median(b["p50_ms"] for b in found),
            "p90_ms": statistics.median(b["p90_ms"] for b in found), "mean_ms": mean,
            "min_ms": min(b["min_ms"] for b in found), "throughput_ips": 1000.0 / mean, "blocks": len(found),
            "iterations": iterations, "p50_ms_per_block": [round(b["p50_ms"], 4) for b in found],
            "others_cores": statistics.median(known) if known else None}


def main() -> None:
    parser = argparse.ArgumentParser(description="Paired-round latency of a model's rows (see module docstring).")
    parser.add_argument("--job", type=Path, help="the job (JSON) to run")
    parser.add_argument("--out", type=Path, help="where the timings (JSON) go")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # worker mode: one row's spec as JSON
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    if args.job is None or args.out is None:
        parser.error("--job and --out are required")
    result = run(json.loads(args.job.read_text(encoding="utf-8")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
