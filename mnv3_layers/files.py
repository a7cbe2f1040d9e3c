"""Atomic file writes: a reader never sees a half-written file.

Every file the package writes goes through `atomic_write` (a temporary file in
the destination's folder, flushed, then `os.replace`d over the destination).
"""

import dataclasses
import json
import os
import tempfile


def _fsync(path):
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def atomic_write(path, write, suffix=None, makedirs=False):
    """Writes `path` atomically through `write(temp_path)`.

    On any error the temporary file is removed and `path` is left as it was.

    Args:
        path: destination file.
        write: callable writing the full content to the temporary path it is
            given (same folder, not yet existing), e.g. `model.save`.
        suffix: suffix of the temporary file (`".weights.h5"` for
            `save_weights`). Defaults to `path`'s extension.
        makedirs: create `path`'s folder if missing. Defaults to `False`.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if makedirs:
        os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(handle)
    os.remove(temp)  # some writers (h5py) refuse or mishandle an existing file
    try:
        write(temp)
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def write_bytes_atomic(path, content, makedirs=False):
    """Writes `content` (bytes) to `path` atomically; returns `path`."""

    def write(temp):
        with open(temp, "wb") as stream:
            stream.write(content)

    return atomic_write(path, write, makedirs=makedirs)


def dataclass_to_json(obj):
    """`dataclasses.asdict(obj)` with top-level tuples as lists (what `json.dump` writes)."""
    result = dataclasses.asdict(obj)
    for key, value in result.items():
        if isinstance(value, tuple):
            result[key] = list(value)
    return result


def write_json_atomic(path, data, indent=2, sort_keys=False, default=None, makedirs=False):
    """Writes `data` as JSON to `path` atomically; returns `path`.

    `indent`, `sort_keys` and `default` go to `json.dump`; data that cannot
    be serialized raises before the destination is touched.
    """

    def write(temp):
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=indent, sort_keys=sort_keys, default=default)
            stream.write("\n")

    return atomic_write(path, write, makedirs=makedirs)


def save_model_atomic(model, path):
    """`model.save(path)` atomically (`.keras` files); returns `path`."""
    return atomic_write(path, model.save)


def save_weights_atomic(model, path):
    """`model.save_weights(path)` atomically (`.weights.h5` files); returns `path`."""
    return atomic_write(path, model.save_weights, suffix=".weights.h5")
