"""The lazy keras-cv import of the SSDLite package (extra `cv`)."""

CV_INSTALL_HINT = 'pip install "mnv3-layers[cv]"'


def import_keras_cv():
    """Imports keras-cv or raises an `ImportError` naming the extra to install."""
    try:
        import keras_cv
    except ImportError as error:
        raise ImportError(
            "SSDLite uses keras-cv for anchors, box matching and encoding, losses "
            f"and non-max suppression. Install it with: {CV_INSTALL_HINT}"
        ) from error
    return keras_cv
