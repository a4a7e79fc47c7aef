"""The architecture matrix: the classifiers users bring, through every export and through pruning.

Each architecture is built by `edgevision.model.build_architecture` (torchvision, random init; nothing is
downloaded), trained for a few epochs on the digits so its outputs mean something (a random-init ViT's
classifier answers 0 for everything, and parity on it would prove nothing), then run through the public
API exactly as a user would:
- export to ONNX / OpenVINO / TFLite in FP32 and FP16, each with parity on the validation split;
- INT8 per engine (`edgevision.compress.quantize`, 128 calibration images), parity on the validation split;
- pruning to half the MACs (`edgevision.compress.prune`), then ONNX export with parity, and the latency of the
  pruned and unpruned ONNX bundles measured through ONNX Runtime in the same run (paired, p50).
Every cell is ✔ with its evidence, or ✘ with the one-line reason edgevision gave. An exception that is not an
`edgevision.errors` error is a bug: its cell says "unhandled" and the script exits 1.

    python scripts/architecture_matrix.py --out docs [--readme README.md] [--only vit_b_16,swin_t]

Writes `architectures.json` and `architectures.md` to --out (and the table into the README between its
markers); `--only` re-runs some architectures and keeps the others' cells from an existing json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmark_machine import code_version, describe_machine

from edgevision.bench import BenchConfig, bench
from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.prune import PruneConfig, prune
from edgevision.compress.quantize import quantize
from edgevision.data.digits import DigitsSplit, make_digits_folder
from edgevision.errors import EdgeVisionError
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel
from edgevision.train import TrainConfig, train_classifier

ARCHITECTURES = (
    "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
    "regnet_x_400mf", "vit_b_16", "swin_t", "vit_tiny",
)
FORMATS = ("onnx", "openvino", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
COLUMNS = tuple(f"{fmt} {precision}" for fmt in FORMATS for precision in PRECISIONS) + ("prune",)
#: Input size: the demo digits' 32 px (ViT-B/16 sees 2×2 patches: small, as the issue allows; its cost is its width).
SIZE = 32
EPOCHS = 2
#: Architectures that learn slower from random init at 32 px (2 epochs left them predicting one class) get more.
EPOCHS_FOR = {"mobilenet_v2": 6, "mobilenet_v3_large": 6, "efficientnet_b0": 6, "regnet_x_400mf": 6, "vit_b_16": 6,
              "vit_tiny": 20}
CALIBRATION_IMAGES = 128
PRUNE_MACS = 0.5
SHOWN_REASON = 110  # characters of a failure's reason in the table
README_BEGIN, README_END = "<!-- architectures:begin -->", "<!-- architectures:end -->"


@dataclass
class Cell:
    ok: bool
    text: str  # evidence when ok, the reason when not
    unhandled: bool = False  # not an edgevision error: a bug to fix
    seconds: float = 0.0

    @property
    def shown(self) -> str:
        """For the table: the evidence, or the reason's first sentence (the json keeps it whole)."""
        if self.ok:
            return f"✔ {self.text}"
        reason = compact_reason(self.text)
        return f"✘ {'unhandled ' if self.unhandled else ''}{reason[:SHOWN_REASON]}{'…' if len(reason) > SHOWN_REASON else ''}"


def compact_reason(text: str) -> str:
    """A reason's first sentence without what the table already says (which bundle) or cannot use (paths)."""
    reason = text.split(". ")[0].removesuffix(".")
    reason = re.sub(r"^\w+ \w+ bundle failed parity: ", "", reason)  # the column names the bundle
    reason = re.sub(r" on /\S+.*$", "", reason)  # where it was measured (the json keeps it)
    reason = re.sub(r" \((/[^)]*|largest range[^)]*)\)", "", reason)
    return re.sub(r"/\S*/([^/\s]+:\d+)", r"\1", reason)  # a source location: its file name


