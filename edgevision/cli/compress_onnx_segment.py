"""`edgevision compress model.onnx --task segment`: a semantic segmenter from any framework → checked bundles + bench.

The model's one output is per-pixel class scores [N, classes, h, w] (torchvision's segmentation models, most
exports). --data holds mask splits val/ (parity) and optionally test/ (the reported mIoU), each images/ + masks/
+ labels.txt (`edgevision.data.masks`). Labels come from --labels (a comma list or a file, one per line), else
the model's metadata, else val/labels.txt. Preprocessing: PreprocessSpec's defaults (RGB, 1/255, ImageNet
mean/std) with a letterbox, so each mask maps back onto its frame; each flag given overrides its part. FP32
and FP16 bundles; INT8 has no segmentation accuracy guard yet, so it is refused rather than shipped unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compress_onnx import PreprocessFlags


def compress_onnx_segmenter(
    model: Path, *, data: Path, out: Path, quantize: str | None, wanted: list[Any], labels: str | None,
    preprocess: PreprocessFlags, force: bool, test: Path | None,
) -> None:
    """FP32 (+ FP16) ONNX/OpenVINO bundles with mask parity (mIoU) on val, then the bench's mIoU on test."""
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..bundle import PreprocessSpec, atomic_directory
    from ..compress.onnx_input import OnnxModel, export_onnx_model, metadata_labels, read_geometry, read_yolo_metadata
    from ..data.splits import describe_split
    from ..errors import BundleError, ConfigError
    from ..export.parity import ParityConfig
    from ..types import Precision, ResizePolicy, Task, parse_enum_list
    from .compress_onnx import _write_report, label_list_from_flag
    from .console import console

    target = parse_enum_list(Precision, quantize or "fp16", option="precision")[0]
    if target is Precision.INT8:
        raise ConfigError("--quantize int8 is not available for a segmenter yet (no segmentation accuracy guard to "
                          "check it): use --quantize fp16 or fp32.")
    if target is Precision.BF16:
        raise ConfigError("--quantize for a segmenter takes fp16 or fp32.")
    if out.exists() and not force:
        raise BundleError(f"{out} already exists. Choose another --out or pass --force.")
    splits = mask_splits(data, test=test)
    geometry, meta = read_geometry(model), read_yolo_metadata(model)
    if geometry.size is not None and preprocess.size not in (None, geometry.size):
        raise ConfigError(
            f"--size {preprocess.size[0]}x{preprocess.size[1]} differs from {model.name}'s fixed input "
            f"{geometry.size[0]}x{geometry.size[1]} (height x width). Drop --size or pass the model's."
        )
    size = preprocess.size or geometry.size or meta.imgsz
    if size is None:
        raise ConfigError(f"{model.name}'s input height/width are dynamic: give --size HxW (height x width), the size "
                          "the segmenter was trained at.")
    spec = preprocess.spec(size, base=PreprocessSpec(size=size, resize=ResizePolicy.LETTERBOX))
    if spec.resize is not ResizePolicy.LETTERBOX:
        raise ConfigError(f"--resize {spec.resize.value} cannot map a segmenter's masks back to the image: segmenters "
                          "take --resize letterbox (the default for --task segment).")
    label_list, labels_note = label_list_from_flag(labels), None
    if label_list is None and metadata_labels(model) is None:
        label_list = list(open_mask_split(splits.val, labels=None).labels)
        labels_note = f"{splits.val / 'labels.txt'} (the model's metadata has none)"
    onnx_model = OnnxModel.open(model, labels=label_list, preprocess=spec, task=Task.SEGMENT)
    if labels_note:
        onnx_model.notes["labels"] = labels_note
    for split in (splits.val, splits.test):
        if split is not None:
            open_mask_split(split, labels=onnx_model.labels)

    parity = ParityConfig(data=splits.val)
    precisions = [Precision.FP32] + ([target] if target is Precision.FP16 else [])
    split = (f"mIoU on {splits.test} (the test split: chose nothing)" if splits.held_out
             else f"mIoU on {splits.val}, the selection set (no test/ split given)")
    with atomic_directory(out, overwrite=force) as work:
        made = []
        for fmt in wanted:
            for precision in precisions:
                made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-{precision.value}", format=fmt,
                                              precision=precision, parity=parity))
                report = made[-1].manifest.parity
                console.print(f"[green]✓[/] {made[-1].path.name}: mask parity mIoU {report.mask_miou:.4f} (need ≥ "
                              f"{report.min_mask_miou:.2f}), max |Δ score| {report.max_abs_diff:.2g} on {report.data}")
        bench_report = bench(made, config=BenchConfig(threads=(2,), data=splits.report, split_name=splits.report_split))
        save_report(bench_report, work / "bench")
        _write_report(work, onnx_model, made, {}, split)
    console.print(to_table(bench_report, title=f"{model.name}: ONNX segmenter in, through each engine ({split}; post = "
                                                "argmax + upsampling + letterbox inverse, e2e = preprocess + inference + post)"))
    if not splits.held_out:
        console.print(f"[yellow]{describe_split(splits.report_split, held_out=False)}[/]")


def mask_splits(data: Path, *, test: Path | None) -> Any:
    """DataSplits for mask split folders: DIR/val (parity) and DIR/test or `test` (the reported mIoU); train/ unused."""
    from ..data.masks import LABELS_FILE, MASKS
    from ..data.splits import TEST, DataSplits
    from ..errors import DataError

    def is_mask_split(folder: Path) -> bool:
        return (folder / MASKS).is_dir() and (folder / LABELS_FILE).is_file()

    if not is_mask_split(data / "val"):
        raise DataError(f"--data {data}: a segmenter needs a mask split val/ (and optionally test/), each holding "
                        f"images/, {MASKS}/ and {LABELS_FILE}; {data / 'val'} is not one.")
    if test is not None and not is_mask_split(test):
        raise DataError(f"--test {test} is not a mask split: it needs images/, {MASKS}/ and {LABELS_FILE}.")
    held_out = test if test is not None else (data / TEST if is_mask_split(data / TEST) else None)
    return DataSplits(train=data / "train", val=data / "val", test=held_out)


def open_mask_split(split: Path, *, labels: list[str] | None) -> Any:
    """A validated mask split, or the DataError prefixed with the option it came from (one line)."""
    from ..data.masks import MaskFolder
    from ..errors import DataError

    try:
        return MaskFolder.open(split, labels=labels)
    except DataError as exc:
        raise DataError(f"--data: {exc}") from None
