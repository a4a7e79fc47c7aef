"""`edgevision compress model.onnx`: an ONNX model from any framework → quantised/converted bundles + bench.

Everything the file cannot say (size when dynamic, labels when its metadata has none, the
preprocessing) comes from flags and is recorded in each bundle's manifest. Inputs are checked
before the output folder exists; INT8 bundles go through the same accuracy guard and get the
same "is INT8 faster here?" verdict as the torch path.

`--task detect` (or metadata ``task: detect``) takes a YOLOv8/YOLO11-style export and COCO
splits (train/ val/ [test/], each images/ + annotations.json): FP32/FP16 bundles with detection
parity on val, then the bench with mAP on test. Preprocessing defaults to Ultralytics' letterbox;
each flag given still overrides its part. `--task segment` takes a semantic segmenter and mask splits
(`compress_onnx_segment`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bundle import PreprocessSpec

#: Formats an ONNX file can become here (TFLite needs the torch model: litert-torch).
ONNX_REACHABLE = ("onnx", "openvino")


@dataclass(frozen=True, kw_only=True)
class PreprocessFlags:
    """The preprocessing flags given, parsed; `size` (height, width) is None when the graph is to fix it.

    `fields` holds only the flags the user gave: the rest come from the task's defaults
    (`spec`'s `base`: PreprocessSpec's own for classify, Ultralytics' letterbox for detect).
    """

    size: tuple[int, int] | None
    fields: tuple[tuple[str, Any], ...]

    def spec(self, size: tuple[int, int], *, base: PreprocessSpec | None = None) -> PreprocessSpec:
        from pydantic import ValidationError

        from ..bundle import PreprocessSpec
        from ..errors import ConfigError

        defaults = base.model_dump() if base is not None else {}
        try:
            return PreprocessSpec(**{**defaults, **dict(self.fields), "size": size})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = error["loc"][0] if error["loc"] else "size"
            raise ConfigError(f"Invalid preprocessing ({where}): {error['msg'].removeprefix('Value error, ')}.") from None


def preprocess_from_flags(
    *, size: str | None, color: str | None = None, resize: str | None = None, resize_shorter: int | None = None,
    mean: str | None = None, std: str | None = None, scale: str | None = None,
) -> PreprocessFlags:
    """Parse the CLI's preprocessing flags (sizes are HxW: height first, as PreprocessSpec.size); None: not given."""
    from ..types import ColorOrder, ResizePolicy, parse_one_enum

    given: dict[str, Any] = {
        "color_order": parse_one_enum(ColorOrder, color.upper(), option="color") if color is not None else None,
        "resize": parse_one_enum(ResizePolicy, resize, option="resize") if resize is not None else None,
        "resize_shorter": resize_shorter,
        "mean": _floats(mean, option="--mean") if mean is not None else None,
        "std": _floats(std, option="--std") if std is not None else None,
        "scale": _number(scale, option="--scale") if scale is not None else None,
    }
    fields = tuple((key, value) for key, value in given.items() if value is not None)
    return PreprocessFlags(size=parse_size(size) if size else None, fields=fields)


def parse_size(text: str) -> tuple[int, int]:
    """'32' → (32, 32); '48x192' → (48, 192): height × width."""
    from ..errors import ConfigError

    parts = text.lower().replace("×", "x").split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        height, width = (int(parts[0]), int(parts[-1]))
        return height, width
    raise ConfigError(f"--size takes N or HxW (height x width, e.g. 48x192), got {text!r}.")


def _floats(text: str, *, option: str) -> tuple[float, float, float]:
    from ..errors import ConfigError

    values = [_number(p, option=option) for p in text.split(",") if p.strip()]
    if len(values) != 3:
        raise ConfigError(f"{option} takes three comma-separated numbers (one per channel), got {text!r}.")
    return values[0], values[1], values[2]


def _number(text: str, *, option: str) -> float:
    from ..errors import ConfigError

    numerator, _, denominator = text.strip().partition("/")
    try:
        value = float(numerator) / (float(denominator) if denominator else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{option} takes a number or a fraction like 1/255, got {text!r}.") from None
    return value


def label_list_from_flag(labels: str | None) -> list[str] | None:
    """--labels as a list: a text file with one name per line when it names one, else comma-separated names."""
    if not labels:
        return None
    path = Path(labels)
    if path.is_file() or ("," not in labels and path.suffix.lower() == ".txt"):
        from ..errors import ConfigError

        if not path.is_file():
            raise ConfigError(f"--labels {labels}: no such file. Pass a text file (one name per line) or comma-separated names.")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise ConfigError(f"--labels {labels} holds no names; write one class name per line, in output order.")
        return names
    return [s.strip() for s in labels.split(",") if s.strip()]


def compress_onnx(
    model: Path, *, data: Path | None, out: Path, quantize: str | None, formats: str, labels: str | None,
    preprocess: PreprocessFlags, max_accuracy_drop: float, calibration_images: int, force: bool,
    test: Path | None = None, task: str | None = None,
) -> None:
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..bundle import atomic_directory
    from ..compress.calibration import CalibrationConfig
    from ..compress.guard import check_max_drop
    from ..compress.onnx_input import OnnxModel, export_onnx_model, metadata_labels, read_geometry, resolve_task
    from ..compress.quantize import int8_speed_verdict
    from ..compress.quantize import quantize as quantize_model
    from ..errors import BundleError, ConfigError
    from ..export.parity import ParityConfig
    from ..types import Format, Precision, Task, parse_enum_list
    from .console import console
    from .outputs import check_image_folder

    # Everything is checked before the output folder exists.
    chosen_task = resolve_task(model, task)
    if data is None:
        raise ConfigError("An ONNX model needs --data DIR (train/ for calibration, val/ for parity and the accuracy "
                          "guard, optionally test/ for the reported accuracy).")
    wanted = parse_enum_list(Format, formats, option="format")
    unreachable = [f.value for f in wanted if f.value not in ONNX_REACHABLE]
    if unreachable:
        raise ConfigError(
            f"An ONNX model cannot become {', '.join(unreachable)} here: TFLite conversion needs the torch model "
            f"(litert-torch), and ONNX → TFLite converters need TensorFlow. Use --export {','.join(ONNX_REACHABLE)}."
        )
    if chosen_task is Task.DETECT:
        compress_onnx_detector(model, data=data, out=out, quantize=quantize, wanted=wanted, labels=labels,
                               preprocess=preprocess, force=force, test=test)
        return
    if chosen_task is Task.SEGMENT:
        from .compress_onnx_segment import compress_onnx_segmenter

        compress_onnx_segmenter(model, data=data, out=out, quantize=quantize, wanted=wanted, labels=labels,
                                preprocess=preprocess, force=force, test=test)
        return
    target = parse_enum_list(Precision, quantize or "int8", option="precision")[0]
    check_max_drop(max_accuracy_drop)
    if out.exists() and not force:
        raise BundleError(f"{out} already exists. Choose another --out or pass --force.")
    from ..data.splits import DataSplits, describe_split

    splits = DataSplits.from_root(data, test=test)
    train, val, test = splits.train, splits.val, splits.test
    geometry = read_geometry(model)
    if geometry.size is None and preprocess.size is None:
        raise ConfigError(
            f"{model.name}'s input height/width are dynamic: give --size N or HxW (height x width), the size the model "
            "was trained at."
        )
    if geometry.size is not None and preprocess.size not in (None, geometry.size):
        raise ConfigError(
            f"--size {preprocess.size[0]}x{preprocess.size[1]} differs from {model.name}'s fixed input "
            f"{geometry.size[0]}x{geometry.size[1]} (height x width). Drop --size or pass the model's."
        )
    label_list = label_list_from_flag(labels)
    labels_note = None
    if label_list is None and metadata_labels(model) is None:
        from ..data.folder import ImageFolder

        label_list = list(ImageFolder.open(val).labels)
        labels_note = f"the sorted class folder names of {val} (the model's metadata has none)"
    spec = preprocess.spec(preprocess.size or geometry.size)  # type: ignore[arg-type]
    onnx_model = OnnxModel.open(model, labels=label_list, preprocess=spec)
    if labels_note:
        onnx_model.notes["labels"] = labels_note
    for folder, decode in ((train, False), (val, True), (test, True)):
        if folder is not None:
            check_image_folder(folder, option="--data", labels=onnx_model.labels, decode=decode)

    parity = ParityConfig(data=val)
    verdicts: dict[str, str] = {}
    with atomic_directory(out, overwrite=force) as work:
        made = []
        for fmt in wanted:
            made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-fp32", format=fmt, parity=parity))
            if target is Precision.INT8:
                made.append(quantize_model(onnx_model, work / f"{fmt.value}-int8", format=fmt,
                                           calibration=CalibrationConfig(data=train, max_images=calibration_images),
                                           validation=val, max_accuracy_drop=max_accuracy_drop))
                console.print(f"  {fmt.value}-int8: {made[-1].manifest.compression.get('accuracy', '')}")
            elif target is Precision.FP16:
                made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-fp16", format=fmt, precision=target,
                                              parity=parity))
            console.print(f"[green]✓[/] {fmt.value}: {', '.join(b.path.name for b in made[-2:])}")
        report = bench(made, config=BenchConfig(threads=(2,), data=splits.report, split_name=splits.report_split))
        save_report(report, work / "bench")
        rows = {row.name: row for row in report.rows}
        for fmt in wanted:
            fp32, int8 = rows.get(f"{fmt.value}-fp32"), rows.get(f"{fmt.value}-int8")
            if fp32 and int8:
                verdicts[fmt.value] = int8_speed_verdict(fp32, int8)
        split = (f"top-1 on {test} (the test split: chose nothing)" if test
                 else f"top-1 on {val}, the selection set (no test/ split given)")
        _write_report(work, onnx_model, made, verdicts, split)
    console.print(to_table(report, title=f"{model.name}: ONNX in, through each engine ({split})"))
    if not splits.held_out:
        console.print(f"[yellow]{describe_split(splits.report_split, held_out=False)}[/]")
    for fmt, verdict in verdicts.items():
        console.print(f"  {fmt}: {verdict}")


