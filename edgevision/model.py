"""TrainedModel: a torch classifier plus what it was trained to see (labels, preprocessing).

This is the workstation-side object (it needs torch). Checkpoints are plain dicts of tensors,
strings and numbers, so they load with ``torch.load(weights_only=True)``: no code runs from a
model file. Pruned models keep their new layer widths: layers are rebuilt to the saved shapes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import DetectionSpec, PreprocessSpec, SegmentationSpec
from .errors import ConfigError, ModelFileError, UnknownNameError, did_you_mean
from .source import LabelledInput, torch_reference_outputs, torch_weights_sha256
from .types import Task

CHECKPOINT_KIND = "edgevision.checkpoint/1"
ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")


@dataclass
class TrainedModel(LabelledInput):
    """A model ready to compress or export. `module` is a torch.nn.Module in eval mode.

    For task detect, `module` is the deployable graph (image batch → raw head output, see
    `detection`); decoding and NMS happen after the engine, on the device.
    """

    module: Any
    labels: list[str]
    preprocess: PreprocessSpec
    architecture: str | None = None
    name: str = "model"
    notes: dict[str, str] = field(default_factory=dict)  # compression history, human readable
    task: Task = Task.CLASSIFY
    detection: DetectionSpec | None = None  # task detect: how the raw output decodes
    segmentation: SegmentationSpec | None = None  # task segment: how the per-pixel output decodes

    def __post_init__(self) -> None:
        if not self.labels:
            raise ConfigError("TrainedModel needs labels (one per class output).")
        if (self.task is Task.DETECT) != (self.detection is not None):
            raise ConfigError("A detector needs task=Task.DETECT and a DetectionSpec; a classifier has neither.")
        if (self.task is Task.SEGMENT) != (self.segmentation is not None):
            raise ConfigError("A segmenter needs task=Task.SEGMENT and a SegmentationSpec; other tasks have neither.")
        self.module.eval()

    @property
    def framework(self) -> str:
        """The ModelSource's framework (see `edgevision.source`)."""
        return "torch"

    def weights_sha256(self) -> str:
        """Hash of the weights, recorded in every bundle made from this model."""
        return torch_weights_sha256(self.module)

    def reference_outputs(self, batch_nchw: np.ndarray) -> np.ndarray:
        """The module's raw primary output (logits, or a detector's raw head) for an NCHW float32 batch."""
        return torch_reference_outputs(self.module, batch_nchw)

    def save(self, path: str | Path) -> Path:
        """Write a weights-only checkpoint (state_dict + metadata)."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": CHECKPOINT_KIND,
            "architecture": self.architecture or "",
            "name": self.name,
            "labels": list(self.labels),
            "preprocess": self.preprocess.model_dump_json(),
            "notes": dict(self.notes),
            "task": self.task.value,
            "detection": self.detection.model_dump_json() if self.detection is not None else "",
            "segmentation": self.segmentation.model_dump_json() if self.segmentation is not None else "",
            "state_dict": self.module.state_dict(),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, architecture: str | None = None) -> TrainedModel:
        """Load a checkpoint written by `save` (or a bare state_dict when `architecture` is given)."""
        payload = load_checkpoint_payload(path)
        if payload.get("kind") != CHECKPOINT_KIND:
            raise ModelFileError(
                f"{path} is a bare state_dict, not an edgevision checkpoint. "
                "Wrap it with edgevision.TrainedModel(module=..., labels=..., preprocess=...).save(path)."
            )
        arch = architecture or payload["architecture"]
        if not arch:
            raise ModelFileError(f"{path} does not name its architecture; pass architecture=... (--arch).")
        state_dict = payload["state_dict"]
        preprocess = PreprocessSpec.model_validate_json(payload["preprocess"])
        module = build_architecture(arch, num_classes=len(payload["labels"]), input_size=tuple(preprocess.size))
        conform_to_state_dict(module, state_dict)
        try:
            module.load_state_dict(state_dict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ModelFileError(f"{path} does not fit architecture {arch!r}: {first}. Pass the right --arch.") from None
        return cls(
            module=module,
            labels=list(payload["labels"]),
            preprocess=preprocess,
            architecture=arch,
            name=payload.get("name") or Path(path).stem,
            notes=dict(payload.get("notes", {})),
            task=Task(payload.get("task") or Task.CLASSIFY.value),
            detection=DetectionSpec.model_validate_json(payload["detection"]) if payload.get("detection") else None,
            segmentation=(SegmentationSpec.model_validate_json(payload["segmentation"])
                          if payload.get("segmentation") else None),
        )


def load_checkpoint_payload(path: str | Path) -> dict:
    """torch.load with weights_only=True, turning every failure into one clear error."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Checkpoint {path} does not exist. Train one with `edgevision train-demo`.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import re

        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise ModelFileError(f"{path} is corrupt or truncated (not a torch checkpoint). Re-save or re-download it.") from None
        raise ModelFileError(
            f"{path} holds Python objects beyond tensors ({found.group(1)}); edgevision only loads weights, "
            "never code from a model file. Save model.state_dict() instead of the whole model."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is corrupt or truncated ({str(exc).splitlines()[0][:120]}). Re-save or re-download it."
        ) from None
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path} does not hold a state_dict or an edgevision checkpoint.")
    if "state_dict" not in payload:
        payload = {"kind": None, "state_dict": payload}
    return payload


