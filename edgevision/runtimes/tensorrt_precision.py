"""Keep named layers of a TensorRT network in FP32 while the rest builds in INT8 (TensorRT 10 calibrated engines).

A detector's head (prediction layers + box/score decoding) loses its mAP in int8: its layers are
listed by ONNX node name in the bundle's `FLOAT_LAYERS_FILE` (written by the quantiser from the
graph walk, `edgevision.compress.quantize.head_scope`). TensorRT's ONNX parser names each layer
after its ONNX node (a node that becomes several layers adds ``_<n>`` suffixes), so each listed
node's layers get ``layer.precision = float32`` and float32 outputs, and the builder is told to obey
(``OBEY_PRECISION_CONSTRAINTS``) rather than treat them as hints. Strongly typed networks (Q/DQ
graphs, TensorRT 11) take their precisions from the graph and need none of this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelFileError

#: The bundle file listing ONNX node names that must run in float (JSON list of strings).
FLOAT_LAYERS_FILE = "float_layers.json"


def read_float_layers(bundle_dir: Path) -> list[str]:
    """The node names in `bundle_dir`/FLOAT_LAYERS_FILE, or [] when the bundle has none."""
    path = bundle_dir / FLOAT_LAYERS_FILE
    if not path.is_file():
        return []
    names = json.loads(path.read_text())
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{path} must hold a JSON list of ONNX node names; re-quantise the bundle.")
    return names


def layer_matches(layer_name: str, wanted: set[str]) -> bool:
    """`layer_name` is a listed node, or one of the layers TensorRT made from it ("<node>_<n>")."""
    if layer_name in wanted:
        return True
    stem, _, suffix = layer_name.rpartition("_")
    return suffix.isdigit() and stem in wanted


def pin_float_layers(trt: Any, network: Any, config: Any, names: list[str]) -> int:
    """Pin the layers of `network` made from `names` to FP32 and make the builder obey; returns how many."""
    if not names:
        return 0
    wanted = set(names)
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if not layer_matches(layer.name, wanted):
            continue
        layer.precision = trt.float32
        for output in range(layer.num_outputs):
            if layer.get_output(output).dtype in (trt.float32, trt.float16):
                layer.set_output_type(output, trt.float32)
        pinned += 1
    if pinned == 0:
        raise ModelFileError(
            f"None of the {len(names)} head layers listed in {FLOAT_LAYERS_FILE} is a layer of the TensorRT network "
            "(the ONNX file and the list disagree); re-quantise the bundle."
        )
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


__all__ = ["FLOAT_LAYERS_FILE", "layer_matches", "pin_float_layers", "read_float_layers"]