def run_cell(work: Callable[[], str]) -> Cell:
    """One cell: its evidence, or the first line of the reason it failed."""
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = work()
        return Cell(True, text, seconds=time.perf_counter() - started)
    except EdgeVisionError as exc:
        return Cell(False, _first_line(exc), seconds=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a raw library error is exactly what the matrix must surface
        traceback.print_exc()
        return Cell(False, f"{type(exc).__name__}: {_first_line(exc)}", unhandled=True,
                    seconds=time.perf_counter() - started)


def architecture_row(arch: str, digits: DigitsSplit, work: Path, *, epochs: int = EPOCHS, log: Callable[[str], None] = print) -> dict:
    """Train `arch` briefly, then every cell. The row holds the training figures and the cells."""
    started = time.perf_counter()
    model, report = train_classifier(
        digits.train, digits.val, config=TrainConfig.for_architecture(arch, input_size=SIZE, epochs=epochs),
    )
    log(f"{arch}: trained {epochs} epochs in {report.seconds:.0f} s, val top-1 {report.val_accuracy:.1%}")
    cells: dict[str, Cell] = {}
    parity = ParityConfig(data=digits.val)
    for fmt in FORMATS:
        for precision in ("fp32", "fp16"):
            cells[f"{fmt} {precision}"] = run_cell(
                lambda fmt=fmt, precision=precision: _float_cell(model, work / arch / f"{fmt}-{precision}", fmt, precision,
                                                                 parity))
            log(f"  {fmt} {precision}: {cells[f'{fmt} {precision}'].shown}")
        cells[f"{fmt} int8"] = run_cell(lambda fmt=fmt: _int8_cell(model, work / arch / f"{fmt}-int8", fmt, digits))
        log(f"  {fmt} int8: {cells[f'{fmt} int8'].shown}")
    cells["prune"] = run_cell(lambda: _prune_cell(model, work / arch / "prune", digits, cells["onnx fp32"]))
    log(f"  prune: {cells['prune'].shown}")
    return {
        "architecture": arch, "val_top1": report.val_accuracy, "train_seconds": report.seconds, "epochs": epochs,
        "seconds": time.perf_counter() - started, "cells": {name: asdict(cell) for name, cell in cells.items()},
    }


def _float_cell(model: TrainedModel, out: Path, fmt: str, precision: str, parity: ParityConfig) -> str:
    bundle = export(model, out, format=fmt, precision=precision, parity=parity, overwrite=True)
    report = bundle.manifest.parity
    route = " via ONNX" if (bundle.manifest.conversion or "").startswith("onnx") else ""
    return f"{report.top1_agreement:.1%}{route}"


def _int8_cell(model: TrainedModel, out: Path, fmt: str, digits: DigitsSplit) -> str:
    bundle = quantize(model, out, format=fmt, calibration=CalibrationConfig(data=digits.train,
                      max_images=CALIBRATION_IMAGES), validation=digits.val, overwrite=True)
    return f"{bundle.manifest.parity.top1_agreement:.1%}"


def _prune_cell(model: TrainedModel, out: Path, digits: DigitsSplit, unpruned: Cell) -> str:
    pruned, report = prune(model, config=PruneConfig(target_macs_ratio=PRUNE_MACS))
    before = out.parent / "onnx-fp32"
    if not unpruned.ok:
        return f"{report.macs_ratio:.2f}× MACs (no ONNX latency: the unpruned export failed)"
    after = export(pruned, out, format="onnx", parity=ParityConfig(data=digits.val), overwrite=True)
    rows = bench([before, after], runtimes=["onnxruntime"],
                 config=BenchConfig(warmup=10, iterations=100, threads=(None,), isolate=False)).rows
    speedup = rows[0].latency.p50_ms / rows[1].latency.p50_ms
    return f"{report.macs_ratio:.2f}× MACs, {speedup:.2f}× faster"


def render_table(rows: list[dict]) -> str:
    """The markdown table: one row per architecture, one column per cell."""
    header = "| architecture | epochs | val top-1 | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for row in rows:
        cells = [Cell(**row["cells"][name]).shown.replace("|", "/") for name in COLUMNS]
        lines.append(f"| {row['architecture']} | {row['epochs']} | {row['val_top1']:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    table = render_table(result["rows"])
    return f"""# Architecture matrix

Generated by `python scripts/architecture_matrix.py --out docs --readme README.md` ({result['generated']}, code
{result['code'].get('commit', '?')[:10]}, {result["machine"].get("cpu_model", "?")}; {result['seconds'] / 60:.0f} min).

Each torchvision classifier is built from random init, trained on the demo digits at {SIZE} px (the epochs below, with
`TrainConfig.for_architecture`'s settings at the commit above; val top-1 below: the models are barely trained, the matrix tests the toolchain,
not the architectures; a model whose logits do not vary gets *parity not established* everywhere), then exported
and checked through the public API. FP32/FP16/INT8 cells show the top-1 agreement with the torch model on the
validation split through the engine (bars: FP32/FP16 ≥ 99.5 % plus the logit tolerance, INT8 ≥ 98 %); "via ONNX":
OpenVINO could not trace the torch module and converted the ONNX export instead (recorded in the manifest).
Prune: MACs kept at a {PRUNE_MACS:.0%} MACs target, and the pruned ONNX bundle's speed-up over the unpruned one
through ONNX Runtime (p50, same run, {SIZE} px inputs: small inputs understate what pruning saves at camera sizes).
✘ cells give the reason edgevision reported. A model that predicts one class for every image (val top-1 10 %) can
still vary its logits: its FP32/FP16 parity rests on the logit tolerance, while at INT8, where top-1 agreement is the
only check, parity is *not established* (every image would agree on the same class).{_commits_note(result)}

{table}
"""


def _commits_note(result: dict) -> str:
    """Which rows were run at another commit than the header's (`--only` keeps the other rows' cells)."""
    head = result["code"].get("commit", "?")
    other = [f"{row['architecture']} at {row['commit'][:10]}" for row in result["rows"] if row.get("commit", head) != head]
    return f" Rows kept from an earlier run: {', '.join(other)}." if other else ""


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{readme} has no {README_BEGIN} … {README_END} block to fill")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}", encoding="utf-8")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:240]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--work", type=Path, default=None, help="bundles and data (default: a temp dir)")
    parser.add_argument("--readme", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated architectures to (re)run")
    parser.add_argument("--epochs", type=int, default=None, help=f"for every architecture (default {EPOCHS}, or "
                        f"EPOCHS_FOR's: {', '.join(f'{a} {n}' for a, n in EPOCHS_FOR.items())})")
    parser.add_argument("--render-only", action="store_true", help="re-render the md/README from the existing json")
    args = parser.parse_args(argv)
    json_path = args.out / "architectures.json"
    if args.render_only:
        result = json.loads(json_path.read_text())
        (args.out / "architectures.md").write_text(render_markdown(result), encoding="utf-8")
        if args.readme is not None:
            update_readme(args.readme, render_table(result["rows"]))
        return 0
    chosen = [a for a in args.only.split(",") if a] or list(ARCHITECTURES)
    unknown = sorted(set(chosen) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"unknown architectures {unknown}; choose from {', '.join(ARCHITECTURES)}")
    kept = {}
    if args.only and json_path.is_file():
        kept = {row["architecture"]: row for row in json.loads(json_path.read_text())["rows"]}
    with tempfile.TemporaryDirectory(prefix="edgevision-matrix-") as scratch:
        work = args.work or Path(scratch)
        digits = make_digits_folder(work / "data", size=SIZE)
        code = code_version()
        for arch in chosen:
            epochs = args.epochs or EPOCHS_FOR.get(arch, EPOCHS)
            kept[arch] = {**architecture_row(arch, digits, work, epochs=epochs), "commit": code.get("commit", "?")}
    rows = [kept[a] for a in ARCHITECTURES if a in kept]
    result = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "code": code,
        "machine": describe_machine(), "size": SIZE, "rows": rows,
        "seconds": sum(row["seconds"] for row in rows),  # every row's own time, re-run rows included
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    (args.out / "architectures.md").write_text(render_markdown(result), encoding="utf-8")
    if args.readme is not None:
        update_readme(args.readme, render_table(rows))
    unhandled = [f"{row['architecture']} {name}" for row in rows for name, cell in row["cells"].items()
                 if cell["unhandled"]]
    print(render_table(rows))
    if unhandled:
        print(f"unhandled errors (bugs): {', '.join(unhandled)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
