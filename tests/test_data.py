"""Image folders and the digits demo set."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision import errors
from edgevision.data import ImageFolder


def _names(root) -> dict[str, list[str]]:
    """{split: sorted 'label/file' names}: file names are the digit's index in scikit-learn's set."""
    return {part: sorted(str(p.relative_to(root / part)) for p in (root / part).rglob("*.png"))
            for part in ("train", "val", "test")}


def test_digits_split_is_three_way_disjoint_stratified_and_complete(digits):
    folders = {part: ImageFolder.open(getattr(digits, part)) for part in ("train", "val", "test")}
    assert {f.labels for f in folders.values()} == {tuple(str(d) for d in range(10))}
    assert {part: len(f) for part, f in folders.items()} == {"train": 1167, "val": 270, "test": 360}
    names = _names(digits.train.parent)
    indices = {part: {name.split("/")[1] for name in found} for part, found in names.items()}
    assert not indices["train"] & indices["val"] and not indices["train"] & indices["test"]
    assert not indices["val"] & indices["test"]
    assert len(indices["train"] | indices["val"] | indices["test"]) == 1797
    for part, folder in folders.items():  # stratified: each digit's share matches the whole set's (±1 image)
        counts = np.bincount([label for _, label in folder.samples], minlength=10)
        whole = np.bincount([label for f in folders.values() for _, label in f.samples], minlength=10)
        assert np.all(np.abs(counts - whole * len(folder) / 1797) <= 1.0), (part, counts)
    image, _ = folders["test"].read(0)
    assert image.shape == (32, 32, 3) and image.dtype.name == "uint8"


def test_digits_split_is_stable_across_calls_and_roots(digits, tmp_path):
    from edgevision.data.digits import make_digits_folder

    again = make_digits_folder(digits.train.parent, size=32)  # same settings: reused as is
    assert again == digits
    elsewhere = make_digits_folder(tmp_path / "other", size=32)
    assert _names(tmp_path / "other") == _names(digits.train.parent)
    assert (ImageFolder.open(elsewhere.test).read(5)[0] == ImageFolder.open(digits.test).read(5)[0]).all()


def test_digits_split_is_regenerated_when_settings_change(tmp_path):
    from edgevision.data.digits import make_digits_folder

    root = tmp_path / "digits"
    make_digits_folder(root, size=16)
    before = _names(root)
    split = make_digits_folder(root, size=16, test_fraction=0.3, seed=1)
    after = _names(root)
    assert len(after["test"]) == 540 and after != before
    assert sum(len(v) for v in after.values()) == 1797  # no stale images left over from the first layout
    assert ImageFolder.open(split.val).read(0)[0].shape == (16, 16, 3)


@pytest.mark.parametrize(("val_fraction", "test_fraction"), [(0.5, 0.5), (0.0, 0.2), (0.2, 1.0)])
def test_digits_fractions_are_checked(tmp_path, val_fraction, test_fraction):
    from edgevision.data.digits import make_digits_folder

    with pytest.raises(errors.ConfigError, match="sum below 1"):
        make_digits_folder(tmp_path, val_fraction=val_fraction, test_fraction=test_fraction)
    assert list(tmp_path.iterdir()) == []


def test_data_splits_from_a_root(digits, tmp_path):
    from edgevision.data.splits import DataSplits

    splits = DataSplits.from_root(digits.train.parent)
    assert (splits.test, splits.report, splits.report_split, splits.held_out) == (digits.test, digits.test, "test", True)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    no_test = DataSplits.from_root(tmp_path)
    assert (no_test.test, no_test.report, no_test.report_split, no_test.held_out) == (None, tmp_path / "val", "val", False)
    assert DataSplits.from_root(tmp_path, test=digits.test).test == digits.test
    with pytest.raises(errors.DataError, match="does not exist"):
        DataSplits.from_root(tmp_path, test=tmp_path / "nope")
    with pytest.raises(errors.DataError, match="needs train/ and val/"):
        DataSplits.from_root(tmp_path / "val")


def test_measured_folder_prefers_test_and_refuses_an_ambiguous_root(digits, tmp_path):
    from edgevision.data.splits import resolve_measured_folder

    assert resolve_measured_folder(digits.train.parent) == (digits.test, "test")
    assert resolve_measured_folder(digits.val) == (digits.val, "val")
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(errors.DataError, match="no test/ split"):
        resolve_measured_folder(tmp_path)


def test_non_image_files_are_named(digits, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(digits.val, root)
    (root / "3" / "notes.txt").write_text("hello")
    (root / "3" / ".DS_Store").write_text("ignored")
    with pytest.raises(errors.DataError, match=r"non-image file\(s\): 3/notes.txt"):
        ImageFolder.open(root)


def test_corrupt_image_is_named(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    folder = ImageFolder.open(tmp_path)
    with pytest.raises(errors.DataError, match="broken.png"):
        folder.read(0)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(errors.DataError, match="does not exist"):
        ImageFolder.open(tmp_path / "nope")
    with pytest.raises(errors.DataError, match="no class sub-folders"):
        ImageFolder.open(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(errors.DataError, match="holds no images"):
        ImageFolder.open(tmp_path)


def test_labels_outside_model_are_refused(digits):
    with pytest.raises(errors.DataError, match="not among the model's labels"):
        ImageFolder.open(digits.val, labels=("0", "1"))
