"""Run every bundle under a folder on a labelled image folder, in a device env (no torch), and compare.

    python device_run_bundles.py BUNDLES DATA --out RESULT.json [--reference X86.json ...] [--require NAME ...]

Prints top-1 per bundle and writes each bundle's predicted class per image to RESULT.json. With
`--reference` (the same run on the workstation), every bundle must predict the same class for every image
and reach the same top-1: the parity a device install must keep. Runs on Python 3.10+ and numpy 1.24+.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

BUNDLE_NAMES = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")
ENGINE_FOR = {"onnx": "onnxruntime", "tflite": "ai_edge_litert"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundles", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", type=Path, action="append", default=[], help="a reference run's JSON (repeatable)")
    parser.add_argument("--require", action="append", default=[], help="a bundle that must run here")
    parser.add_argument("--min-top1", type=float, default=0.9)
    parser.add_argument("--max-images", type=int, help="a seeded subset (emulated runs are slow); compared by image")
    args = parser.parse_args()

    import numpy as np

    import edgevision
    from edgevision.data import ImageFolder
    from edgevision.devices import opencv_info

    for heavy in ("torch", "torchvision", "tensorflow", "jax"):
        if importlib.util.find_spec(heavy) is not None:
            print(f"FAIL: {heavy} is installed in the device env")
            return 1
    cv = opencv_info()
    print(f"python {platform.python_version()} ({platform.machine()}), numpy {np.__version__}, {cv.describe()}")
    folder = ImageFolder.open(args.data)
    if args.max_images:
        folder = folder.subset(args.max_images, seed=0)
    images = [str(path.relative_to(folder.root)) for path, _ in folder.samples]
    results: dict[str, dict] = {}
    for name in BUNDLE_NAMES:
        path = args.bundles / name
        engine = ENGINE_FOR[name.split("-")[0]]
        if not path.is_dir() or importlib.util.find_spec(engine) is None:
            if name in args.require:
                print(f"FAIL: {name} was required but {'is missing' if not path.is_dir() else engine + ' is not installed'}")
                return 1
            continue
        runtime = edgevision.load_runtime(path, threads=2)
        predictions = [int(np.argmax(runtime.predict([image])[0])) for image, _ in folder]
        correct = sum(int(p == label) for p, (_, label) in zip(predictions, folder))
        results[name] = {"top1": correct / len(folder), "n": len(folder), "images": images, "predictions": predictions}
        print(f"  {name:12s} {runtime.name:12s} top-1 {correct / len(folder):.2%} on {len(folder)} test images", flush=True)
    args.out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                                    "numpy": np.__version__, "opencv": cv.describe(), "bundles": results}))
    failed = [name for name, r in results.items() if r["top1"] < args.min_top1]
    if failed:
        print(f"FAIL: top-1 below {args.min_top1:.0%}: {', '.join(failed)}")
        return 1
    if args.reference:
        reference = {name: run for path in args.reference for name, run in json.loads(path.read_text())["bundles"].items()}
        return compare(results, reference)
    return 0


def compare(results: dict[str, dict], reference: dict[str, dict]) -> int:
    """0 when every bundle run here predicts, image by image, exactly what the reference run predicted."""
    status = 0
    for name, result in results.items():
        if name not in reference:
            print(f"  {name}: no reference run to compare with")
            continue
        expected = dict(zip(reference[name]["images"], reference[name]["predictions"]))
        missing = [image for image in result["images"] if image not in expected]
        differ = sum(expected.get(image) != got for image, got in zip(result["images"], result["predictions"]))
        verdict = "parity equal" if differ == 0 and not missing else "PARITY DIFFERS"
        print(f"  {name:12s} vs reference: {differ} of {len(result['images'])} predictions differ "
              f"({len(missing)} images not in the reference): {verdict}")
        if differ or missing:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
