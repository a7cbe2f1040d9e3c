"""Data the package generates itself (no network), deterministic by seed."""

from mnv3_layers.datasets.shapes import SHAPE_NAMES, make_shapes_classification

__all__ = ["SHAPE_NAMES", "make_shapes_classification"]
