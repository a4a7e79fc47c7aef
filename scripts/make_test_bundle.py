"""Train a quick digits model and export small bundles (for scripts/device_env_check.sh)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgevision.data.digits import make_digits_folder
from edgevision.export import ParityConfig, export
from edgevision.train import TrainConfig, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    split = make_digits_folder(args.out / "data-all", size=32)
    model, report = train_classifier(split.train, split.val, config=TrainConfig(architecture="resnet18", epochs=3))
    print(f"trained: val top-1 {report.val_accuracy:.2%}")
    (args.out / "data").symlink_to(split.val.resolve())
    for fmt in ("onnx", "tflite"):
        try:
            bundle = export(model, args.out / f"{fmt}-fp32", format=fmt, parity=ParityConfig(data=split.val))
            print(f"exported {bundle.path} ({bundle.size_bytes / 1e6:.1f} MB)")
        except ImportError as exc:
            print(f"skipping {fmt}: {exc}")


if __name__ == "__main__":
    main()
