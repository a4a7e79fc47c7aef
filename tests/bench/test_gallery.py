"""The demo's pictures: a grid of test images with the ground truth and what each engine found."""

from __future__ import annotations

import cv2
import numpy as np

from edgevision.bench.gallery import segmentation_gallery
from edgevision.data.masks import MaskFolder
from edgevision.tasks.segment import SegmentationMask

LABELS = ("background", "disc", "bar")


def _mask_split(root, count: int = 2):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    for index in range(count):
        image = np.full((120, 160, 3), 128, np.uint8)
        mask = np.zeros((120, 160), np.uint8)
        cv2.circle(mask, (110, 80), 15, 1, -1)
        mask[100:110, 20:60] = 2
        mask[0, :] = 255  # unlabelled: drawn as background
        cv2.imwrite(str(root / "images" / f"{index}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{index}.png"), mask)
    return MaskFolder.open(root)


def test_segmentation_gallery_tints_objects_and_leaves_background(tmp_path):
    split = _mask_split(tmp_path / "split")
    found = {"engine": [SegmentationMask(np.zeros((120, 160), np.uint8), LABELS, 0) for _ in range(len(split))]}
    picture = segmentation_gallery(split, found, tmp_path / "out" / "masks.png", images=2)
    grid = cv2.imread(str(picture))
    # two rows of (title band + 120 px image + 4 px gutter), two columns of (160 px + 4 px gutter)
    assert grid.shape == (2 * (22 + 120 + 4), 2 * (160 + 4), 3)
    truth, nothing = grid[22 : 22 + 120, 0:160], grid[22 : 22 + 120, 164:324]
    assert not np.array_equal(truth[80, 110], [128, 128, 128])  # the disc is tinted (the legend is top-left)
    assert not np.array_equal(truth[105, 40], truth[80, 110])  # the bar in another colour
    assert np.array_equal(truth[80, 140], [128, 128, 128])  # background keeps the photo's pixels
    assert np.array_equal(nothing[80, 110], [128, 128, 128])  # the engine found nothing there
