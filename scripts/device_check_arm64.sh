#!/usr/bin/env bash
# Prove a Raspberry Pi OS install on an arm64 userland: in a Debian Bookworm arm64 root (Pi OS's base) under
# qemu-user-static emulating a Pi 4's Cortex-A72, make a --system-site-packages venv over apt's python3 (3.11.2),
# python3-numpy (1.24) and python3-opencv (the system cv2: no pip OpenCV), install edgevision's device side with
# LiteRT and ONNX Runtime aarch64 wheels from PyPI while keeping apt's numpy, and run the test bundles:
# every prediction must equal the x86 run's (parity equal). Needs root. WORK is shared with
# scripts/device_env_check.sh (bundles and x86 reference are made if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-$(mktemp -d)}
# Emulated inference is slow (~1 s per image for the four bundles): a seeded subset of the 360 test images, compared
# image by image with the x86 run; ARM64_IMAGES=0 runs all of them.
ARM64_IMAGES=${ARM64_IMAGES:-120}
ROOT_SCRIPT=scripts/arm64_root.sh
FULL=${FULL_PYTHON:-.venv/bin/python}
start=$SECONDS

if [ ! -f "$WORK/reference-tflite.json" ]; then
  WORK=$WORK bash scripts/device_env_check.sh --reference-only
fi

echo "== arm64 root"
bash $ROOT_SCRIPT build
ROOT=$(bash $ROOT_SCRIPT path)
root_ready=$SECONDS

echo "== edgevision wheel (pure Python) built on the host"
rm -rf "$WORK/wheel"
$FULL -m pip wheel --quiet --no-deps -w "$WORK/wheel" . >/dev/null
WHEEL=$(basename "$WORK"/wheel/edgevision-*.whl)

# Everything the check needs goes to /opt/check inside the root; the venv stays between runs (the warm path).
CHECK=$ROOT/opt/check
rm -rf "$CHECK"
mkdir -p "$CHECK"
cp -rL "$WORK/bundles" "$CHECK/bundles"
cp "$WORK/wheel/$WHEEL" scripts/device_run_bundles.py "$WORK"/reference-*.json "$CHECK/"

bash $ROOT_SCRIPT run /bin/bash -euo pipefail -c "
  cd /opt/check
  echo \"   \$(python3 --version), apt numpy \$(python3 -c 'import numpy; print(numpy.__version__)'), QEMU_CPU=\$QEMU_CPU\"
  [ -x /opt/venv/bin/python ] || python3 -m venv --system-site-packages /opt/venv
  # Keep apt's numpy: pip may only pick engine versions that accept it (opencv-python-headless would replace it).
  python3 -c 'import numpy; print(\"numpy==\" + numpy.__version__)' > keep-apt-numpy.txt
  /opt/venv/bin/pip install --quiet --no-compile -c keep-apt-numpy.txt ai-edge-litert onnxruntime
  /opt/venv/bin/pip install --quiet --no-compile --force-reinstall --no-deps ./$WHEEL
  /opt/venv/bin/pip install --quiet --no-compile -c keep-apt-numpy.txt ./$WHEEL
  /opt/venv/bin/python -c 'import numpy, sys; assert numpy.__file__.startswith(\"/usr/lib/python3/\"), numpy.__file__'
  /opt/venv/bin/pip list 2>/dev/null | grep -i -E '^(numpy|onnxruntime|ai-edge-litert|opencv) ' | sed 's/^/   /'
  echo \"   venv site-packages: \$(du -sh /opt/venv/lib/python3.11/site-packages | cut -f1)\"
  echo \"   (ONNX Runtime prints cpuinfo errors: /sys is left unmounted on purpose, see scripts/arm64_root.sh)\"
  /opt/venv/bin/python device_run_bundles.py bundles bundles/data --out arm64.json \
    --reference reference-onnx.json --reference reference-tflite.json \
    --require tflite-fp32 --require tflite-int8 --require onnx-int8 --require onnx-fp32 \
    --require onnx-detect --require tflite-detect --max-images $ARM64_IMAGES
"
cp "$CHECK/arm64.json" "$WORK/arm64.json"
echo "== device-check-arm64 passed: root $((root_ready - start)) s, install + run $((SECONDS - root_ready)) s, total $((SECONDS - start)) s"
