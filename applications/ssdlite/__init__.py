"""SSDLite: the paper's mobile object detector on a `MobileNetV3Backbone`.

MobileNetV3 paper, section 6.3 (Table 6), as in the TF Object Detection API
configs `ssdlite_mobilenet_v3_{large,small}_320x320_coco`: C4 is the
expansion output of the last-stage block (Large `expanded_conv_12`, 672
channels; Small `expanded_conv_8`, 288; stride 16), C5 the last feature map
(stride 32), then extra layers to strides 64 .. 512 (`heads`). Anchors,
matching, box encoding and decoding use keras-cv (`anchors`; extra `cv`,
imported when an `SSDLite` is built; non-max suppression runs on the
TensorFlow backend only, as in keras-cv). Loss: keras-cv's sigmoid focal
loss plus smooth L1, normalized by the positive anchors (`losses`).

Modules: `model` (`SSDLite`), `heads`, `anchors`, `losses`, `labels`
(`check_detection_labels`), `metrics` (`mean_average_precision`).

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.3.
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
