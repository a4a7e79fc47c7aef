"""Bundle + manifest: validated on load, written atomically, clear errors for bad bundles."""

from __future__ import annotations

import json
import shutil

import pytest

from edgevision import Bundle, errors
from edgevision.bundle import MANIFEST_NAME, atomic_directory


@pytest.fixture
def bundle_copy(onnx_bundle, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(onnx_bundle.path, target)
    return target


def test_manifest_carries_what_a_device_needs(onnx_bundle, trained_model):
    m = onnx_bundle.manifest
    assert m.format.value == "onnx" and m.precision.value == "fp32"
    assert m.input.shape == (-1, 3, 32, 32) and m.input.layout.value == "NCHW" and m.input.dtype == "float32"
    assert m.preprocess == trained_model.preprocess
    assert list(m.labels) == trained_model.labels
    assert m.source.sha256 == trained_model.weights_sha256()
    assert {"torch", "onnx", "edgevision"} <= set(m.versions)
    assert m.parity.passed and m.parity.top1_agreement >= 0.995 and m.parity.samples == 270  # the val split gates parity
    assert m.file_bytes["model.onnx"] == (onnx_bundle.path / "model.onnx").stat().st_size


def test_manifest_roundtrips(onnx_bundle):
    assert Bundle.load(onnx_bundle.path).manifest == onnx_bundle.manifest


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(errors.BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nope")


def test_missing_manifest(bundle_copy):
    (bundle_copy / MANIFEST_NAME).unlink()
    with pytest.raises(errors.ManifestError, match="no edgevision.json"):
        Bundle.load(bundle_copy)


def test_corrupt_manifest_json(bundle_copy):
    (bundle_copy / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(errors.ManifestError, match="not valid JSON"):
        Bundle.load(bundle_copy)


def test_manifest_missing_field(bundle_copy):
    raw = json.loads((bundle_copy / MANIFEST_NAME).read_text())
    del raw["labels"]
    (bundle_copy / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(errors.ManifestError, match="labels: Field required"):
        Bundle.load(bundle_copy)


def test_manifest_unknown_field(bundle_copy):
    raw = json.loads((bundle_copy / MANIFEST_NAME).read_text())
    raw["colour"] = "blue"
    (bundle_copy / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(errors.ManifestError, match="colour: unknown field"):
        Bundle.load(bundle_copy)


def test_manifest_invalid_value(bundle_copy):
    raw = json.loads((bundle_copy / MANIFEST_NAME).read_text())
    raw["precision"] = "fp8"
    (bundle_copy / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(errors.ManifestError, match="precision"):
        Bundle.load(bundle_copy)


def test_missing_model_file(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(errors.ModelFileError, match="missing its model file"):
        Bundle.load(bundle_copy)


def test_truncated_model_file_caught_by_size(bundle_copy):
    model = bundle_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(errors.ModelFileError, match="truncated"):
        Bundle.load(bundle_copy)


def test_corrupt_model_file_same_size(bundle_copy):
    import edgevision

    model = bundle_copy / "model.onnx"
    model.write_bytes(b"\x00garbage" * (model.stat().st_size // 8) + b"\x00" * (model.stat().st_size % 8))
    with pytest.raises(errors.ModelFileError, match="corrupt"):
        edgevision.load_runtime(bundle_copy)


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as work:
            (work / "half.bin").write_bytes(b"x")
            raise RuntimeError("export failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_to_overwrite(tmp_path):
    (tmp_path / "bundle").mkdir()
    with pytest.raises(errors.BundleError, match="already exists"):
        with atomic_directory(tmp_path / "bundle"):
            pass
