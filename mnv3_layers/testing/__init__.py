"""Test helpers for Keras layers, shipped with the package.

`run_layer_test` checks serialization, weight counts, shapes, values,
training, mixed precision and `.keras` saving of a layer class in one call;
`assert_raises_for_argument` checks that a bad argument raises an error that
names the argument and the received value.
"""

from mnv3_layers.testing.layer_test import assert_raises_for_argument, run_layer_test

__all__ = ["assert_raises_for_argument", "run_layer_test"]
