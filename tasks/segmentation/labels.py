"""PASCAL VOC's label set: class names, and the void label (ignored by loss and metrics).

Its own module so the dataset, the synthetic generator and the drawing code share it without
importing one another.
"""

from __future__ import annotations

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOID = 255
