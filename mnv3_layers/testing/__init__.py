"""Test helpers for Keras layers and backbones, shipped with the package.

`run_layer_test` checks a layer class in one call (serialization, weight
counts, shapes, values, training, mixed precision, `.keras` saving);
`run_backbone_test` checks a backbone model (output and pyramid shapes,
feature metadata, config and `.keras` round trips, mixed precision);
`assert_raises_for_argument` checks that a bad argument raises an error that
names the argument and the received value.
"""

from mnv3_layers.testing.backbone_test import run_backbone_test
from mnv3_layers.testing.layer_test import assert_raises_for_argument, run_layer_test

__all__ = ["assert_raises_for_argument", "run_backbone_test", "run_layer_test"]
