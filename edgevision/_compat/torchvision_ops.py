"""Let a CUDA-only torchvision wheel import on a CPU-only torch.

The only torchvision wheel for torch 2.13 on PyPI is a CUDA build: its ``_C`` extension needs
libtorch_cuda, so ``import torchvision`` dies with "operator torchvision::nms does not exist".
Model definitions (all edgevision needs) do not use that extension. When — and only when — the
real extension is missing, define the two op schemas torchvision registers fakes for at import
time, with a plain CPU NMS behind ``torch.ops.torchvision.nms``. On a machine with matching wheels this does
nothing.
"""

from __future__ import annotations

import importlib.util

_done = False


def ensure_torchvision_importable() -> None:
    """Call before the first ``import torchvision``."""
    global _done
    if _done:
        return
    _done = True
    import torch

    if importlib.util.find_spec("torchvision") is None or _extension_loads(torch):
        return
    _define_nms_ops(torch)


def _extension_loads(torch) -> bool:  # noqa: ANN001 - torch module
    if _has_op(torch, "nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    assert spec is not None and spec.submodule_search_locations
    import glob
    import os

    for location in spec.submodule_search_locations:
        for library in glob.glob(os.path.join(location, "_C*.so")):
            try:
                torch.ops.load_library(library)
            except (OSError, RuntimeError):
                return False
    return _has_op(torch, "nms")


def _has_op(torch, name: str) -> bool:  # noqa: ANN001
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def _define_nms_ops(torch) -> None:  # noqa: ANN001
    library = torch.library.Library("torchvision", "FRAGMENT")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms(dets, scores, iou_threshold):  # noqa: ANN001, ANN202
        order = torch.argsort(scores, descending=True)
        x1, y1, x2, y2 = dets.unbind(1)
        areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        keep = []
        suppressed = torch.zeros(len(order), dtype=torch.bool)
        for rank, i in enumerate(order.tolist()):
            if suppressed[rank]:
                continue
            keep.append(i)
            rest = order[rank + 1 :]
            w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
            h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            suppressed[rank + 1 :] |= iou > iou_threshold
        return torch.tensor(keep, dtype=torch.int64)

    library.impl("nms", nms, "CPU")
    library.impl("qnms", nms, "CPU")
    library.impl("nms", nms, "Meta")
    # torchvision registers fake kernels itself; keep the library object alive.
    _define_nms_ops.library = library  # type: ignore[attr-defined]
