"""Test helpers shipped with the package: `run_layer_test` (a layer class in one
call), `run_backbone_test` (a backbone model) and `assert_raises_for_argument`
(a bad argument's error names the argument and the received value).
"""

from mnv3_layers.testing.backbone_test import run_backbone_test
from mnv3_layers.testing.layer_test import assert_raises_for_argument, run_layer_test

__all__ = ["assert_raises_for_argument", "run_backbone_test", "run_layer_test"]
