#!/usr/bin/env bash
# Show that a device needs only numpy, (any) OpenCV and one engine, on the Pythons and numpys boards have:
#  1. build small ONNX and TFLite bundles (FP32 and INT8 classifiers, an FP32 detector) with the full workstation env;
#  2. x86 reference: Python 3.11 venvs holding edgevision[opencv,onnx] / [opencv,tflite] and nothing else,
#     through constraints.txt (numpy 2, OpenCV 5): the workstation's pins;
#  3. a Jetson-like venv: Python 3.10 (JetPack 6) with numpy 1.26 and OpenCV 4.x, both engines, no constraints file:
#     every bundle must predict exactly what the reference predicted (parity equal).
# Accuracy is on the digits test split (images that chose nothing). WORK (default: a temp dir) holds bundles,
# venvs and result JSONs; scripts/device_check_arm64.sh reuses it. `--reference-only` stops after step 2.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-$(mktemp -d)}
# The workstation env (override for a shared venv, e.g. FULL_PYTHON="env PYTHONPATH=$PWD /path/.venv/bin/python").
FULL=${FULL_PYTHON:-.venv/bin/python}

# JetPack 6's Python: PY310, else a python3.10 that runs (a pyenv shim may exist without 3.10 being active).
find_python310() {
  local candidate
  for candidate in "${PY310:-}" python3.10 "$(pyenv root 2>/dev/null || echo ~/.pyenv)"/versions/3.10*/bin/python; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "device-check: no Python 3.10 here: pyenv install 3.10 (or set PY310=/path/to/python3.10)" >&2
  return 1
}
RUNNER=scripts/device_run_bundles.py
unset PYTHONPATH  # device venvs must import the edgevision they installed
mkdir -p "$WORK"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -f "$WORK/bundles/.done" ]; then
  echo "== making small ONNX and TFLite bundles (FP32, INT8) with the workstation env"
  rm -rf "$WORK/bundles"
  $FULL scripts/make_test_bundle.py --out "$WORK/bundles"
  touch "$WORK/bundles/.done"
fi

site_size() {
  local site
  site=$("$1/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  du -sh "$site" | cut -f1
}

# device_venv NAME PYTHON PIP_ARGS...: a fresh venv holding only what PIP_ARGS name.
device_venv() {
  local name=$1 python=$2
  shift 2
  local venv="$WORK/venv-$name" start=$SECONDS
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "$@"
  echo "   $name: installed in $((SECONDS - start)) s, site-packages $(site_size "$venv")"
}

if [ ! -f "$WORK/reference-tflite.json" ]; then
  echo "== x86 reference: Python 3.11 device venvs through constraints.txt"
  device_venv py311-onnx python3 -c constraints.txt ".[opencv,onnx]"
  "$WORK/venv-py311-onnx/bin/python" $RUNNER "$WORK/bundles" "$WORK/bundles/data" --out "$WORK/reference-onnx.json" \
    --require onnx-fp32 --require onnx-int8 --require onnx-detect
  tflite_required=()
  [ -d "$WORK/bundles/tflite-fp32" ] && tflite_required=(--require tflite-fp32 --require tflite-int8 --require tflite-detect)
  device_venv py311-tflite python3 -c constraints.txt ".[opencv,tflite]"
  "$WORK/venv-py311-tflite/bin/python" $RUNNER "$WORK/bundles" "$WORK/bundles/data" --out "$WORK/reference-tflite.json" \
    "${tflite_required[@]}"
fi
if [ "${1:-}" = "--reference-only" ]; then exit 0; fi

PY310=$(find_python310)
echo "== Jetson-like device venv: $($PY310 --version), numpy 1.26, both engines, no constraints file"
device_venv py310-numpy1 "$PY310" "numpy==1.26.4" ".[opencv,onnx,tflite]"
"$WORK/venv-py310-numpy1/bin/python" $RUNNER "$WORK/bundles" "$WORK/bundles/data" --out "$WORK/py310-numpy1.json" \
  --reference "$WORK/reference-onnx.json" --reference "$WORK/reference-tflite.json" \
  --require onnx-fp32 --require onnx-int8 --require tflite-fp32 --require tflite-int8 \
  --require onnx-detect --require tflite-detect
echo "== device-check passed (WORK=$WORK)"
