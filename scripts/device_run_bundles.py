"""Run every bundle under a folder on a labelled image folder, in a device env (no torch), and compare.

    python device_run_bundles.py BUNDLES DATA --out RESULT.json [--reference X86.json ...] [--require NAME ...]

Prints top-1 per bundle and writes each bundle's predicted class per image to RESULT.json. With
`--reference` (the same run on the workstation), every bundle must predict the same class for every image
and reach the same top-1: the parity a device install must keep. Runs on Python 3.10+ and numpy 1.24+.

Detect bundles (onnx-detect, tflite-detect) run `Runtime.detect` — the device's own numpy/OpenCV decoding
and NMS — on BUNDLES/detect-data (a COCO split); against a reference, every image must give the same
objects (same classes, boxes within DETECT_BOX_TOLERANCE pixels, scores within DETECT_SCORE_TOLERANCE).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

BUNDLE_NAMES = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")
DETECT_BUNDLE_NAMES = ("onnx-detect", "tflite-detect")
ENGINE_FOR = {"onnx": "onnxruntime", "tflite": "ai_edge_litert"}
#: Across numpy/OpenCV versions and CPUs, float rounding moves a box by far less than a pixel.
DETECT_BOX_TOLERANCE = 0.5
DETECT_SCORE_TOLERANCE = 1e-3


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
    detect_data = args.bundles / "detect-data"
    for name in DETECT_BUNDLE_NAMES:
        path = args.bundles / name
        engine = ENGINE_FOR[name.split("-")[0]]
        if not path.is_dir() or not detect_data.is_dir() or importlib.util.find_spec(engine) is None:
            if name in args.require:
                print(f"FAIL: {name} was required but {'is missing' if not path.is_dir() else engine + ' or its data is missing'}")
                return 1
            continue
        results[name] = run_detector(path, detect_data, args.max_images)
    args.out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                                    "numpy": np.__version__, "opencv": cv.describe(), "bundles": results}))
    failed = [name for name, r in results.items() if r.get("top1", 1.0) < args.min_top1]
    if failed:
        print(f"FAIL: top-1 below {args.min_top1:.0%}: {', '.join(failed)}")
        return 1
    if args.reference:
        reference = {name: run for path in args.reference for name, run in json.loads(path.read_text())["bundles"].items()}
        return compare(results, reference)
    return 0


def run_detector(path: Path, data: Path, max_images: int | None) -> dict:
    """Every test image through `Runtime.detect`: objects as [class id, score, x1, y1, x2, y2] (original pixels)."""
    import edgevision
    from edgevision.data.coco import CocoDetections

    runtime = edgevision.load_runtime(path, threads=2)
    dataset = CocoDetections.open(data, labels=runtime.bundle.manifest.labels)
    if max_images:
        dataset = dataset.subset(max_images, seed=0)
    predictions = []
    for image, _ in dataset:
        (found,) = runtime.detect([image])
        predictions.append([[int(k), float(s), *map(float, box)] for k, s, box in
                            zip(found.class_ids.tolist(), found.scores.tolist(), found.boxes.tolist())])
    objects = sum(len(p) for p in predictions)
    print(f"  {path.name:12s} {runtime.name:12s} {objects} objects in {len(dataset)} test images "
          f"(decode + NMS with numpy/OpenCV on the device)", flush=True)
    return {"n": len(dataset), "images": [t.file_name for t in dataset.targets], "detections": predictions}


def same_objects(mine: list[list[float]], theirs: list[list[float]]) -> bool:
    """Same classes in the same order, boxes and scores within the tolerances."""
    if len(mine) != len(theirs):
        return False
    for a, b in zip(mine, theirs):
        if int(a[0]) != int(b[0]) or abs(a[1] - b[1]) > DETECT_SCORE_TOLERANCE:
            return False
        if max(abs(x - y) for x, y in zip(a[2:], b[2:])) > DETECT_BOX_TOLERANCE:
            return False
    return True


def compare(results: dict[str, dict], reference: dict[str, dict]) -> int:
    """0 when every bundle run here predicts, image by image, what the reference run predicted."""
    status = 0
    for name, result in results.items():
        if name not in reference:
            print(f"  {name}: no reference run to compare with")
            continue
        if "detections" in result:
            expected = dict(zip(reference[name]["images"], reference[name]["detections"]))
            missing = [image for image in result["images"] if image not in expected]
            differ = sum(not same_objects(got, expected.get(image, [])) for image, got in
                         zip(result["images"], result["detections"]))
            verdict = "parity equal" if differ == 0 and not missing else "PARITY DIFFERS"
            print(f"  {name:12s} vs reference: {differ} of {len(result['images'])} images' objects differ "
                  f"(boxes ±{DETECT_BOX_TOLERANCE} px): {verdict}")
            status |= int(bool(differ or missing))
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
