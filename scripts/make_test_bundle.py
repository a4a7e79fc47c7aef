"""Train a quick digits model and export small bundles (for the device checks: scripts/device_env_check.sh).

Writes OUT/{onnx-fp32,onnx-int8,tflite-fp32,tflite-int8} (whichever engines this env has) and OUT/data,
the digits test split: images that chose nothing, so the accuracy the device checks print is honest.
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


if __name__ == "__main__":
    main()
