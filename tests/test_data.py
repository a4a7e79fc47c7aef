"""Image folders and the digits demo set."""

from __future__ import annotations

import pytest

from edgevision import errors
from edgevision.data import ImageFolder


def test_digits_split_is_stratified_and_complete(digits):
    train, val = ImageFolder.open(digits.train), ImageFolder.open(digits.val)
    assert train.labels == val.labels == tuple(str(d) for d in range(10))
    assert len(train) + len(val) == 1797 and len(val) == 360
    image, _ = val.read(0)
    assert image.shape == (32, 32, 3) and image.dtype.name == "uint8"


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
