"""Data the package generates itself (no network), deterministic by seed."""

from mnv3_layers.datasets.shapes import (
    DETECTION_BOX_FORMAT,
    SHAPE_NAMES,
    make_shapes_classification,
    make_shapes_dataset,
    make_shapes_detection,
    make_shapes_segmentation,
)

__all__ = [
    "DETECTION_BOX_FORMAT",
    "SHAPE_NAMES",
    "make_shapes_classification",
    "make_shapes_dataset",
    "make_shapes_detection",
    "make_shapes_segmentation",
]
