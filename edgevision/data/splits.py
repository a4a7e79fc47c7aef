"""Which split a figure is measured on: train fits, val chooses, test reports.

A data root holds train/ and val/ (and, ideally, test/) image folders. Val is the selection set:
epochs, checkpoints, accuracy budgets and parity are decided on it, so an accuracy on val is
optimistic. Test, when present, chose nothing, and every published accuracy is measured on it.
pathlib only: the device side (bench) uses this too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

TRAIN, VAL, TEST = "train", "val", "test"


@dataclass(frozen=True, kw_only=True)
class DataSplits:
    """The folders of one data set. `test` is None when the user gave no held-out split."""

    train: Path
    val: Path
    test: Path | None = None

    @classmethod
    def from_root(cls, root: str | os.PathLike[str], *, test: str | os.PathLike[str] | None = None) -> DataSplits:
        """root/train, root/val and root/test (if present; an explicit `test` folder wins)."""
        root = Path(root)
        train, val = root / TRAIN, root / VAL
        if not train.is_dir() or not val.is_dir():
            raise DataError(
                f"{root} needs train/ and val/ sub-folders (each <label>/<image>), and optionally a held-out test/, "
                "e.g. runs/demo/data."
            )
        if test is not None and not Path(test).is_dir():
            raise DataError(f"Test folder {test} does not exist. Pass an image folder laid out as <label>/<image>.")
        held_out = Path(test) if test is not None else (root / TEST if (root / TEST).is_dir() else None)
        return cls(train=train, val=val, test=held_out)

    @property
    def report(self) -> Path:
        """The folder published accuracies are measured on: test, or val when there is no test."""
        return self.test if self.test is not None else self.val

    @property
    def report_split(self) -> str:
        """The name written next to every published accuracy: "test" or "val"."""
        return TEST if self.test is not None else VAL

    @property
    def held_out(self) -> bool:
        return self.test is not None


def describe_split(split: str, *, held_out: bool) -> str:
    """One sentence for reports: what the accuracy figures are measured on, and what that means."""
    if held_out:
        return (f"Accuracy is measured on the held-out **{split}** split: no epoch, checkpoint, threshold or "
                "budget was chosen on it. The val split chose them.")
    return (f"Accuracy is measured on **{split}, the selection set** (no test split was given): it also chose the "
            "best epochs and passed the accuracy budget, so the figures are optimistic. Add a test/ folder "
            "next to train/ and val/ for a held-out figure.")


def resolve_measured_folder(data: str | os.PathLike[str]) -> tuple[Path, str]:
    """(image folder, split name) for an accuracy measurement given a folder or a data root.

    A root with test/ inside measures test/; a root with train/ or val/ but no test/ is refused
    (which one was meant?); any other folder is the image folder itself, named after itself.
    """
    data = Path(data)
    if (data / TEST).is_dir():
        return data / TEST, TEST
    present = [name for name in (TRAIN, VAL) if (data / name).is_dir()]
    if present:
        raise DataError(
            f"{data} holds {', '.join(p + '/' for p in present)} but no test/ split. Pass the split folder to measure "
            f"(e.g. {data / VAL}, which is the selection set), or add a held-out {data / TEST}."
        )
    return data, data.name


__all__ = ["TEST", "TRAIN", "VAL", "DataSplits", "describe_split", "resolve_measured_folder"]