def compress_onnx_detector(
    model: Path, *, data: Path, out: Path, quantize: str | None, wanted: list[Any], labels: str | None,
    preprocess: PreprocessFlags, force: bool, test: Path | None,
) -> None:
    """A YOLO-style ONNX detector → FP32 (+ FP16) ONNX/OpenVINO bundles with detection parity on val, bench mAP on test."""
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..bundle import atomic_directory
    from ..compress.onnx_input import (
        DEFAULT_STRIDE,
        OnnxModel,
        export_onnx_model,
        metadata_labels,
        read_geometry,
        read_yolo_metadata,
        stride_aligned_preprocess,
    )
    from ..data.splits import describe_split
    from ..errors import BundleError, ConfigError
    from ..export.parity import ParityConfig
    from ..types import Precision, ResizePolicy, Task, parse_enum_list
    from .console import console

    target = parse_enum_list(Precision, quantize or "fp16", option="precision")[0]
    if target is Precision.BF16:
        raise ConfigError("--quantize for a detector takes int8, fp16 or fp32.")
    if out.exists() and not force:
        raise BundleError(f"{out} already exists. Choose another --out or pass --force.")
    splits = coco_splits(data, test=test)
    geometry, meta = read_geometry(model), read_yolo_metadata(model)
    if geometry.size is not None and preprocess.size not in (None, geometry.size):
        raise ConfigError(
            f"--size {preprocess.size[0]}x{preprocess.size[1]} differs from {model.name}'s fixed input "
            f"{geometry.size[0]}x{geometry.size[1]} (height x width). Drop --size or pass the model's."
        )
    size = preprocess.size or geometry.size or meta.imgsz
    if size is None:
        raise ConfigError(f"{model.name}'s input height/width are dynamic and its metadata has no 'imgsz': give --size "
                          "HxW (height x width), the size the detector was trained at.")
    spec = preprocess.spec(size, base=stride_aligned_preprocess(model, size, meta.stride or DEFAULT_STRIDE))
    if spec.resize is not ResizePolicy.LETTERBOX:
        raise ConfigError(f"--resize {spec.resize.value} cannot map a detector's boxes back to the image: detectors "
                          "take --resize letterbox (the default for --task detect).")
    label_list = label_list_from_flag(labels)
    labels_note = None
    if label_list is None and metadata_labels(model) is None:
        label_list = list(open_coco(splits.val, labels=None, check_images=False).labels)
        labels_note = f"the categories of {splits.val / 'annotations.json'} (the model's metadata has none)"
    onnx_model = OnnxModel.open(model, labels=label_list, preprocess=spec, task=Task.DETECT)
    if labels_note:
        onnx_model.notes["labels"] = labels_note
    for split, decode in ((splits.train, False), (splits.val, True), (splits.test, True)):
        if split is not None:
            open_coco(split, labels=onnx_model.labels, check_images=decode)

    parity = ParityConfig(data=splits.val)
    precisions = [Precision.FP32] + ([target] if target in (Precision.FP16, Precision.INT8) else [])
    split = (f"mAP on {splits.test} (the test split: chose nothing)" if splits.held_out
             else f"mAP on {splits.val}, the selection set (no test/ split given)")
    with atomic_directory(out, overwrite=force) as work:
        made = []
        for fmt in wanted:
            for precision in precisions:
                if precision is Precision.INT8:  # head in float, calibrated on train, parity on val
                    from ..compress.quantize import CalibrationConfig
                    from ..compress.quantize import quantize as quantize_model

                    made.append(quantize_model(onnx_model, work / f"{fmt.value}-int8", format=fmt,
                                               validation=splits.val, calibration=CalibrationConfig(data=splits.train)))
                else:
                    made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-{precision.value}", format=fmt,
                                                  precision=precision, parity=parity))
                report = made[-1].manifest.parity
                console.print(f"[green]✓[/] {made[-1].path.name}: detection parity mAP50 {report.detection_map50:.3f} "
                              f"(need ≥ {report.min_detection_map50:.2f}), max |Δ raw| {report.max_abs_diff:.2g} on "
                              f"{report.data}")
        bench_report = bench(made, config=BenchConfig(threads=(2,), data=splits.report, split_name=splits.report_split))
        save_report(bench_report, work / "bench")
        _write_report(work, onnx_model, made, {}, split)
    console.print(to_table(bench_report, title=f"{model.name}: ONNX detector in, through each engine ({split}; post = "
                                                "decode + NMS, e2e = preprocess + inference + post)"))
    if not splits.held_out:
        console.print(f"[yellow]{describe_split(splits.report_split, held_out=False)}[/]")


