"""Train a quick digits model and export small bundles (for the device checks: scripts/device_env_check.sh).

Writes OUT/{onnx-fp32,onnx-int8,tflite-fp32,tflite-int8} (whichever engines this env has) and OUT/data,
the digits test split: images that chose nothing, so the accuracy the device checks print is honest.
Then a briefly trained digits detector as OUT/{onnx-detect,tflite-detect} with OUT/detect-data (its COCO
test split): the device side runs decoding and NMS itself, so those bundles prove that part needs no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.quantize import quantize
from edgevision.data.digits import make_digits_folder
from edgevision.errors import EngineNotInstalledError
from edgevision.export import ParityConfig, export
from edgevision.train import TrainConfig, train_classifier


#: Enough for the detector to find objects (device runs compare them box by box); the demo trains longer.
DETECT_EPOCHS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    split = make_digits_folder(args.out / "data-all", size=32)
    model, report = train_classifier(split.train, split.val, config=TrainConfig(architecture="resnet18", epochs=3))
    print(f"trained: val top-1 {report.val_accuracy:.2%}")
    (args.out / "data").symlink_to(split.test.resolve())
    parity = ParityConfig(data=split.val)
    calibration = CalibrationConfig(data=split.train, max_images=64)
    for fmt in ("onnx", "tflite"):
        try:
            bundle = export(model, args.out / f"{fmt}-fp32", format=fmt, parity=parity)
            print(f"exported {bundle.path} ({bundle.size_bytes / 1e6:.1f} MB)")
            bundle = quantize(model, args.out / f"{fmt}-int8", format=fmt, calibration=calibration, parity=parity)
            print(f"quantised {bundle.path} ({bundle.size_bytes / 1e6:.1f} MB)")
        except (ImportError, EngineNotInstalledError) as exc:
            print(f"skipping {fmt}: {exc}")
    make_detect_bundles(args.out)


def make_detect_bundles(out: Path) -> None:
    """A small, briefly trained detector: enough objects found for box-by-box comparison, not a quality figure."""
    from edgevision.data.detection import make_detection_dataset
    from edgevision.model import TrainedModel
    from edgevision.train_detect import train_detector

    splits = make_detection_dataset(out / "detect-data-all", counts=(300, 60, 60))
    report = train_detector(splits, out / "detector.pt", epochs=DETECT_EPOCHS)
    print(f"trained detector: test mAP50 {report.test_map50:.3f} after {report.epochs} epochs ({report.seconds:.0f} s)")
    (out / "detect-data").symlink_to(splits.test.resolve())
    model = TrainedModel.load(report.checkpoint)
    for fmt in ("onnx", "tflite"):
        try:
            bundle = export(model, out / f"{fmt}-detect", format=fmt, parity=ParityConfig(data=splits.val))
            print(f"exported {bundle.path} ({bundle.size_bytes / 1e6:.1f} MB)")
        except (ImportError, EngineNotInstalledError) as exc:
            print(f"skipping {fmt} detect: {exc}")


if __name__ == "__main__":
    main()
