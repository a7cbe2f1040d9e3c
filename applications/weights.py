"""Weights for the applications: ImageNet download, legacy .h5 conversion.

(Work in progress: legacy conversion is completed in the same change.)
"""

import os


def check_weights_argument(weights, *, model_type, alpha, minimalistic, include_top,
                           classes, classifier_activation):
    if weights is None:
        return
    if weights == "imagenet":
        return
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(
            "`weights` must be None, 'imagenet' or the path to a weights file. "
            f"Received: weights={weights!r}"
        )


def load_weights(model, weights, *, model_type, alpha, minimalistic, include_top):
    if weights is None:
        return
    raise NotImplementedError("weights loading")
