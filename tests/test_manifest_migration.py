"""Bundles written by the previous version (manifest schema 1) keep loading and running.

tests/fixtures/bundle_schema1 was written by edgevision at commit d3bd491 (before tasks existed),
with the logits its ONNX Runtime gave for four fixed images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgevision.bundle import SCHEMA_VERSION, Bundle, Manifest, write_manifest
from edgevision.errors import ManifestError
from edgevision.runtimes import load_runtime
from edgevision.types import Task

FIXTURES = Path(__file__).parent / "fixtures"


def test_schema1_bundle_loads_as_a_classifier() -> None:
    raw = json.loads((FIXTURES / "bundle_schema1" / "edgevision.json").read_text())
    assert raw["schema_version"] == 1 and "output_name" in raw and "task" not in raw
    manifest = Bundle.load(FIXTURES / "bundle_schema1").manifest
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.task is Task.CLASSIFY and manifest.detection is None
    assert manifest.output_name == "logits"
    (output,) = manifest.outputs
    assert (output.name, output.shape, output.meaning) == ("logits", (-1, 3), "logits")


def test_schema1_bundle_predicts_what_the_previous_version_did() -> None:
    expected = np.load(FIXTURES / "bundle_schema1_expected.npz")
    with load_runtime(FIXTURES / "bundle_schema1") as runtime:
        logits = runtime.predict(list(expected["images"]))
        outputs = runtime.infer_outputs(_batch(runtime, expected["images"]))
    np.testing.assert_allclose(logits, expected["logits"], rtol=1e-5, atol=1e-6)
    assert list(outputs) == ["logits"]
    np.testing.assert_allclose(outputs["logits"], expected["logits"], rtol=1e-5, atol=1e-6)


def test_migrated_manifest_is_written_as_the_current_schema(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "bundle_schema1", bundle_dir)
    write_manifest(bundle_dir, Bundle.load(bundle_dir).manifest)
    raw = json.loads((bundle_dir / "edgevision.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["task"] == "classify" and "output_name" not in raw
    assert Bundle.load(bundle_dir).manifest.outputs[0].name == "logits"


def test_a_detect_manifest_without_its_decoding_spec_is_refused(tmp_path: Path) -> None:
    raw = Manifest.model_validate_json((FIXTURES / "bundle_schema1" / "edgevision.json").read_text()).model_dump(mode="json")
    raw["task"] = "detect"
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "bundle_schema1", bundle_dir)
    (bundle_dir / "edgevision.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="detect bundle needs `detection`"):
        Bundle.load(bundle_dir)


def _batch(runtime, images: np.ndarray) -> np.ndarray:  # noqa: ANN001
    from edgevision.preprocess import preprocess_batch

    return preprocess_batch(list(images), runtime.bundle.manifest.preprocess, runtime.input_spec)
