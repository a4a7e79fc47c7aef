#!/usr/bin/env bash
# Show that a device needs only numpy, OpenCV and one engine: build a bundle with the full
# workstation env, then run it from a fresh venv holding edgevision[ENGINE] and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-$(mktemp -d)}
FULL=.venv/bin/python
echo "== making a small ONNX bundle with the workstation env"
$FULL scripts/make_test_bundle.py --out "$WORK/bundles"

check_engine() {
  local extra=$1 format=$2
  local venv="$WORK/device-$extra"
  echo "== device env: edgevision[$extra]"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -c constraints.txt ".[$extra]"
  "$venv/bin/python" - "$WORK/bundles/$format" "$WORK/bundles/data" <<'PY'
import importlib.util, sys
import numpy as np
import edgevision
from edgevision.data import ImageFolder
for heavy in ("torch", "torchvision", "tensorflow", "jax"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} is installed in the device env"
runtime = edgevision.load_runtime(sys.argv[1], threads=2)
folder = ImageFolder.open(sys.argv[2])
correct = sum(int(runtime.predict([image])[0].argmax() == label) for image, label in folder)
print(f"{runtime.name}: top-1 {correct / len(folder):.2%} on {len(folder)} images, torch absent")
assert correct / len(folder) > 0.9
PY
  local site
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "   installed size of $venv site-packages: $(du -sh "$site" | cut -f1)"
}

check_engine onnx onnx-fp32
if [ -d "$WORK/bundles/tflite-fp32" ]; then check_engine tflite tflite-fp32; fi