#: Architectures edgevision builds itself (not torchvision's classifiers): name → "module:function".
#: The function takes (num_classes=..., input_size=(h, w)) and returns the deployable module.
CUSTOM_ARCHITECTURES: dict[str, str] = {
    "vit_tiny": "edgevision.transformers:build_vit_tiny",
    "fcos_digits": "edgevision.detectors:build_fcos_detector",
    "lraspp_digits": "edgevision.segmenters:build_lraspp_segmenter",
}


def build_architecture(name: str, *, num_classes: int, input_size: tuple[int, int] | None = None) -> Any:
    """A torchvision classifier or one of CUSTOM_ARCHITECTURES, from random init (no weights are downloaded)."""
    from ._compat.torchvision_ops import ensure_torchvision_importable

    if name in CUSTOM_ARCHITECTURES:
        import importlib

        module_name, _, function = CUSTOM_ARCHITECTURES[name].partition(":")
        return getattr(importlib.import_module(module_name), function)(num_classes=num_classes, input_size=input_size)

    ensure_torchvision_importable()
    import torchvision

    available = sorted(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise UnknownNameError(
            f"Unknown architecture {name!r}. Tested: {', '.join(ARCHITECTURES)}.{did_you_mean(name, available)}"
        )
    options: dict[str, Any] = {}
    if name.startswith("vit_") and input_size is not None:
        options["image_size"] = _square_vit_size(name, input_size)  # position embeddings are made for one size
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)


def _square_vit_size(name: str, input_size: tuple[int, int]) -> int:
    """The ViT's image_size: torchvision's ViT takes square inputs whose side is a whole number of patches."""
    height, width = input_size
    patch = int(name.rsplit("_", 1)[-1]) if name.rsplit("_", 1)[-1].isdigit() else 1
    if height != width or height % patch:
        raise ConfigError(
            f"{name} takes square inputs whose side is a multiple of its {patch}-pixel patches; "
            f"input size {height}×{width} is not. Use e.g. {max(patch, round(height / patch) * patch)} px."
        )
    return height


def conform_to_state_dict(module: Any, state_dict: dict) -> None:
    """Rebuild layers and bare parameters whose saved shapes differ (a pruned model), then let the
    architecture re-sync the sizes its own code caches (`edgevision.compress.prune_arch`).

    Layers: Conv2d, Linear, BatchNorm2d, GroupNorm, LayerNorm, MultiheadAttention. Bare parameters
    (registered on a model's own module, like a ViT's class_token and pos_embedding) take the saved shape.
    """
    import torch
    from torch import nn

    rebuilt: list[str] = []
    for name, child in list(module.named_modules()):
        if any(name.startswith(f"{parent}.") for parent in rebuilt):
            continue  # a child of a rebuilt layer (MultiheadAttention.out_proj) came with it
        replacement = _rebuilt_layer(child, state_dict, f"{name}." if name else "")
        if replacement is not None:
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, replacement)
            rebuilt.append(name)
    changed = bool(rebuilt)
    for name, parameter in list(module.named_parameters()):
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        saved = state_dict.get(name)
        if saved is None or tuple(saved.shape) == tuple(parameter.shape) or type(owner).__module__.startswith("torch.nn"):
            continue
        setattr(owner, attr, nn.Parameter(torch.zeros(saved.shape, dtype=parameter.dtype),
                                          requires_grad=parameter.requires_grad))
        changed = True
    if changed:
        from .compress.prune_arch import after_load

        after_load(module)


def _rebuilt_layer(child: Any, state_dict: dict, prefix: str) -> Any:
    """A fresh layer of `child`'s kind with the saved shapes, or None when they already match."""
    from torch import nn

    if isinstance(child, nn.MultiheadAttention):
        saved = state_dict.get(f"{prefix}in_proj_weight")
        if saved is None or saved.shape[1] == child.embed_dim or not child._qkv_same_embed_dim:
            return None
        return nn.MultiheadAttention(
            saved.shape[1], child.num_heads, dropout=child.dropout, bias=child.in_proj_bias is not None,
            add_bias_kv=child.bias_k is not None, add_zero_attn=child.add_zero_attn, batch_first=child.batch_first,
        )
    weight = state_dict.get(f"{prefix}weight")
    if weight is None:
        return None
    if isinstance(child, nn.Conv2d) and tuple(weight.shape) != tuple(child.weight.shape):
        out_ch, in_per_group = weight.shape[:2]
        depthwise = child.groups > 1 and child.groups == child.in_channels
        groups = out_ch if depthwise else child.groups
        return nn.Conv2d(
            in_per_group * groups, out_ch, child.kernel_size, child.stride, child.padding,
            child.dilation, groups, bias=child.bias is not None, padding_mode=child.padding_mode,
        )
    if isinstance(child, nn.Linear) and tuple(weight.shape) != tuple(child.weight.shape):
        return nn.Linear(weight.shape[1], weight.shape[0], bias=child.bias is not None)
    if isinstance(child, nn.BatchNorm2d) and weight.shape[0] != child.num_features:
        return nn.BatchNorm2d(weight.shape[0], eps=child.eps, momentum=child.momentum)
    if isinstance(child, nn.GroupNorm) and weight.shape[0] != child.num_channels:
        # pruning removes whole groups, so the channels per group are the architecture's
        groups = weight.shape[0] // (child.num_channels // child.num_groups)
        return nn.GroupNorm(groups, weight.shape[0], eps=child.eps, affine=child.affine)
    if isinstance(child, nn.LayerNorm) and tuple(weight.shape) != tuple(child.normalized_shape):
        return nn.LayerNorm(tuple(weight.shape), eps=child.eps, elementwise_affine=child.elementwise_affine,
                            bias=child.bias is not None)
    return None
