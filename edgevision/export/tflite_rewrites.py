"""Rewrites that make common torch layers lower to TFLite, applied to a copy of the module on a converter failure.

litert-torch 0.10 lowers ``nn.Linear`` on a rank-4 tensor whose spatial size is 1×1 (ConvNeXt's channels-last
MLP in its last stage at 32 px input) to a ``tfl.batch_matmul`` its own verifier rejects ("found invalid output
rank, expected 3 but got 4"). `linear_on_rows` wraps every Linear that sees more than three dimensions in a
reshape to (rows, tokens, features) and back, which lowers cleanly. The arithmetic is the same, so parity is
unaffected; models that convert as they are never see the rewrite."""

from __future__ import annotations

import copy
import functools
from typing import Any


def linear_on_rows(module: Any, example: Any) -> Any:
    """A copy of `module` whose ``nn.Linear`` layers fed rank > 3 tensors (on `example`) run on a rank-3 reshape of
    their input; `module` itself when none is."""
    import torch

    ranks: dict[str, int] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda _, args, name=name: ranks.__setitem__(name, args[0].dim()))
        for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    wide = [name for name, rank in ranks.items() if rank > 3]
    if not wide:
        return module
    rewritten = copy.deepcopy(module)
    for name in wide:
        parent_name, _, child = name.rpartition(".")
        parent = rewritten.get_submodule(parent_name)
        setattr(parent, child, _rowwise_linear_type()(getattr(parent, child)))
    return rewritten.eval()


@functools.cache
def _rowwise_linear_type() -> Any:
    """The wrapper's class, defined on first use (torch is imported lazily)."""
    import torch

    class RowwiseLinear(torch.nn.Module):
        """``linear(x)`` computed as ``linear(x.reshape(-1, in)).reshape(..., out)``."""

        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = self.linear(x.reshape(-1, x.shape[-2], x.shape[-1]))
            return rows.reshape(*x.shape[:-1], rows.shape[-1])

    return RowwiseLinear


__all__ = ["linear_on_rows"]
