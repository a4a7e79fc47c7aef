"""TensorRT: the engine-cache and build-plan logic (runs anywhere) and the runtime contract (Jetson/GPU only)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from edgevision import errors
from edgevision.bundle import InputSpec
from edgevision.runtimes import load_runtime
from edgevision.runtimes.tensorrt import TensorRTOptions
from edgevision.runtimes.tensorrt_cache import (
    BuildPlan,
    cache_paths,
    check_cached_engine,
    engine_key,
    engine_layer_precision,
    onnx_sha256,
    plan_build,
    plan_for_bundle,
    profile_shapes,
    superseded_engines,
    write_cached_engine,
)
from edgevision.runtimes.tensorrt_calibration import CALIBRATION_CACHE, EntropyCalibrator
from edgevision.types import Precision

from .contract import RuntimeContract
from .segment_contract import SegmentRuntimeContract

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_TENSORRT = "TensorRT is not installable on this machine (no NVIDIA index, no GPU); runs on a Jetson"

SPEC = InputSpec(name="input", shape=(-1, 3, 32, 32))
FP16_PLAN = BuildPlan(Precision.FP16, strongly_typed=False, flags=("FP16",))


def make_key(**changes):
    fields = dict(
        gpu_name="Orin", compute_capability="8.7", tensorrt_version="10.3.0", onnx_sha256="ab" * 32,
        plan=FP16_PLAN, profile=profile_shapes(SPEC, opt_batch=1, max_batch=8),
    )
    fields.update(changes)
    return engine_key(**fields)


# -- cache key ---------------------------------------------------------------------------------


def test_equal_setups_give_equal_keys():
    assert make_key() == make_key()
    assert make_key().digest == make_key().digest


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "NVIDIA GeForce RTX 4090"},
        {"compute_capability": "8.9"},
        {"tensorrt_version": "10.7.0"},
        {"onnx_sha256": "cd" * 32},
        {"plan": BuildPlan(Precision.FP32, strongly_typed=True, clear_flags=("TF32",))},
        {"profile": profile_shapes(SPEC, opt_batch=1, max_batch=16)},
    ],
    ids=["gpu", "capability", "tensorrt", "onnx-hash", "precision", "profile"],
)
def test_key_changes_with_everything_an_engine_depends_on(change):
    assert make_key(**change).digest != make_key().digest


# -- cache validity ----------------------------------------------------------------------------


def test_fresh_engine_is_reused(tmp_path):
    key = make_key()
    paths = cache_paths(tmp_path, key)
    assert not check_cached_engine(paths, key).usable
    write_cached_engine(paths, key, b"engine-bytes" * 100, build_seconds=1.5)
    check = check_cached_engine(paths, key)
    assert check.usable, check.reason
    assert paths.engine.read_bytes() == b"engine-bytes" * 100


@pytest.mark.parametrize(
    ("change", "named"),
    [({"tensorrt_version": "10.7.0"}, "TensorRT was 10.3.0"), ({"gpu_name": "Xavier"}, "GPU was Orin"),
     ({"onnx_sha256": "cd" * 32}, "ONNX file sha256")],
)
def test_engine_built_for_another_setup_is_rejected_with_the_difference_named(tmp_path, change, named):
    old = make_key()
    paths = cache_paths(tmp_path, old)
    write_cached_engine(paths, old, b"old engine", build_seconds=1.0)
    check = check_cached_engine(paths, make_key(**change))  # same files, stale key
    assert not check.usable
    assert named in check.reason


def test_truncated_engine_is_rejected(tmp_path):
    key = make_key()
    paths = cache_paths(tmp_path, key)
    write_cached_engine(paths, key, b"x" * 1000, build_seconds=1.0)
    paths.engine.write_bytes(b"x" * 400)
    check = check_cached_engine(paths, key)
    assert not check.usable and "truncated" in check.reason


def test_same_size_replaced_engine_is_rejected(tmp_path):
    key = make_key()
    paths = cache_paths(tmp_path, key)
    write_cached_engine(paths, key, b"a" * 64, build_seconds=1.0)
    paths.engine.write_bytes(b"b" * 64)
    assert not check_cached_engine(paths, key).usable


def test_engine_without_key_file_or_with_garbage_key_is_not_trusted(tmp_path):
    key = make_key()
    paths = cache_paths(tmp_path, key)
    paths.engine.write_bytes(b"engine")
    assert "cannot be trusted" in check_cached_engine(paths, key).reason
    paths.key.write_text("{not json")
    assert "unreadable" in check_cached_engine(paths, key).reason
    paths.key.write_text(json.dumps({"key": "nope", "engine_bytes": 6, "engine_sha256": "x"}))
    assert not check_cached_engine(paths, key).usable


def test_superseded_engines_are_those_this_gpu_can_never_use(tmp_path):
    current = make_key(tensorrt_version="10.7.0")
    older_trt = make_key()
    other_gpu = make_key(gpu_name="Xavier", compute_capability="7.2")
    other_precision = make_key(tensorrt_version="10.7.0", plan=BuildPlan(Precision.FP32, strongly_typed=True))
    for key in (current, older_trt, other_gpu, other_precision):
        write_cached_engine(cache_paths(tmp_path, key), key, b"e", build_seconds=0.1)
    assert superseded_engines(tmp_path, current) == [cache_paths(tmp_path, older_trt)]


# -- profile and build plan --------------------------------------------------------------------


def test_dynamic_batch_profile_spans_one_to_max():
    shapes = profile_shapes(SPEC, opt_batch=2, max_batch=8)
    assert (shapes.min, shapes.opt, shapes.max) == ((1, 3, 32, 32), (2, 3, 32, 32), (8, 3, 32, 32))


def test_fixed_batch_bundle_gets_its_own_shape():
    shapes = profile_shapes(InputSpec(name="input", shape=(4, 3, 32, 32)), opt_batch=1, max_batch=8)
    assert shapes.min == shapes.opt == shapes.max == (4, 3, 32, 32)


def test_options_are_validated():
    with pytest.raises(errors.ConfigError, match="opt_batch"):
        TensorRTOptions(opt_batch=9, max_batch=8)
    with pytest.raises(errors.ConfigError, match="precision"):
        TensorRTOptions(precision="fp8")
    assert TensorRTOptions(precision="FP16").precision is Precision.FP16


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
def test_default_precision_is_the_bundles_own_and_strongly_typed(version):
    for precision in (Precision.FP32, Precision.FP16, Precision.INT8):
        plan = plan_build(requested=None, file_precision=precision, tensorrt_version=version)
        assert plan.precision is precision and plan.strongly_typed and not plan.flags
    fp32 = plan_build(requested=None, file_precision=Precision.FP32, tensorrt_version=version)
    assert fp32.clear_flags == ("TF32",)


def test_fp16_engine_from_fp32_bundle_uses_the_builder_flag_on_tensorrt_10():
    plan = plan_build(requested=Precision.FP16, file_precision=Precision.FP32, tensorrt_version="10.3.0")
    assert plan == BuildPlan(Precision.FP16, strongly_typed=False, flags=("FP16",))


def test_tensorrt_11_asks_for_an_fp16_bundle_instead_of_a_flag():
    with pytest.raises(errors.ConfigError, match="export the bundle with precision fp16"):
        plan_build(requested=Precision.FP16, file_precision=Precision.FP32, tensorrt_version="11.4.0")
    with pytest.raises(errors.ConfigError, match="Q/DQ"):
        plan_build(requested=Precision.INT8, file_precision=Precision.FP32, tensorrt_version="11.4.0")


def test_int8_from_float_bundle_needs_calibration_on_tensorrt_10():
    plan = plan_build(requested=Precision.INT8, file_precision=Precision.FP32, tensorrt_version="10.3.0")
    assert plan.needs_calibrator and "INT8" in plan.flags


def test_precision_is_never_silently_changed():
    with pytest.raises(errors.ConfigError, match="FP16"):
        plan_build(requested=Precision.FP32, file_precision=Precision.FP16, tensorrt_version="10.3.0")
    with pytest.raises(errors.ConfigError, match="INT8"):
        plan_build(requested=Precision.FP16, file_precision=Precision.INT8, tensorrt_version="10.3.0")


def test_tensorrt_8_is_refused_with_advice():
    with pytest.raises(errors.RuntimeEngineError, match="TensorRT 10 or later"):
        plan_build(requested=None, file_precision=Precision.FP32, tensorrt_version="8.2.1")


def test_calibrated_int8_bundle_builds_int8_from_its_calibration_cache_on_tensorrt_10():
    plan = plan_build(requested=None, file_precision=Precision.INT8, tensorrt_version="10.3.0", calibration_cache=True)
    assert plan == BuildPlan(
        Precision.INT8, strongly_typed=False, flags=("INT8", "FP16"), needs_calibrator=True, from_calibration_cache=True
    )
    # The same engine the quantiser built from the fp32 file with calibration images: equal cache keys.
    at_quantise_time = plan_build(requested=Precision.INT8, file_precision=Precision.FP32, tensorrt_version="10.3.0")
    assert make_key(plan=plan).digest == make_key(plan=at_quantise_time).digest


def test_calibrated_int8_bundle_is_refused_where_it_cannot_be_int8():
    with pytest.raises(errors.ConfigError, match="quantise the model again"):
        plan_build(requested=None, file_precision=Precision.INT8, tensorrt_version="11.4.0", calibration_cache=True)
    with pytest.raises(errors.ConfigError, match="calibrated .* runs it in int8, not fp16"):
        plan_build(requested=Precision.FP16, file_precision=Precision.INT8, tensorrt_version="10.3.0", calibration_cache=True)


def test_bf16_bundle_is_not_a_tensorrt_bundle():
    with pytest.raises(errors.ConfigError, match="OpenVINO"):
        plan_build(requested=None, file_precision=Precision.BF16, tensorrt_version="10.3.0")


def test_engine_precision_is_read_from_detailed_layer_information():
    detailed = json.dumps({"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": "Int8 NC/32HW32"}]},
        {"Name": "relu", "LayerType": "PointWiseV2", "Inputs": [{"Format/Datatype": "Int8 NC/32HW32"}]},
        {"Name": "conv2", "LayerType": "CaskGemmConvolution", "Inputs": [{"Format/Datatype": "Int8 NC/32HW32"}]},
        {"Name": "fc", "LayerType": "CaskGemmMatrixMultiply", "Inputs": [{"Format/Datatype": "Channel major FP16 format"}]},
    ], "Bindings": ["input", "logits"]})
    report = engine_layer_precision(detailed)
    assert report.summary == "int8+fp16" and report.layers == {"int8": 2, "fp16": 1}
    names_only = json.dumps({"Layers": ["conv1", "relu", "fc"], "Bindings": ["input", "logits"]})
    assert engine_layer_precision(names_only).summary == "unknown"
    assert engine_layer_precision("not json").summary == "unknown"


# -- INT8 calibration data ---------------------------------------------------------------------


def test_cache_only_calibrator_replays_scales_and_never_calibrates_on_nothing(tmp_path):
    with pytest.raises(errors.ConfigError, match="missing"):
        EntropyCalibrator.from_cache(tmp_path / CALIBRATION_CACHE, input_spec=SPEC)
    (tmp_path / CALIBRATION_CACHE).write_bytes(b"TRT-1003-EntropyCalibration2\ninput: 3c010a14\n")
    calibrator = EntropyCalibrator.from_cache(tmp_path / CALIBRATION_CACHE, input_spec=SPEC)
    assert calibrator.batch_shape == (1, 3, 32, 32)
    assert list(calibrator.batches()) == []  # a rejected cache fails the build instead of calibrating on zeros
    assert calibrator.read_cache().startswith(b"TRT-1003")


def test_calibrator_checks_and_replays_batches(tmp_path):
    batches = [np.zeros((4, 3, 32, 32), dtype=np.float64) for _ in range(3)]
    calibrator = EntropyCalibrator(batches, input_spec=SPEC, cache_file=tmp_path / "calib.cache", max_batches=2)
    assert calibrator.batch_shape == (4, 3, 32, 32)
    for _ in range(2):  # re-iterable: TensorRT may read it after we peeked
        seen = list(calibrator.batches())
        assert len(seen) == 2 and all(b.dtype == np.float32 and b.flags.c_contiguous for b in seen)
    assert calibrator.read_cache() is None
    calibrator.write_cache(b"scales")
    assert calibrator.read_cache() == b"scales"


def test_calibrator_rejects_generators_and_bad_batches():
    with pytest.raises(errors.ConfigError, match="re-iterable"):
        EntropyCalibrator((np.zeros((1, 3, 32, 32)) for _ in range(2)), input_spec=SPEC)
    with pytest.raises(errors.InputError, match="expected"):
        _ = EntropyCalibrator([np.zeros((1, 32, 32, 3))], input_spec=SPEC).batch_shape
    with pytest.raises(errors.InputError, match="raw images"):
        _ = EntropyCalibrator([np.zeros((1, 3, 32, 32), dtype=np.uint8)], input_spec=SPEC).batch_shape
    uneven = EntropyCalibrator([np.zeros((4, 3, 32, 32)), np.zeros((2, 3, 32, 32))], input_spec=SPEC)
    with pytest.raises(errors.InputError, match="one batch size"):
        list(uneven.batches())
    with pytest.raises(errors.InputError, match="empty"):
        _ = EntropyCalibrator([], input_spec=SPEC).batch_shape


# -- the engine itself -------------------------------------------------------------------------


@pytest.fixture
def tiny_onnx_bundle(tmp_path):
    """A real (if tiny) ONNX bundle, flatten → matmul, written without torch so this stays fast."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgevision.bundle import Bundle, Manifest, PreprocessSpec, SourceInfo, write_manifest

    weights = numpy_helper.from_array(np.full((3 * 32 * 32, 10), 1e-3, dtype=np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "weights"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "model.onnx"))
    manifest = Manifest(
        name="tiny", format="onnx", precision="fp32", model_files=("model.onnx",), input=SPEC, output_name="logits",
        num_classes=10, preprocess=PreprocessSpec(size=(32, 32)), labels=tuple(str(i) for i in range(10)),
        source=SourceInfo(sha256="0" * 64),
    )
    write_manifest(tmp_path, manifest)
    return Bundle.load(tmp_path)