def coco_splits(data: Path, *, test: Path | None) -> Any:
    """DataSplits for COCO split folders: DIR/train, DIR/val (and DIR/test or `test`), each with annotations.json."""
    from ..data.splits import DataSplits
    from ..errors import DataError

    missing = [name for name in ("train", "val") if not (data / name / "annotations.json").is_file()]
    if missing:
        raise DataError(
            f"--data {data}: a detector needs COCO splits train/ and val/ (and optionally test/), each holding "
            f"images/ and annotations.json; missing {', '.join(f'{m}/annotations.json' for m in missing)}."
        )
    if test is not None and not (test / "annotations.json").is_file():
        raise DataError(f"--test {test} has no annotations.json: pass a COCO split folder (images/ + annotations.json).")
    return DataSplits.from_root(data, test=test)


def open_coco(split: Path, *, labels: list[str] | None, check_images: bool) -> Any:
    """A validated COCO split, or the DataError prefixed with the option it came from (one line)."""
    from ..data.coco import CocoDetections
    from ..errors import DataError

    try:
        return CocoDetections.open(split, labels=labels, check_images=check_images)
    except DataError as exc:
        raise DataError(f"--data: {exc}") from None


def _write_report(work: Path, model: Any, bundles: list[Any], verdicts: dict[str, str], split: str) -> None:
    """compress_report.json/.md: source, labels, preprocessing, each bundle's guard and parity, the verdicts."""
    rows = [
        {"bundle": b.path.name, "precision": b.manifest.precision.value,
         "accuracy_guard": b.manifest.compression.get("accuracy"),
         "parity_top1_agreement": b.manifest.parity.top1_agreement if b.manifest.parity else None,
         **({"parity_detection_map50": b.manifest.parity.detection_map50,
             "parity_max_abs_diff": b.manifest.parity.max_abs_diff} if b.manifest.parity
            and b.manifest.parity.detection_map50 is not None else {}),
         **({"parity_mask_miou": b.manifest.parity.mask_miou,
             "parity_max_abs_diff": b.manifest.parity.max_abs_diff} if b.manifest.parity
            and b.manifest.parity.mask_miou is not None else {})}
        for b in bundles
    ]
    payload = {
        "source": str(model.path), "task": model.task.value, "notes": model.notes, "labels": model.labels,
        "detection": model.detection.model_dump(mode="json") if model.detection is not None else None,
        "segmentation": model.segmentation.model_dump(mode="json") if model.segmentation is not None else None,
        "preprocess": model.preprocess.model_dump(mode="json"), "bundles": rows, "int8_verdicts": verdicts,
        "bench_accuracy": split,
    }
    (work / "compress_report.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    lines = [f"# {model.name}: ONNX in", "", f"- source: {model.path} ({model.notes.get('source', '')})",
             f"- labels: {model.notes.get('labels', '')}",
             f"- preprocessing: {model.preprocess.model_dump_json()}", f"- bench accuracy: {split}", ""]
    lines += [f"- {r['bundle']}: {r['accuracy_guard'] or 'float bundle, parity-checked'}"
              + (f" (detection agreement mAP50 {r['parity_detection_map50']:.3f})" if "parity_detection_map50" in r else "")
              + (f" (mask agreement mIoU {r['parity_mask_miou']:.4f})" if "parity_mask_miou" in r else "")
              for r in rows]
    lines += ["", *[f"- {fmt}: {verdict}" for fmt, verdict in verdicts.items()], ""]
    (work / "compress_report.md").write_text("\n".join(lines), encoding="utf-8")
