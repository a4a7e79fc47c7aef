"""Paired check on this machine's CPU: ONNX Runtime static INT8 with 8-bit vs 7-bit (`reduce_range`) weights.

Same models, calibration and parity data; only `reduce_range` differs (forced through `quantize_static`). It is the
evidence for edgevision's 7-bit weights (`compress/quantize/onnx.py`): run it on a CPU with and without VNNI.

    python scripts/int8_weight_bits.py          # from the repository root; writes $OUT/int8_weights.json if OUT is set
"""
import json, os, sys, tempfile, time, warnings
from pathlib import Path

warnings.simplefilter("ignore")
sys.path.insert(0, os.getcwd())
import onnxruntime.quantization as q

ORIGINAL = q.quantize_static
FORCED = {"value": True}


def forced(*args, **kwargs):
    kwargs["reduce_range"] = FORCED["value"]
    return ORIGINAL(*args, **kwargs)


q.quantize_static = forced

from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.quantize import quantize
from edgevision.export import ParityConfig
from edgevision.types import Task

root = Path(tempfile.mkdtemp())
results = []


def run(name, model, calib, val, **options):
    for rr in (False, True):
        FORCED["value"] = rr
        started = time.time()
        try:
            b = quantize(model, root / f"{name}-{rr}", format="onnx", calibration=CalibrationConfig(data=calib, max_images=100),
                         parity=ParityConfig(data=val, min_top1_agreement=0.0, min_detection_map50=0.0), **options)
            p = b.manifest.parity
            value = p.detection_map50 if p.detection_map50 is not None else p.top1_agreement
            acc = b.manifest.compression.get("accuracy", "")
        except Exception as exc:  # report, keep going
            value, acc = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        line = {"case": name, "reduce_range": rr, "agreement": value, "accuracy": acc, "s": round(time.time() - started, 1)}
        results.append(line)
        print(json.dumps(line), flush=True)


# 1. the YOLO-layout ONNX detector of tests/compress/test_detect_int8.py (head in float)
from edgevision.compress.onnx_input import OnnxModel
from edgevision.data.detection import make_detection_dataset
from tests.yolo_like import make_yolo_onnx

coco = make_detection_dataset(root / "coco", counts=(40, 16, 4), image_size=(96, 128), object_height=(16, 40))
yolo = OnnxModel.open(make_yolo_onnx(root / "yolo.onnx", imgsz=(64, 96)), task=Task.DETECT)
run("yolo-layout head-float", yolo, coco.train, coco.val, head="float")

# 2. ResNet-18 trained 2 epochs on the 32 px digits (the architecture matrix's row)
from edgevision.data.digits import make_digits_folder
from edgevision.train import TrainConfig, train_classifier

digits = make_digits_folder(root / "digits", size=32)
for arch in ("resnet18", "mobilenet_v3_large"):
    model, report = train_classifier(digits.train, digits.val, config=TrainConfig.for_architecture(arch, input_size=32, epochs=2))
    print(json.dumps({"trained": arch, "val_top1": report.val_accuracy, "s": round(report.seconds, 1)}), flush=True)
    run(arch, model, digits.train, digits.val)

out = Path(os.environ.get("OUT", "."))
(out / "int8_weights.json").write_text(json.dumps(results, indent=1))
