"""MobileNetV3 models built from `mnv3_layers` (installed as `mnv3_layers.applications`)."""

from mnv3_layers.applications.backbone import MobileNetV3Backbone
from mnv3_layers.applications.classifier import build_classifier
from mnv3_layers.applications.mobilenet_v3 import (
    MobileNetV3Large,
    MobileNetV3Small,
    decode_predictions,
    preprocess_input,
)

__all__ = [
    "MobileNetV3Backbone",
    "MobileNetV3Large",
    "MobileNetV3Small",
    "build_classifier",
    "decode_predictions",
    "preprocess_input",
]
