# edgevision — the two commands a newcomer needs are `make demo` and `make test`.
# Everything installs into .venv through constraints.txt (CPU-only torch; pinned engines).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-all
PYTEST_ARGS ?=

.PHONY: install demo demo-full test test-fast bench device-check device-check-arm64 clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: train the digits classifier, export every format, bench them all, compress and bench again; then the
## digits detector through every engine, uncompressed and compressed (10 min 29 s on a quiet 2-core AMX Xeon,
## 2026-11-30: see README).
demo: install
	$(VENV)/bin/edgevision demo --out runs/demo

## The same with the detector in every format × precision and compressed for every engine, then segmentation: the
## LR-ASPP segmenter trained on the detection photos' masks (≈5 min), every engine, compressed (see README for its time).
demo-full: install
	$(VENV)/bin/edgevision demo --full --out runs/demo-full

## The test suite (slow end-to-end tests included).
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## Speed benchmarks (not timed tests): writes docs/benchmarks.md and docs/benchmarks.json.
## Speed-ups are medians of paired rounds; the doc reads the machine, flags and run time from the run.
bench: install
	$(PY) scripts/benchmark.py --out docs

## The architecture matrix (torchvision classifiers × export/INT8/pruning): docs/architectures.md/.json and the README table.
.PHONY: architectures
architectures: install
	$(PY) scripts/architecture_matrix.py --out docs --readme README.md

## A smoke run of the benchmark (one small model, 1-epoch training, few rounds): not for publishing.
.PHONY: bench-quick
bench-quick: install
	$(PY) scripts/benchmark.py --quick --out runs/bench-quick --work runs/bench-quick/work

## Device-style environments (numpy + OpenCV + one engine, no torch) run bundles made by the full env:
## Python 3.11 (x86 reference) and Python 3.10 with numpy 1.26 (JetPack 6), predictions equal.
device-check: install
	bash scripts/device_env_check.sh

## Raspberry Pi OS on an emulated arm64 Debian Bookworm root (debootstrap + qemu-user-static, Cortex-A72; needs root):
## apt's Python 3.11 / numpy 1.24 / OpenCV, LiteRT and ONNX Runtime from PyPI, predictions equal to x86.
## The root is cached in ~/.cache/edgevision (first run builds it). WORK=DIR shares bundles with device-check.
device-check-arm64: install
	bash scripts/device_check_arm64.sh

clean:
	rm -rf runs bench-output .pytest_cache