def test_int8_bundle_plans_an_int8_engine_by_default_either_way_it_was_quantised(tiny_onnx_bundle):
    """What `edgevision run`/`bench` load: no options, so the bundle's own precision decides."""
    from edgevision.bundle import Bundle, write_manifest

    fp32_hash = onnx_sha256(tiny_onnx_bundle)
    (tiny_onnx_bundle.path / CALIBRATION_CACHE).write_bytes(b"scales")
    manifest = tiny_onnx_bundle.manifest.model_copy(
        update={"precision": Precision.INT8, "model_files": ("model.onnx", CALIBRATION_CACHE), "file_bytes": {}}
    )
    write_manifest(tiny_onnx_bundle.path, manifest)
    calibrated = Bundle.load(tiny_onnx_bundle.path)
    plan = plan_for_bundle(calibrated, requested=TensorRTOptions().precision, tensorrt_version="10.3.0")
    assert plan.precision is Precision.INT8 and "INT8" in plan.flags and plan.from_calibration_cache
    assert onnx_sha256(calibrated) == fp32_hash  # the cache is not part of the engine key's ONNX hash
    qdq = Bundle(calibrated.path, manifest.model_copy(update={"model_files": ("model.onnx",)}))
    plan = plan_for_bundle(qdq, requested=None, tensorrt_version="11.4.0")
    assert plan == BuildPlan(Precision.INT8, strongly_typed=True)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_missing_tensorrt_names_the_extra(tiny_onnx_bundle):
    with pytest.raises(errors.EngineNotInstalledError, match=r"pip install 'edgevision\[tensorrt\]'"):
        load_runtime(tiny_onnx_bundle, "tensorrt")
    assert load_runtime(tiny_onnx_bundle).infer(np.ones((2, 3, 32, 32), np.float32)).shape == (2, 10)


