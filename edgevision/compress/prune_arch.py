"""What structured pruning must know about particular architectures, one table entry each.

torch-pruning shrinks layers and bare parameters, but a model's own code may read sizes it cached at
construction (torchvision's VisionTransformer reshapes by ``self.hidden_dim``), or hide layers from the
tracer (Swin calls ``F.linear`` on its attention weights). An entry says, for one model class, how to
bring such attributes back in step after pruning and after loading a pruned checkpoint, or why the class
cannot be pruned at all. Entries are keyed by the class's import path, so nothing is imported to look one
up, and adding an architecture is one entry here rather than another branch in `prune`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import CompressionError


@dataclass(frozen=True, kw_only=True)
class ArchitectureAdaptation:
    """How pruning handles one model class (matched anywhere in the module tree).

    `after_prune(module)` re-syncs cached sizes once channels are gone; `after_load(module)` does the same
    after `edgevision.model.conform_to_state_dict` rebuilt the layers and parameters to a checkpoint's
    shapes; `unsupported` is the reason the class cannot be pruned (checked before anything is traced).
    """

    name: str
    after_prune: Callable[[Any], None] | None = None
    after_load: Callable[[Any], None] | None = None
    unsupported: str | None = None


def _sync_vision_transformer(vit: Any) -> None:
    """torchvision's ViT reshapes the patch embedding by `hidden_dim`: it must be the pruned residual width."""
    vit.hidden_dim = int(vit.class_token.shape[-1])


def _sync_loaded_vision_transformer(vit: Any) -> None:
    """The residual width and, from the saved position embedding, the image size the checkpoint was made for."""
    _sync_vision_transformer(vit)
    seq_length = int(vit.encoder.pos_embedding.shape[1])
    side = math.isqrt(seq_length - 1)
    if side * side != seq_length - 1:
        raise CompressionError(
            f"The checkpoint's ViT position embedding has {seq_length} tokens, not a square grid plus the class "
            "token: it was not saved from a torchvision VisionTransformer."
        )
    vit.seq_length = seq_length
    vit.image_size = side * vit.patch_size


_SWIN_REASON = (
    "torch-pruning 1.6 cannot group its channels. Its dependency grouping (DependencyGraph.get_pruning_group, "
    "stuck in index_mapping) did not finish in 5 minutes even for a 2-block Swin at 32 px (swin_t at 64 px: not "
    "in 10), as Swin's window partition reshapes channels and positions together; and ShiftedWindowAttention calls "
    "F.linear on its qkv/proj weights instead of those Linear layers, so the graph never sees them as layers. "
    "Export it unpruned, or prune a ViT or a CNN"
)

#: Model class ("module:QualifiedName") → what pruning must do for it.
ADAPTATIONS: dict[str, ArchitectureAdaptation] = {
    "torchvision.models.vision_transformer:VisionTransformer": ArchitectureAdaptation(
        name="torchvision VisionTransformer", after_prune=_sync_vision_transformer,
        after_load=_sync_loaded_vision_transformer,
    ),
    "torchvision.models.swin_transformer:SwinTransformer": ArchitectureAdaptation(
        name="torchvision SwinTransformer", unsupported=_SWIN_REASON,
    ),
}


def adaptations(module: Any) -> list[tuple[Any, ArchitectureAdaptation]]:
    """(submodule, its entry) for every submodule (the module included) whose class has an entry."""
    found = []
    for layer in module.modules():
        entry = ADAPTATIONS.get(f"{type(layer).__module__}:{type(layer).__qualname__}")
        if entry is not None:
            found.append((layer, entry))
    return found


def check_prunable(module: Any) -> None:
    """Raise CompressionError, naming the architecture and why, when the module holds a class that cannot be pruned."""
    for _layer, entry in adaptations(module):
        if entry.unsupported:
            raise CompressionError(f"Cannot prune a {entry.name}: {entry.unsupported}.")


def after_prune(module: Any) -> None:
    """Bring every matched submodule's cached sizes in step with its pruned layers."""
    for layer, entry in adaptations(module):
        if entry.after_prune is not None:
            entry.after_prune(layer)


def after_load(module: Any) -> None:
    """The same after a pruned checkpoint's shapes were restored (see `edgevision.model.conform_to_state_dict`)."""
    for layer, entry in adaptations(module):
        if entry.after_load is not None:
            entry.after_load(layer)


def run_step(pruner: Any, module: Any, *, what: str) -> None:
    """`pruner.step()`, with any failure inside torch-pruning turned into a CompressionError naming the layer."""
    names = _names(module)
    group = None
    try:
        for group in pruner.step(interactive=True):
            group.prune()
    except CompressionError:
        raise
    except Exception as exc:  # torch-pruning fails in many ways on graphs it does not understand
        layer = _failing_layer(exc) or (group[0].dep.target.module if group is not None else None)
        where = f" at {_describe(layer, names)}" if layer is not None else ""
        raise CompressionError(
            f"torch-pruning could not prune {what}{where}: {_first_line(exc)}. Add that layer to ignored_layers, "
            "or export the model unpruned."
        ) from exc


def check_forward(module: Any, input_size: tuple[int, int], *, what: str) -> None:
    """Run the pruned module once; a failure names the innermost layer whose forward raised."""
    import torch

    names = _names(module)
    running: list[Any] = []  # the layers whose forward has started and not returned

    def entered(layer: Any, _args: Any) -> None:
        running.append(layer)

    def left(_layer: Any, _args: Any, _output: Any) -> None:
        running.pop()

    handles = [hook(fn) for layer in module.modules()
               for hook, fn in ((layer.register_forward_pre_hook, entered), (layer.register_forward_hook, left))]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, *input_size))
    except Exception as exc:  # the pruned graph broke an assumption of the model's own code
        raise CompressionError(
            f"The pruned {what} no longer runs: {_describe(running[-1] if running else module, names)} raised "
            f"{type(exc).__name__}: {_first_line(exc)}. Its code reads a size pruning changed; an entry in "
            "edgevision.compress.prune_arch.ADAPTATIONS must re-sync it, or add that layer to ignored_layers."
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)


def _names(module: Any) -> dict[int, str]:
    names = {id(layer): name for name, layer in module.named_modules()}
    names.update({id(parameter): name for name, parameter in module.named_parameters()})
    return names


def _describe(layer: Any, names: dict[int, str]) -> str:
    name = names.get(id(layer))
    kind = type(layer).__name__
    return f"{name} ({kind})" if name else f"the model's own forward ({kind})" if name == "" else kind


def _failing_layer(exc: BaseException) -> Any:
    """The innermost `layer` torch-pruning's pruning functions were working on when `exc` was raised."""
    import torch

    found = None
    traceback = exc.__traceback__
    while traceback is not None:
        candidate = traceback.tb_frame.f_locals.get("layer")
        if isinstance(candidate, (torch.nn.Module, torch.nn.Parameter)):
            found = candidate
        traceback = traceback.tb_next
    return found


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
