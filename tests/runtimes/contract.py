"""What every runtime must do. Each engine's test module subclasses `RuntimeContract`.

A subclass sets `runtime_name`, `format`, `precision` and, where the engine is optional,
calls `pytest.importorskip` at module level so the whole class skips with a reason.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from edgevision import errors
from edgevision.data.folder import ImageFolder
from edgevision.runtimes import load_runtime


class RuntimeContract:
    runtime_name: ClassVar[str]
    format: ClassVar[str]
    precision: ClassVar[str] = "fp32"
    #: minimum share of validation labels agreeing with the torch reference
    min_agreement: ClassVar[float] = 0.995

    @pytest.fixture(scope="class")
    def bundle(self, trained_model, digits, tmp_path_factory):
        from edgevision.export import ParityConfig, export

        out = tmp_path_factory.mktemp(f"{self.runtime_name}-{self.precision}") / "bundle"
        return export(trained_model, out, format=self.format, precision=self.precision, parity=ParityConfig(data=digits.val))

    @pytest.fixture(scope="class")
    def runtime(self, bundle):
        with load_runtime(bundle, self.runtime_name, threads=1) as engine:
            yield engine

    def _batch(self, runtime, n: int) -> np.ndarray:
        shape = (n, *runtime.input_spec.shape[1:])
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    def test_reports_input_spec_from_manifest(self, runtime, bundle):
        spec = runtime.input_spec
        assert spec == bundle.manifest.input
        assert (spec.height, spec.width) == tuple(bundle.manifest.preprocess.size)

    @pytest.mark.parametrize("n", [1, 3])
    def test_infer_returns_logits_per_sample(self, runtime, bundle, n):
        logits = runtime.infer(self._batch(runtime, n))
        assert logits.shape == (n, bundle.manifest.num_classes)
        assert np.issubdtype(logits.dtype, np.floating)
        assert np.all(np.isfinite(logits))

    def test_predict_raw_images_matches_reference_labels(self, runtime, trained_model, digits):
        import torch

        folder = ImageFolder.open(digits.val)
        images, labels = next(folder.batches(64))
        from edgevision.preprocess import preprocess_batch
        from edgevision.types import Layout

        nchw = preprocess_batch(images, trained_model.preprocess, runtime.input_spec.with_layout(Layout.NCHW))
        with torch.inference_mode():
            reference = trained_model.module(torch.from_numpy(nchw)).numpy().argmax(1)
        predicted = runtime.predict(images).argmax(1)
        assert np.mean(predicted == reference) >= self.min_agreement - 1e-9

    def test_manifest_parity_meets_bar(self, bundle):
        parity = bundle.manifest.parity
        assert parity is not None and parity.passed
        assert parity.top1_agreement >= self.min_agreement
        assert parity.engine == self.runtime_name

    def test_wrong_shape_is_a_clear_error(self, runtime):
        bad = np.zeros((1, 3, 7, 7), dtype=np.float32)
        with pytest.raises(errors.InputError, match="does not match"):
            runtime.infer(bad)

    def test_missing_batch_axis_is_explained(self, runtime):
        one = self._batch(runtime, 1)[0]
        with pytest.raises(errors.InputError, match="batch axis"):
            runtime.infer(one)

    def test_integer_input_is_rejected(self, runtime):
        with pytest.raises(errors.InputError, match="dtype"):
            runtime.infer(np.zeros((1, *runtime.input_spec.shape[1:]), dtype=np.uint8))

    def test_float64_input_is_accepted(self, runtime):
        batch = self._batch(runtime, 2)
        np.testing.assert_allclose(runtime.infer(batch.astype(np.float64)), runtime.infer(batch), rtol=1e-5, atol=1e-5)

    def test_threads_setting_is_applied_and_results_unchanged(self, bundle, runtime):
        batch = self._batch(runtime, 2)
        with load_runtime(bundle, self.runtime_name, threads=2) as two:
            assert two.options.threads == 2
            np.testing.assert_allclose(two.infer(batch), runtime.infer(batch), rtol=1e-3, atol=1e-3)

    def test_forks_infer_at_the_same_time_with_the_same_numbers(self, bundle):
        """What StreamConfig.workers relies on: a fork runs beside its original and closes on its own."""
        import threading

        from edgevision.runtimes import stream_options

        options = stream_options(self.runtime_name, 2, workers=2)
        with load_runtime(bundle, self.runtime_name, options=options) as first:
            batches = [self._batch(first, 2) * (i + 1) for i in range(4)]
            expected = [first.infer(batch) for batch in batches]
            fork = first.fork()
            got: dict[str, list[np.ndarray]] = {}

            def infer_all(key: str, handle) -> None:  # noqa: ANN001
                got[key] = [handle.infer(batch) for batch in batches for _ in range(3)][::3]

            threads = [threading.Thread(target=infer_all, args=item) for item in (("first", first), ("fork", fork))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            fork.close()
            for key in ("first", "fork"):
                for logits, want in zip(got[key], expected, strict=True):
                    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(first.infer(batches[0]), expected[0], rtol=1e-5, atol=1e-5)

    def test_invalid_threads_rejected(self, bundle):
        with pytest.raises(errors.ConfigError, match="threads"):
            load_runtime(bundle, self.runtime_name, threads=0)

    def test_truncated_model_file_is_a_clear_error(self, bundle, tmp_path):
        import shutil

        broken = tmp_path / "broken"
        shutil.copytree(bundle.path, broken)
        model = broken / bundle.manifest.model_file
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
        with pytest.raises(errors.ModelFileError, match="re-export"):
            load_runtime(broken, self.runtime_name)

    def test_a_classifier_asked_for_boxes_says_so(self, runtime, bundle):
        assert bundle.manifest.task.value == "classify"
        image = np.zeros((40, 50, 3), dtype=np.uint8)
        with pytest.raises(errors.ConfigError, match="is a classify model.*predict"):
            runtime.detect([image])
        assert list(runtime.infer_outputs(self._batch(runtime, 1))) == [bundle.manifest.output_name]
