"""PyTorch eager backend: the reference every other engine is compared with.

Runs ``torch`` bundles (a weights-only checkpoint + architecture name). Workstation use only.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .._optional import require
from ..types import Format
from .base import Runtime
from .precision import EnginePrecision, count, normalise


class TorchRuntime(Runtime):
    name = "torch"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})

    def _load(self) -> None:
        torch = require("torch", extra="compress", what="PyTorch")
        from ..model import TrainedModel

        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self._torch = torch
        self._model = TrainedModel.load(self.bundle.model_path).module.eval()

    def _run(self, batch: np.ndarray) -> np.ndarray | list[np.ndarray]:
        with self._torch.inference_mode():
            result = self._model(self._torch.from_numpy(batch))
        if isinstance(result, tuple | list):
            return [tensor.numpy() for tensor in result]
        return result.numpy()

    def _read_precision(self) -> EnginePrecision:
        """Eager mode computes each conv/linear layer in its weights' dtype."""
        layers = (self._torch.nn.Conv2d, self._torch.nn.Linear, self._torch.nn.ConvTranspose2d)
        dtypes = [normalise(str(m.weight.dtype).removeprefix("torch.")) for m in self._model.modules() if isinstance(m, layers)]
        return EnginePrecision(count(dtypes), source="PyTorch module weights")

    def close(self) -> None:
        self._model = None
