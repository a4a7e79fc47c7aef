"""Channel units for pruning: what a channel group's kept width must be a multiple of, and how to keep them whole.

A group normalised by GroupNorm loses whole norm groups (ranked by their mean importance, removed by
`group_norm_pruner`, which lowers num_groups to match); a group running through nn.MultiheadAttention keeps the
same number of channels in every head (`whole_units` ranks channels within their head). `group_ratio` turns a
target fraction into the torch-pruning ratio that leaves exactly the rounded count (see `prune`'s docstring).
"""

from __future__ import annotations

import math
from typing import Any

from .._optional import require
from ..errors import CompressionError


def group_ratio(width: int, channel_unit: int, pruning_ratio: float, round_to: int | None, *,
                current: int | None = None) -> float:
    """The torch-pruning ratio that leaves exactly the rounded channel count in one group, now `current` wide
    (default: `width`, not pruned yet).

    A group keeps int(width · (1 − ratio)) of its original `width`, rounded down to a multiple of
    `round_to` and of its `channel_unit` (so whole norm groups go and attention heads stay equal), but
    at least one such unit; a group no wider stays whole. torch-pruning keeps int(n · (1 − r)) of n
    channels, so r = 1 − (kept + ½) / current hits `kept` exactly whatever the float rounding.
    """
    unit = math.lcm(round_to or 1, channel_unit)
    if width <= unit:
        return 0.0
    kept = int(width * (1.0 - pruning_ratio))
    kept = max(unit, kept - kept % unit)
    return max(0.0, 1.0 - (kept + 0.5) / (current or width))


def out_channels(root: Any) -> int:
    """A group root's current output width (Conv, Linear or LSTM, see `_PrunePlan.of`)."""
    for attribute in ("out_channels", "out_features", "hidden_size"):
        if hasattr(root, attribute):
            return int(getattr(root, attribute))
    raise CompressionError(f"Internal error: cannot read the output width of a {type(root).__name__}.")


def norm_group_size(group: Any) -> int:
    """Channels per GroupNorm group among a dependency group's layers (1 without GroupNorm)."""
    torch = require("torch", extra="compress", what="PyTorch")

    sizes = [dep.target.module.num_channels // dep.target.module.num_groups for dep, _ in group
             if isinstance(dep.target.module, torch.nn.GroupNorm)]
    return math.lcm(*sizes) if sizes else 1


def attention_heads(group: Any) -> int:
    """The lcm of num_heads over a dependency group's nn.MultiheadAttention layers (1 without attention)."""
    torch = require("torch", extra="compress", what="PyTorch")

    heads = [dep.target.module.num_heads for dep, _ in group
             if isinstance(dep.target.module, torch.nn.MultiheadAttention)]
    return math.lcm(*heads) if heads else 1


def channel_unit(group: Any, *, what: str) -> int:
    """What a group's kept width must be a multiple of: its GroupNorm group size, or its attention heads."""
    norm, heads = norm_group_size(group), attention_heads(group)
    if norm > 1 and heads > 1:
        raise CompressionError(
            f"Cannot prune {what}: one channel group runs through both GroupNorm and MultiheadAttention, and keeping "
            "whole norm groups and equal heads at once is not supported. Add one of its layers to ignored_layers."
        )
    return max(norm, heads)


def whole_units(scorer: Any) -> Any:
    """`scorer`, ranked so that the lowest k channels (k a multiple of `channel_unit`) keep the structure.

    GroupNorm: every group's channels get their group's mean importance, made distinct by a tiny index
    term, so the lowest k are whole groups. Attention: channels are ranked within their head and scored
    by that rank (plus head index / heads), so the lowest k take the same number from every head, each
    head's least important ones.
    """
    torch = require("torch", extra="compress", what="PyTorch")
    tp = require("torch_pruning", extra="compress", what="torch-pruning")

    class WholeUnits(tp.importance.Importance):
        def __call__(self, group: Any) -> Any:
            scores = scorer(group)
            size, heads = norm_group_size(group), attention_heads(group)
            if scores is None or (size == 1 and heads == 1):
                return scores
            if heads > 1:
                per_head = scores.reshape(heads, -1)
                ranks = per_head.argsort(dim=1).argsort(dim=1).to(scores.dtype)
                return (ranks + torch.arange(heads, dtype=scores.dtype)[:, None] / heads).reshape(-1)
            means = scores.reshape(-1, size).mean(dim=1)
            means = means + torch.arange(len(means), dtype=means.dtype) * 1e-9 * (means.abs().max() + 1e-12)
            return means.repeat_interleave(size)

    return WholeUnits()


def group_norm_pruner() -> Any:
    """torch-pruning's GroupNorm handler, changed to remove whole groups (and lower num_groups to match)."""
    tp = require("torch_pruning", extra="compress", what="torch-pruning")

    class WholeGroupNormPruner(tp.pruner.function.GroupNormPruner):
        def prune_out_channels(self, layer: Any, idxs: list[int]) -> Any:
            size = layer.num_channels // layer.num_groups
            removed = sorted(idxs)
            if len(removed) % size or any(removed[i] // size != removed[i - i % size] // size
                                          for i in range(len(removed))):
                raise CompressionError(f"Internal error: pruning would split a GroupNorm group ({len(idxs)} channels).")
            layer.num_groups -= len(removed) // size
            return super().prune_out_channels(layer, idxs)

        prune_in_channels = prune_out_channels

        def get_out_channel_groups(self, layer: Any) -> int:
            return 1  # whole groups go, so torch-pruning must not spread the cut over them

        get_in_channel_groups = get_out_channel_groups

    return WholeGroupNormPruner()


__all__ = ["channel_unit", "group_norm_pruner", "group_ratio", "out_channels", "whole_units"]
