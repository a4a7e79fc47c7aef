"""Where an OpenVINO model's time goes: per-op-type totals from the engine's own performance counters.

    python scripts/profile_openvino.py MODEL.xml [MODEL.xml ...] [--threads 2] [--calls 200] [--layers 10]

Compiles each IR on CPU with PERF_COUNT on, warms it up, runs `--calls` inferences on one random input
and prints the mean time per op type (and with --layers, the slowest convolution layers with the
kernel OpenVINO chose). The README's note on why pruning the demo detector did not speed up OpenVINO
INT8 quotes it. Profiling adds its own overhead: compare models within one run, not with latency tables.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np


def profile(path: str, *, threads: int, calls: int, layers: int) -> None:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU",
                                  {"PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    shape = compiled.input(0).get_partial_shape()
    dims = [1] + [d.get_length() for d in list(shape)[1:]]
    batch = np.random.default_rng(0).random(dims, dtype=np.float32)
    for _ in range(50):
        request.infer({0: batch})
    by_type: collections.Counter[str] = collections.Counter()
    by_layer: collections.Counter[str] = collections.Counter()
    kernels: dict[str, str] = {}
    for _ in range(calls):
        request.infer({0: batch})
        for item in request.profiling_info:
            micros = item.real_time.total_seconds() * 1e6 / calls
            by_type[item.node_type] += micros
            if item.node_type in ("Convolution", "GroupConvolution"):
                by_layer[item.node_name] += micros
                kernels[item.node_name] = item.exec_type
    print(f"{path}: {sum(by_type.values()) / 1000:.3f} ms per call in profiled ops ({threads} threads, {calls} calls)")
    for kind, micros in by_type.most_common(12):
        print(f"   {kind:24s} {micros / 1000:.3f} ms")
    for name, micros in by_layer.most_common(layers):
        print(f"   {micros / 1000:.3f} ms  {kernels[name]:24s} {name[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="OpenVINO IR .xml files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--layers", type=int, default=0, help="also list this many slowest convolution layers")
    args = parser.parse_args()
    for path in args.models:
        profile(path, threads=args.threads, calls=args.calls, layers=args.layers)


if __name__ == "__main__":
    main()
