"""Old path of `mnv3_layers.architecture.profile`, kept so existing imports work."""

from mnv3_layers.architecture.profile import *  # noqa: F401,F403
