"""Test videos and sources made from the digits demo set (no camera, no download).

`digit_video` is a session fixture other test packages import: a 60-frame 640×480 mp4v clip
with one validation digit drawn large in the middle, changing every `HOLD` frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

FRAMES = 60
HOLD = 6
SIZE = (640, 480)  # width, height


def digit_images(val_folder: Path, count: int = 10) -> list[np.ndarray]:
    """One validation image per digit class 0..count-1 (BGR uint8)."""
    return [cv2.imread(str(sorted((val_folder / str(d)).glob("*.png"))[0])) for d in range(count)]


def digit_frame(digit: np.ndarray, *, width: int = SIZE[0], height: int = SIZE[1]) -> np.ndarray:
    """A width×height frame of white paper with `digit` scaled up to full height in the middle."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    canvas[top : top + side, left : left + side] = cv2.resize(digit, (side, side), interpolation=cv2.INTER_NEAREST)
    return canvas


def write_digit_video(val_folder: Path, path: Path, *, frames: int = FRAMES, hold: int = HOLD) -> Path:
    digits = digit_images(val_folder)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(frames):
        writer.write(digit_frame(digits[(i // hold) % len(digits)]))
    writer.release()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video as OpenCV decodes it (what the pipeline's file source sees)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="session")
def digit_video(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_video(digits.val, tmp_path_factory.mktemp("video") / "digits.mp4")
