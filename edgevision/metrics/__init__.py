"""Task metrics measured through a deployed engine: COCO mAP for detection (`edgevision.metrics.detection`).

Standard evaluators only (pycocotools), imported when a metric is first computed.
"""

from __future__ import annotations
