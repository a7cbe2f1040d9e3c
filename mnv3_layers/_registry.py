"""The one registration decorator used by every layer of the package.

``"mnv3_layers"`` is part of the ``.keras`` format (``"mnv3_layers>ClassName"``): never rename it.
"""

import keras

PACKAGE = "mnv3_layers"


def register(cls):
    """Registers `cls` with Keras serialization under package `mnv3_layers`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
