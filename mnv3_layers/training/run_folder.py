"""The run folder: its JSON files, checks before a run, per-epoch checkpoints, logs and plots."""

import csv
import json
import os
import shutil
import time
import warnings

import keras

from mnv3_layers.files import atomic_write, write_json_atomic
from mnv3_layers.training.config import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOG_DIR,
    OWNED_NAMES,
    PLOT_INSTALL_HINT,
    STATE_FILE,
    OutputFolderError,
)

# === Files (written atomically with mnv3_layers.files) ===


def read_json(path):
    """The content of a JSON file the run wrote (`config.json`, `metrics.json`, ...)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _remove(folder, names):
    """Removes the files and folders `names` of `folder` that exist."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


# === Output folder ===


def _config_differences(stored, current):
    keys = sorted(set(stored) | set(current))
    return [
        f"{k}: {stored.get(k, '<missing>')!r} -> {current.get(k, '<missing>')!r}"
        for k in keys
        if stored.get(k) != current.get(k)
    ]


def prepare_output_folder(config, overwrite=False, extra_owned=(), write=True):
    """Checks `config.out` and stores the configuration in it.

    A new or empty folder gets `config.json`; a folder with the same one
    resumes (`"complete"` when `metrics.json` exists); a run of another
    configuration stopped before its first checkpoint is replaced. Anything
    else is refused unless `overwrite` (which removes only `OWNED_NAMES` and
    `extra_owned`).

    Args:
        config: a `TrainConfig`.
        overwrite: start a new run, removing an earlier one (of any
            configuration). Defaults to `False`.
        extra_owned: more names in the folder that `overwrite` may remove.
            Defaults to `()`.
        write: create the folder and `config.json` (`False` on non-chief
            workers of a multi-worker run). Defaults to `True`.

    Returns:
        `"new"`, `"resume"` or `"complete"`.

    Raises:
        OutputFolderError: the folder holds another configuration or other
            files, and `overwrite` is `False`; or `out` is a file.
    """
    out = config.out
    current = config.identity()
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputFolderError(f"`out` must be a folder. Received: out={out!r} is a file")
    entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
    config_path = os.path.join(out, CONFIG_FILE)
    status = "new"
    if entries and overwrite:
        if write:
            _remove(out, tuple(OWNED_NAMES) + tuple(extra_owned))
    elif entries:
        status = _reuse_status(out, entries, current, extra_owned, write)
    if write:
        os.makedirs(out, exist_ok=True)
        if status == "new":
            write_json_atomic(config_path, current)
    return status


def _stored_config(config_path):
    try:
        return read_json(config_path)
    except (OSError, ValueError):
        return None


def _reuse_status(out, entries, current, extra_owned, write):
    """`"resume"` or `"complete"` for a non-empty `out`; raises if it holds something else."""
    config_path = os.path.join(out, CONFIG_FILE)
    stored = _stored_config(config_path) if os.path.isfile(config_path) else None
    if stored == current:
        return "complete" if os.path.isfile(os.path.join(out, "metrics.json")) else "resume"
    has_results = any(
        os.path.exists(os.path.join(out, name))
        for name in ("metrics.json", "model.keras", os.path.join(CHECKPOINT_DIR, STATE_FILE))
    )
    if stored is not None and not has_results:
        # A run that stopped before its first checkpoint (e.g. a download
        # error): nothing to lose, the new configuration replaces it.
        if write:
            _remove(out, ("labels.json", LOG_DIR, CHECKPOINT_DIR))
            write_json_atomic(config_path, current)
        return "resume"
    if stored is None:
        foreign = [e for e in entries if e not in tuple(extra_owned)]
        raise OutputFolderError(
            f"The output folder {out!r} is not empty and holds no run configuration "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}). "
            "Nothing was changed. Pass --overwrite (overwrite=True) to write into "
            "it anyway, or choose another --out."
        )
    raise OutputFolderError(
        f"The output folder {out!r} holds a run with a different configuration "
        f"({'; '.join(_config_differences(stored, current))}). Nothing was changed. Pass "
        "--overwrite (overwrite=True) to replace that run, or choose another --out."
    )


# === Checkpoints ===


def read_checkpoint_state(out):
    """The last checkpoint state of a run folder, or `None` without a complete one.

    Returns:
        `{"epoch": epochs completed, "phase": ..., "weights": path of the
        `.weights.h5` file of model and optimizer variables}`, or `None`.
    """
    path = os.path.join(out, CHECKPOINT_DIR, STATE_FILE)
    if not os.path.isfile(path):
        return None
    state = read_json(path)
    weights = os.path.join(out, CHECKPOINT_DIR, state["weights"])
    if not os.path.isfile(weights):
        return None
    return dict(state, weights=weights)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model and optimizer variables after every epoch, atomically.

    Writes `epoch-NNNN-PHASE.weights.h5`, then `state.json` pointing to it,
    then deletes older ones: a run killed at any moment leaves a complete one.

    Args:
        directory: the checkpoint folder.
        phase: name of the training phase (stored in the state).
        write: `False` on non-chief workers (they save nothing). Defaults
            to `True`.
    """

    def __init__(self, directory, phase, write=True):
        super().__init__()
        self.directory = directory
        self.phase = phase
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}-{self.phase}.weights.h5"
        atomic_write(os.path.join(self.directory, name), self.model.save_weights,
                     suffix=".weights.h5")
        write_json_atomic(
            os.path.join(self.directory, STATE_FILE),
            {"epoch": epoch + 1, "phase": self.phase, "weights": name,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
        )
        for old in os.listdir(self.directory):
            if old.startswith("epoch-") and old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.directory, old))


def truncate_csv_log(path, epoch):
    """Keeps the rows of epochs < `epoch` (a resumed run rewrites the later ones)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epoch]

    def write(temp):
        with open(temp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(kept)

    atomic_write(path, write)


def read_training_log(path):
    """Reads `training_log.csv` into `{column: [values]}` (one value per epoch)."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            columns.setdefault(key, []).append(number)
    return columns


# === Plots ===


def plot_training_curves(csv_path, out_dir):
    """Writes `training_curves_loss.png` and `training_curves_accuracy.png` from the CSV log.

    Returns the paths written: none without matplotlib (a warning says so).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: training-curve plots are skipped. Install it "
            f"with: {PLOT_INSTALL_HINT}",
            UserWarning,
            stacklevel=2,
        )
        return []
    log = read_training_log(csv_path)
    if not log.get("epoch"):
        return []
    epochs = [int(e) + 1 for e in log["epoch"]]
    written = []
    for metric in ("loss", "accuracy"):
        if metric not in log:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(epochs, log[metric], marker="o", label=f"training {metric}")
        if f"val_{metric}" in log:
            axes.plot(epochs, log[f"val_{metric}"], marker="o", label=f"validation {metric}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(out_dir, f"training_curves_{metric}.png")
        try:
            atomic_write(path, lambda temp: figure.savefig(temp, dpi=100))
        finally:
            plt.close(figure)
        written.append(path)
    return written
