"""What a model's raw output means, per task: decoding that runs on the device (numpy and OpenCV only).

`edgevision.tasks.detect`: boxes from a detector's raw head (decode, threshold, NMS, letterbox inverse).
Classification needs no module of its own: its head is a softmax (`edgevision.stream.heads`).
"""

from __future__ import annotations
