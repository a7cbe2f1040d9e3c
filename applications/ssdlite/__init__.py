"""SSDLite: the paper's mobile object detector on a `MobileNetV3Backbone`.

As TF-OD's `ssdlite_mobilenet_v3_{large,small}_320x320_coco` (paper section 6.3).
Needs keras-cv (extra `cv`; non-max suppression on the TensorFlow backend only).
Modules: `model` (`SSDLite`), `heads`, `anchors`, `losses`, `labels`
(`check_detection_labels`), `metrics` (`mean_average_precision`).
"""

from mnv3_layers.applications.ssdlite._keras_cv import CV_INSTALL_HINT, import_keras_cv
from mnv3_layers.applications.ssdlite.anchors import (
    ANCHOR_MAX_SCALE,
    ANCHOR_MIN_SCALE,
    BOX_VARIANCE,
    DEFAULT_ANCHOR_ASPECT_RATIOS,
    DEFAULT_ANCHOR_SCALES,
    default_anchor_sizes,
)
from mnv3_layers.applications.ssdlite.heads import (
    C4_STRIDE,
    C5_STRIDE,
    CLASS_PRIOR,
    EXTRA_FILTERS,
    EXTRA_MIN_FILTERS,
    SSDLevel,
    default_extra_filters,
)
from mnv3_layers.applications.ssdlite.labels import (
    BOUNDING_BOX_FORMATS,
    check_detection_labels,
)
from mnv3_layers.applications.ssdlite.losses import FOCAL_ALPHA, FOCAL_GAMMA
from mnv3_layers.applications.ssdlite.metrics import mean_average_precision
from mnv3_layers.applications.ssdlite.model import SSDLite

__all__ = [
    "ANCHOR_MAX_SCALE",
    "ANCHOR_MIN_SCALE",
    "BOUNDING_BOX_FORMATS",
    "BOX_VARIANCE",
    "C4_STRIDE",
    "C5_STRIDE",
    "CLASS_PRIOR",
    "CV_INSTALL_HINT",
    "DEFAULT_ANCHOR_ASPECT_RATIOS",
    "DEFAULT_ANCHOR_SCALES",
    "EXTRA_FILTERS",
    "EXTRA_MIN_FILTERS",
    "FOCAL_ALPHA",
    "FOCAL_GAMMA",
    "SSDLevel",
    "SSDLite",
    "check_detection_labels",
    "default_anchor_sizes",
    "default_extra_filters",
    "import_keras_cv",
    "mean_average_precision",
]
