"""`edgevision compress model.onnx`: an ONNX model from any framework → quantised/converted bundles + bench."""

from __future__ import annotations

from pathlib import Path


def compress_onnx(
    model: Path, *, data: Path | None, out: Path, quantize: str, formats: str, labels: str | None, size: int | None,
    calibration_images: int, force: bool, test: Path | None = None,
) -> None:
    from ..bench import BenchConfig, bench
    from ..bench.report import save_report, to_table
    from ..bundle import PreprocessSpec, atomic_directory
    from ..compress.calibration import CalibrationConfig
    from ..compress.onnx_input import OnnxModel, export_onnx_model
    from ..compress.quantize import quantize as quantize_model
    from ..data.folder import ImageFolder
    from ..errors import ConfigError
    from ..export.parity import ParityConfig
    from ..types import Format, Precision, parse_enum_list
    from .compress import _split
    from .console import console

    if data is None:
        raise ConfigError("An ONNX model needs --data DIR (train/ for calibration, val/ for parity and the accuracy "
                          "guard, optionally test/ for the reported accuracy).")
    splits = _split(data, test=test)
    train, val = splits.train, splits.val
    label_list = [s.strip() for s in labels.split(",")] if labels else list(ImageFolder.open(val).labels)
    if size is None:
        raise ConfigError("Give --size N: the input size the ONNX model was trained at (preprocessing is not in the file).")
    onnx_model = OnnxModel.open(model, labels=label_list, preprocess=PreprocessSpec(size=(size, size)))
    target = parse_enum_list(Precision, quantize, option="precision")[0]
    parity = ParityConfig(data=val)
    with atomic_directory(out, overwrite=force) as work:
        made = []
        for fmt in parse_enum_list(Format, formats, option="format"):
            made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-fp32", format=fmt, parity=parity))
            if target is Precision.INT8:
                made.append(quantize_model(onnx_model, work / f"{fmt.value}-int8", format=fmt,
                                           calibration=CalibrationConfig(data=train, max_images=calibration_images),
                                           validation=val))
            elif target is Precision.FP16:
                made.append(export_onnx_model(onnx_model, work / f"{fmt.value}-fp16", format=fmt, precision=target,
                                              parity=parity))
            console.print(f"[green]✓[/] {fmt.value}: {', '.join(b.path.name for b in made[-2:])}")
        report = bench(made, config=BenchConfig(threads=(2,), data=splits.report, split_name=splits.report_split))
        save_report(report, work / "bench")
    console.print(to_table(report, title=f"{model.name}: ONNX in, through each engine"))
    if not splits.held_out:
        console.print("[yellow]top-1 is on val, the selection set (it also gated parity and accuracy): add DIR/test/ "
                      "for a held-out figure[/]")