@pytest.mark.skipif(not HAS_TENSORRT, reason=NO_TENSORRT)
class TestTensorRTContract(RuntimeContract):
    runtime_name = "tensorrt"
    format = "onnx"
    precision = "fp32"

    @pytest.fixture(scope="class")
    def bundle(self, trained_model, digits, tmp_path_factory):
        pytest.importorskip("tensorrt", reason=NO_TENSORRT)
        from edgevision.export import ParityConfig, export

        out = tmp_path_factory.mktemp(f"tensorrt-{self.precision}") / "bundle"
        return export(
            trained_model, out, format=self.format, precision=self.precision,
            parity=ParityConfig(data=digits.val), runtime="tensorrt",
        )

    def test_engine_is_cached_and_reused(self, bundle, runtime):
        assert list(bundle.path.glob("model.*.engine")), "the first load should have cached an engine"
        with load_runtime(bundle, "tensorrt") as again:
            assert again.cache_status.startswith("cached engine")
            np.testing.assert_allclose(again.infer(self._batch(again, 2)), runtime.infer(self._batch(runtime, 2)))

    def test_batch_larger_than_profile_is_split(self, bundle):
        options = TensorRTOptions(max_batch=2)
        with load_runtime(bundle, "tensorrt", options=options) as small:
            assert small.infer(self._batch(small, 5)).shape == (5, bundle.manifest.num_classes)


@pytest.mark.skipif(not HAS_TENSORRT, reason=NO_TENSORRT)
class TestTensorRTFP16Contract(TestTensorRTContract):
    precision = "fp16"
    min_agreement = 0.99


@pytest.mark.skipif(not HAS_TENSORRT, reason=NO_TENSORRT)
class TestTensorRTSegment(SegmentRuntimeContract):
    """A segment bundle (ONNX) built into a TensorRT engine: mask parity through TensorRT, the painted masks back."""

    runtime_name = "tensorrt"
    format = "onnx"

    @pytest.fixture(scope="class")
    def bundle(self, painted, tmp_path_factory):
        pytest.importorskip("tensorrt", reason=NO_TENSORRT)
        from edgevision.export import ParityConfig, export
        from tests.runtimes.block_segmenter import block_segmenter_model

        out = tmp_path_factory.mktemp("tensorrt-segment") / "bundle"
        return export(block_segmenter_model(), out, format="onnx", parity=ParityConfig(data=painted), runtime="tensorrt")
