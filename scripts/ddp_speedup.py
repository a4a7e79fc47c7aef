"""Distillation on N processes (torch.distributed.run + DDP) against one process, on this machine.

    python scripts/ddp_speedup.py --model runs/demo/model.pt --data runs/demo/data [--nproc 2] [--epochs 3]

Runs `edgevision compress MODEL --data DATA --prune 0.5 --distill` twice — one process using every
core, then --nproc-per-node N processes of one thread each — and prints the distillation time (read
from each run's compress_report.json), the speed-up and both test accuracies. The README quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained classifier checkpoint (model.pt)")
    parser.add_argument("--data", type=Path, required=True, help="its data root: train/ val/ test/")
    parser.add_argument("--nproc", type=int, default=2, help="processes for the distributed run")
    parser.add_argument("--epochs", type=int, default=3, help="distillation epochs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = {}
        for name, extra in (("1 process", []), (f"{args.nproc} processes", ["--nproc-per-node", str(args.nproc),
                                                                             "--master-port", str(_free_port())])):
            out = Path(scratch) / name.replace(" ", "-")
            command = [sys.executable, "-m", "edgevision", "compress", str(args.model), "--data", str(args.data),
                       "-o", str(out), "--prune", "0.5", "--distill", "--epochs", str(args.epochs), "--export", "onnx",
                       "--quantize", "fp32", "--max-accuracy-drop", "0.5", *extra]
            print(f"running: {' '.join(command)}", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
            report = json.loads((out / "compress_report.json").read_text())
            rows[name] = (report["finetune_comparison"]["distill seconds"],
                          next(s for s in report["stages"] if s["stage"] == "distilled"))
    (one, first), (many, _) = rows.values()
    print(f"\n| run | distillation s | top-1 ({first['split']}) |\n|---|---|---|")
    for name, (seconds, stage) in rows.items():
        print(f"| {name} | {seconds:.1f} | {stage['accuracy']:.2%} |")
    print(f"\nspeed-up of {args.nproc} processes over 1: {one / many:.2f}× on {os.cpu_count()} CPUs")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
