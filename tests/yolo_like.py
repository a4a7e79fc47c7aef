"""A YOLOv8/YOLO11-style ONNX detector made here (nothing is downloaded), for the ONNX-in tests.

Same contract as an Ultralytics export: input "images" (N×3×H×W RGB in 0..1, letterboxed, pad
114), output "output0" [N, 4 + classes, candidates] with centre-x, centre-y, w, h in INPUT
PIXELS and per-class scores already sigmoid; metadata_props carry `names`, `imgsz`, `stride`,
`task` the way Ultralytics writes them. Weights are seeded: He-initialised convolutions (so the
features, hence scores and boxes, depend on the image) and a negative score bias, so that a
handful to a few dozen candidates per image clear the usual 0.25 threshold, with spread scores
(no near-ties for an FP16 engine to reorder), and NMS has work to do.
"""

from __future__ import annotations

from pathlib import Path


def make_yolo_onnx(
    path: Path,
    *,
    labels: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    imgsz: tuple[int, int] = (64, 96),
    dynamic_hw: bool = False,
    task: str = "detect",
    seed: int = 0,
) -> Path:
    import onnx
    import torch
    from torch import nn

    class YoloLike(nn.Module):
        """Two strides (8, 16), anchor-free: box = (grid + 0.5 + tanh offset) · stride, size = exp(·) · 2·stride."""

        def __init__(self, classes: int) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU())
            self.down8 = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())
            self.down16 = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())
            self.heads = nn.ModuleList([nn.Conv2d(16, 4 + classes, 1) for _ in range(2)])
            for layer in (*self.stem, *self.down8, *self.down16):
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
            for head in self.heads:
                nn.init.normal_(head.weight, 0.0, 1.0)
                nn.init.zeros_(head.bias[:4])
                nn.init.constant_(head.bias[4:], -3.0)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            p8 = self.down8(self.stem(images))
            outputs = []
            for head, feature, stride in zip(self.heads, (p8, self.down16(p8)), (8, 16), strict=True):
                raw = head(feature)
                n, _, h, w = raw.shape
                ys = torch.arange(h, dtype=images.dtype).view(1, h, 1).expand(1, h, w)
                xs = torch.arange(w, dtype=images.dtype).view(1, 1, w).expand(1, h, w)
                cx = (xs + 0.5 + torch.tanh(raw[:, 0])) * stride
                cy = (ys + 0.5 + torch.tanh(raw[:, 1])) * stride
                bw = torch.exp(raw[:, 2].clamp(-2, 2)) * 2 * stride
                bh = torch.exp(raw[:, 3].clamp(-2, 2)) * 2 * stride
                boxes = torch.stack([cx, cy, bw, bh], dim=1)
                scores = torch.sigmoid(raw[:, 4:])
                outputs.append(torch.cat([boxes, scores], dim=1).reshape(n, 4 + scores.shape[1], h * w))
            return torch.cat(outputs, dim=2)

    model = YoloLike(len(labels)).eval()
    height, width = imgsz
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}} if dynamic_hw else {
        "images": {0: "batch"}, "output0": {0: "batch"}}
    torch.onnx.export(
        model, (torch.zeros(1, 3, height, width),), str(path), dynamo=False, opset_version=17,
        input_names=["images"], output_names=["output0"], dynamic_axes=axes,
    )
    proto = onnx.load(str(path))
    names = "{" + ", ".join(f"{i}: {label!r}" for i, label in enumerate(labels)) + "}"
    metadata = {"author": "tests (Ultralytics-style metadata)", "stride": "16", "task": task, "batch": "1",
                "imgsz": f"[{height}, {width}]", "names": names}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "pytorch"
    onnx.save(proto, str(path))
    return path


def make_classifier_onnx(path: Path, *, labels: tuple[str, ...] = tuple("0123456789"), imgsz: tuple[int, int] = (64, 96),
                         seed: int = 0) -> Path:
    """A tiny ONNX classifier (one [N, classes] logits output, `names` metadata): the wrong model for --task detect."""
    import onnx
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, len(labels))).eval()
    torch.onnx.export(model, (torch.zeros(1, 3, *imgsz),), str(path), dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "names", "{" + ", ".join(f"{i}: {label!r}" for i, label in enumerate(labels)) + "}"
    onnx.save(proto, str(path))
    return path


def without_metadata(source: Path, path: Path, *keys: str) -> Path:
    """A copy of the ONNX file at `source` with the metadata_props `keys` removed (as some exporters write it)."""
    import onnx

    proto = onnx.load(str(source))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in keys]
    del proto.metadata_props[:]
    for key, value in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path
