"""The detection half of `edgevision demo`: data, detector, every format, bench with mAP, a picture.

Same discipline as the classifier half: train fits, val chooses (the epoch, every bundle's
parity), test reports (mAP in the table and the picture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Test images drawn in the gallery (rows), each with the ground truth and every bundle's boxes.
GALLERY_IMAGES = 4


def train_detector_with_progress(root: Path, *, threads: int | None, seed: int = 0, epochs: int | None = None):  # noqa: ANN201
    """Generate the digits-on-photos data under root/data, train the demo detector with a progress bar."""
    from ..data.detection import make_detection_dataset
    from ..train_detect import DEFAULT_EPOCHS, DetectorProgress, train_detector
    from .console import console, progress

    with console.status(f"writing the detection data set (digits on photos, COCO) to {root / 'data'} …"):
        splits = make_detection_dataset(root / "data", seed=seed)
    epochs = epochs or DEFAULT_EPOCHS
    with progress() as bar:
        task = bar.add_task("training the digits detector", total=None)

        def on_step(event: DetectorProgress) -> None:
            bar.update(task, total=event.epochs * event.steps, completed=(event.epoch - 1) * event.steps + event.step)
            if event.val_map50 is not None:
                bar.update(task, description=f"training the digits detector (epoch {event.epoch}: loss {event.loss:.3f}, "
                                             f"val mAP50 {event.val_map50:.3f})")

        report = train_detector(splits, root / "model.pt", epochs=epochs, threads=threads, seed=seed, progress=on_step)
    (root / "train.json").write_text(json.dumps({
        "epochs": report.epochs, "best_epoch": report.best_epoch, "val_map50": list(report.val_map50),
        "test_map50_95": report.test_map50_95, "test_map50": report.test_map50, "seconds": report.seconds,
        "images": report.images, "input_size": list(report.input_size),
        "note": "val chose the epoch; test chose nothing and is the figure to report",
    }, indent=2))
    return splits, report


def detection_demo(out: Path, *, formats: list[Any], precisions: list[Any], threads: int, iterations: int) -> None:
    """Train, export every format × precision with detection parity on val, bench with test mAP, draw the gallery."""
    from ..bench import BenchConfig, bench
    from ..bench.gallery import detection_gallery
    from ..bench.report import save_report, to_table
    from ..data.coco import CocoDetections
    from ..export import ParityConfig, export
    from ..model import TrainedModel
    from ..runtimes import load_runtime
    from ..types import Format, Precision
    from .console import console, progress

    root = out / "detect"
    console.rule("detection: digits pasted on real photos → a small FCOS detector → every engine")
    splits, report = train_detector_with_progress(root, threads=threads)
    console.print(f"[green]✓[/] trained the detector: test mAP50 {report.test_map50:.3f}, mAP50-95 "
                  f"{report.test_map50_95:.3f} (held out); val chose epoch {report.best_epoch}/{report.epochs} in "
                  f"{report.seconds:.0f} s")
    model = TrainedModel.load(report.checkpoint)
    jobs = [(Format.TORCH, Precision.FP32)] + [(f, p) for f in formats for p in precisions]
    bundles = []
    with progress() as bar:
        task = bar.add_task("exporting", total=len(jobs))
        for fmt, prec in jobs:
            bar.update(task, description=f"exporting the detector: {fmt.value} {prec.value} (+ detection parity on val)")
            name = "torch-reference" if fmt is Format.TORCH else f"{fmt.value}-{prec.value}"
            bundles.append(export(model, root / "bundles" / name, format=fmt, precision=prec,
                                  parity=ParityConfig(data=splits.val), overwrite=True))
            bar.advance(task)
    for bundle in bundles[1:]:
        p = bundle.manifest.parity
        console.print(f"  {bundle.path.name:<16} parity: mAP50 {p.detection_map50:.3f} against the torch model's "
                      f"detections on {p.data}, max |Δ| raw {p.max_abs_diff:.2g} ({p.engine}, {p.engine_precision})")
    config = BenchConfig(threads=(threads,), iterations=iterations, warmup=20, data=splits.test, split_name="test")
    test = CocoDetections.open(splits.test, labels=splits.labels)
    with progress() as bar:
        task = bar.add_task("benchmarking the detectors", total=len(bundles))
        result = bench(bundles, config=config, progress=lambda phase, n: bar.advance(task, n) if phase == "row" else None)
    save_report(result, root / "bench")
    console.print(to_table(result, title=f"detection: FCOS (MobileNetV3-Small FPN) @ {report.input_size[0]}×"
                                         f"{report.input_size[1]} letterboxed, batch 1, {threads} threads; mAP on the "
                                         f"held-out test split ({len(test)} images); post = decode + NMS, e2e = "
                                         "preprocess + inference + post"))
    images = [test.image(i) for i in range(min(GALLERY_IMAGES, len(test)))]
    found = {}
    for bundle in bundles:
        with load_runtime(bundle, threads=threads) as runtime:
            found[bundle.path.name] = runtime.detect(images)
    picture = detection_gallery(test, found, root / "detections.png", images=GALLERY_IMAGES)
    console.print(f"picture: {picture} (green: ground truth; orange: what each engine found)")
