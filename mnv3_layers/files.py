"""Atomic file writes: a reader never sees a half-written file.

Every file the package writes (models, reports, tables, checkpoints) goes
through `atomic_write`: the content is written to a temporary file in the
destination's folder, then renamed over the destination with `os.replace`
(atomic on POSIX and Windows within one file system). On any error the
temporary file is removed and the destination is left as it was.
"""

import json
import os
import tempfile


def atomic_write(path, write, suffix=None):
    """Writes `path` atomically through `write(temp_path)`.

    Args:
        path: destination file. Its folder must exist.
        write: callable taking a temporary path (in the same folder) and
            writing the full content there, e.g. `model.save`.
        suffix: suffix of the temporary file. Defaults to `path`'s extension
            (some writers, like `keras.Model.save`, check it).

    Returns:
        `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def write_json_atomic(path, data, indent=2):
    """Writes `data` as JSON to `path` atomically; returns `path`."""

    def write(temp):
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=indent)
            stream.write("\n")

    return atomic_write(path, write)


def save_model_atomic(model, path):
    """`model.save(path)` atomically (`.keras` files); returns `path`."""
    return atomic_write(path, model.save)
