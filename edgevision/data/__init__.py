"""Image folders, calibration sets and the digits demo set (numpy/OpenCV; torch parts are lazy)."""

from .folder import ImageFolder as ImageFolder
from .folder import read_image as read_image

__all__ = ["ImageFolder", "read_image"]
