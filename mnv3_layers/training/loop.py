"""`train(config)`: a fine-tuning run, phase by phase, then its exports and report."""

import dataclasses
import importlib.util
import math
import os
import shutil
import sys
import time
import warnings

import keras
import numpy as np

from mnv3_layers.files import save_model_atomic, write_json_atomic
from mnv3_layers.training.config import (
    CHECKPOINT_DIR,
    CSV_LOG,
    LOG_DIR,
    TENSORBOARD_INSTALL_HINT,
    TrainConfig,
)
from mnv3_layers.training.data import dataset_to_arrays, load_datasets
from mnv3_layers.training.distribute import is_chief, make_strategy
from mnv3_layers.training.recipes import (
    apply_l2,
    build_classifier,
    get_recipe,
    make_optimizer,
    set_backbone_trainable,
)
from mnv3_layers.training.run_folder import (
    EpochCheckpoint,
    plot_training_curves,
    prepare_output_folder,
    read_checkpoint_state,
    read_json,
    read_training_log,
    truncate_csv_log,
)

# === Phases ===


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `fit` of a run: epochs `[start, end)` with its own compile."""

    name: str
    start: int
    end: int
    train_backbone: bool
    lr_factor: float
    qat: bool = False


def plan_phases(config):
    """The phases of a run: `"head"` (frozen backbone), `"finetune"`, `"qat"`.

    Example:

    >>> from mnv3_layers.training import TrainConfig, plan_phases
    >>> config = TrainConfig(data="photos", epochs=5, freeze_epochs=2, qat_epochs=1)
    >>> [(p.name, p.start, p.end, p.lr_factor) for p in plan_phases(config)]
    [('head', 0, 2, 1.0), ('finetune', 2, 5, 0.1), ('qat', 5, 6, 0.1)]
    """
    phases = []
    if config.freeze_epochs:
        phases.append(Phase("head", 0, config.freeze_epochs, False, 1.0))
    if config.epochs > config.freeze_epochs:
        factor = config.unfreeze_lr_factor if config.freeze_epochs else 1.0
        phases.append(Phase("finetune", config.freeze_epochs, config.epochs, True, factor))
    if config.qat_epochs:
        phases.append(Phase("qat", config.epochs, config.epochs + config.qat_epochs, True,
                            0.1, qat=True))
    return phases


@dataclasses.dataclass
class _Run:
    """What one `train` call carries from phase to phase."""

    config: TrainConfig
    strategy: object
    chief: bool
    data: object
    state: dict
    callbacks: tuple
    log: object
    model: object = None
    current: object = None
    qat_model: object = None
    float_metrics: dict = None

    def path(self, *names):
        return os.path.join(self.config.out, *names)

    def recipe(self, total_steps):
        config = self.config
        return get_recipe(config.recipe, self.data.global_batch_size, total_steps,
                          config.weights is not None, config.learning_rate,
                          config.bn_momentum, config.dropout_rate)


# === Training ===


def train(config, overwrite=False, callbacks=(), log=print):
    """Runs (or resumes) the fine-tuning run of `config`; returns its metrics.

    Rerunning the same `config` into the same `out` folder resumes at the
    epoch reached; a finished run returns its stored metrics.

    Args:
        config: a `TrainConfig`.
        overwrite: start over: remove an earlier run (of any configuration)
            from `config.out` first; other files there are kept.
            Defaults to `False`.
        callbacks: extra Keras callbacks for every `fit`. Defaults to `()`.
        log: function that prints progress lines. Defaults to `print`.

    Returns:
        The metrics dict also written to `out/metrics.json`: `val_accuracy`
        and `val_loss` of the float model (inference mode),
        `qat_val_accuracy`, `exports` (path, bytes, accuracy, latency per
        TFLite file), `epochs_completed`, `resumed_from_epoch`,
        `num_replicas`, `global_batch_size`, `optimizer_iterations`,
        `seconds` (this call), ...

    Raises:
        ValueError: a missing weights file (before anything is written).
        DataError: the image folder cannot be trained on (before training).
        OutputFolderError: `out` holds another run (before training).
        WeightsDownloadError: `weights="imagenet"` without network access.

    Example:

    >>> from mnv3_layers.training import TrainConfig, train
    >>> metrics = train(TrainConfig(data="photos", out="runs/a", epochs=5,  # doctest: +SKIP
    ...                             weights="imagenet", freeze_epochs=2,
    ...                             export=("int8",)))
    >>> metrics["val_accuracy"], metrics["exports"]["int8"]["bytes"]  # doctest: +SKIP
    (0.93, 1187432)
    """
    _check_run_files(config)
    start_time = time.perf_counter()
    strategy = make_strategy(config.distribution, config.tpu)
    chief = is_chief(strategy)
    if prepare_output_folder(config, overwrite=overwrite, write=chief) == "complete":
        log(f"{config.out!r} holds a finished run of this configuration; nothing to do "
            "(pass --overwrite to train again).")
        return read_json(os.path.join(config.out, "metrics.json"))
    run = _open_run(config, strategy, chief, callbacks, log)
    phases = plan_phases(config)
    resume_index = [p.name for p in phases].index(run.state["phase"]) if run.state else -1
    for index, phase in enumerate(phases):
        if index >= resume_index:  # earlier phases ended before the checkpoint
            _run_phase(run, phase, resuming=index == resume_index)
    return _close_run(run, phases[-1].end, start_time)


def _check_run_files(config):
    """The checks of `config` that read the file system (the folders: `load_datasets`)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"`config` must be a TrainConfig. Received: config of type {type(config).__name__}"
        )
    if config.weights not in (None, "imagenet") and not os.path.isfile(config.weights):
        raise ValueError(
            "`weights` must be None, 'imagenet' or the path to an existing weights "
            f"file. Received: weights={config.weights!r}"
        )


def _open_run(config, strategy, chief, callbacks, log):
    """Loads the data and the checkpoint state, builds the model; returns a `_Run`."""
    keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    data = load_datasets(config, num_replicas=replicas, log=log)
    if chief:
        write_json_atomic(os.path.join(config.out, "labels.json"), {
            "class_names": list(data.class_names), "image_size": config.image_size,
            "variant": config.variant, "alpha": config.alpha,
            "minimalistic": config.minimalistic,
        })
    if replicas > 1:
        log(f"distribution: {type(strategy).__name__} with {replicas} replicas; global batch "
            f"{data.global_batch_size} = {config.batch_size} per replica x {replicas}")
    state = read_checkpoint_state(config.out)
    if state:
        log(f"resuming from the checkpoint after epoch {state['epoch']} "
            f"(phase {state['phase']!r})")
    if config.freeze_epochs and config.weights is None:
        warnings.warn(
            "`freeze_epochs` with `weights=None` trains a classifier on a randomly "
            "initialized, frozen backbone.", UserWarning, stacklevel=3,
        )
    run = _Run(config, strategy, chief, data, state, tuple(callbacks or ()), log)
    if chief:
        os.makedirs(run.path(LOG_DIR), exist_ok=True)
        truncate_csv_log(run.path(LOG_DIR, CSV_LOG), state["epoch"] if state else 0)
    run.model = _build_model(run, run.recipe(data.steps_per_epoch))
    return run


def _build_model(run, base):
    """The classifier with the recipe's model hyper-parameters and L2."""
    config = run.config
    with run.strategy.scope():
        model = build_classifier(
            config.variant, len(run.data.class_names), config.image_size, alpha=config.alpha,
            minimalistic=config.minimalistic,
            # A checkpoint holds every weight: do not fetch the pretrained ones again.
            weights=None if run.state else config.weights,
            dropout_rate=base.dropout_rate, bn_momentum=base.bn_momentum,
        )
        apply_l2(model, base.l2)
    run.log(f"model: MobileNetV3{config.variant.capitalize()} alpha={config.alpha}"
            f"{' minimalistic' if config.minimalistic else ''}, {model.count_params():,} "
            f"parameters, weights={config.weights or 'none'}, recipe={config.recipe}")
    return model


def _run_phase(run, phase, resuming):
    """Compiles the model of `phase` (restoring the checkpoint when `resuming`) and fits it."""
    if phase.qat and run.float_metrics is None:
        _finish_float_before_qat(run, resuming)
    steps = run.data.steps_per_epoch * (phase.end - phase.start)
    recipe = run.recipe(steps)
    optimizer, initial_epoch = _compile_phase(run, phase, recipe, steps, resuming)
    if initial_epoch >= phase.end:
        if recipe.ema_momentum is not None:
            # As at the end of `fit`: the averaged weights become the weights.
            optimizer.finalize_variable_values(run.current.trainable_variables)
        return
    trainable = sum(int(np.prod(v.shape)) for v in run.current.trainable_variables)
    run.log(f"phase {phase.name!r}: epochs {initial_epoch + 1}-{phase.end} of "
            f"{plan_phases(run.config)[-1].end}, {trainable:,} trainable parameters, "
            f"{recipe.optimizer} lr {recipe.learning_rate * phase.lr_factor:.3g} "
            f"({recipe.schedule} schedule{', warmup' if recipe.warmup_fraction else ''})")
    with warnings.catch_warnings():
        # The per-epoch Keras latency runs on TensorFlow's training thread
        # pools (they cannot change once training runs); the exported TFLite
        # files are measured single-threaded.
        warnings.filterwarnings("ignore", message="num_threads=1 was not applied",
                                category=RuntimeWarning)
        run.current.fit(
            run.data.train, validation_data=run.data.val, epochs=phase.end,
            initial_epoch=initial_epoch, callbacks=_phase_callbacks(run, phase, recipe),
            shuffle=False,  # the dataset is shuffled (or not) by `load_datasets`
            verbose=1 if sys.stdout.isatty() else 2,
        )


def _finish_float_before_qat(run, resuming):
    """Evaluates and saves the float model once its last float epoch is done."""
    path = run.path("model.keras")
    if resuming:
        # Resuming inside QAT: the float model was saved before QAT began.
        with run.strategy.scope():
            run.model = keras.models.load_model(path, compile=False)
        _compile(run.model, "adam", run.config.run_eagerly)
    run.float_metrics = _finish_float(run.model, run.data, path, run.chief and not resuming,
                                      run.log)


def _compile_phase(run, phase, recipe, steps, resuming):
    """Sets `run.current` up for `phase`; returns `(optimizer, initial_epoch)`."""
    with run.strategy.scope():
        if phase.qat:
            from mnv3_layers.quantization import quantize_model

            run.current = run.qat_model = quantize_model(
                run.model, engine="keras", hard_swish=run.config.qat_hard_swish)
        else:
            set_backbone_trainable(run.model, phase.train_backbone)
            run.current = run.model
        optimizer = make_optimizer(recipe, recipe.learning_rate * phase.lr_factor, steps)
        _compile(run.current, optimizer, run.config.run_eagerly)
        if not resuming:
            return optimizer, phase.start
        optimizer.build(run.current.trainable_variables)
        run.current.load_weights(run.state["weights"])
    return optimizer, run.state["epoch"]


def _phase_callbacks(run, phase, recipe):
    callbacks = []
    if run.config.latency:
        from mnv3_layers.callbacks import LatencyCallback

        callbacks.append(LatencyCallback(every_n_epochs=1, runs=10))
    if run.chief:
        callbacks.append(keras.callbacks.CSVLogger(run.path(LOG_DIR, CSV_LOG), append=True))
    callbacks.append(EpochCheckpoint(run.path(CHECKPOINT_DIR), phase.name, write=run.chief))
    if run.chief and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(
            run.path(LOG_DIR, "tensorboard"), write_graph=False, profile_batch=0))
    if recipe.ema_momentum is not None:
        # Validate with the averaged weights; the checkpoint (before it in the
        # list) saves the raw ones.
        callbacks.append(keras.callbacks.SwapEMAWeights())
    return callbacks + list(run.callbacks)


def _tensorboard_available():
    """Whether TensorBoard event files can be written (TF 2.21 does not install it)."""
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    warnings.warn(
        "TensorBoard logs are skipped: the `tensorboard` package is not installed "
        f"(install it with: {TENSORBOARD_INSTALL_HINT}). The CSV log is written.",
        UserWarning,
        stacklevel=5,  # the caller of `train`
    )
    return False


def _compile(model, optimizer, run_eagerly=False):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # XLA compilation costs more than it saves in short CPU runs.
        jit_compile=False,
        run_eagerly=run_eagerly,
    )


def _finish_float(model, data, path, write, log):
    """Evaluates the float model in inference mode and saves `model.keras` (if `write`)."""
    loss, accuracy = model.evaluate(data.val, verbose=0)
    log(f"validation accuracy (float model, inference mode): {accuracy:.3f} "
        f"(loss {loss:.3f}, chance {1 / len(data.class_names):.3f})")
    if write:
        save_model_atomic(model, path)
    return {"val_accuracy": float(accuracy), "val_loss": float(loss),
            "model": os.path.abspath(path)}


# === End of the run: QAT model, exports, metrics ===


def _close_run(run, last_epoch, start_time):
    """Saves the final models and files; returns the run's metrics."""
    if run.float_metrics is None:
        run.float_metrics = _finish_float(run.model, run.data, run.path("model.keras"),
                                          run.chief, run.log)
    metrics = dict(run.float_metrics)
    if run.qat_model is not None:
        qat_loss, qat_accuracy = run.qat_model.evaluate(run.data.val, verbose=0)
        metrics["qat_val_accuracy"] = float(qat_accuracy)
        metrics["qat_val_loss"] = float(qat_loss)
        run.log(f"QAT model: validation accuracy {qat_accuracy:.3f}")
        if run.chief:
            save_model_atomic(run.qat_model, run.path("model_qat.keras"))
    exports = {}
    if run.chief:
        exports = export_and_measure(run.model, run.qat_model, run.config, run.data,
                                     run.config.out, run.log)
    metrics.update(_run_facts(run, last_epoch, exports, start_time))
    if run.chief:
        metrics["plots"] = plot_training_curves(run.path(LOG_DIR, CSV_LOG), run.config.out)
        write_json_atomic(run.path("metrics.json"), metrics)
        # The run is complete: the final model is in model.keras.
        if os.path.isdir(run.path(CHECKPOINT_DIR)):
            shutil.rmtree(run.path(CHECKPOINT_DIR))
    return metrics


def _run_facts(run, last_epoch, exports, start_time):
    """The metrics entries that describe the run (history, data, distribution)."""
    data, config = run.data, run.config
    history = read_training_log(run.path(LOG_DIR, CSV_LOG))
    last = {k: v[-1] for k, v in history.items() if v and k != "epoch"}
    facts = {
        "train_accuracy": last.get("accuracy"),
        "train_loss": last.get("loss"),
        "epochs_completed": last_epoch,
        "resumed_from_epoch": run.state["epoch"] if run.state else 0,
        "class_names": list(data.class_names),
        "num_train_images": data.num_train,
        "num_val_images": data.num_val,
        "num_replicas": run.strategy.num_replicas_in_sync,
        "strategy": type(run.strategy).__name__,
        "per_replica_batch_size": config.batch_size,
        "global_batch_size": data.global_batch_size,
        "optimizer_iterations": int(keras.ops.convert_to_numpy(
            run.current.optimizer.iterations)),
        "exports": exports,
        "seconds": round(time.perf_counter() - start_time, 1),
    }
    measured = [v for v in history.get("latency_ms", []) if not math.isnan(v)]
    if config.latency and measured:
        facts["keras_latency_ms_last_epoch"] = measured[-1]
    return facts


def export_and_measure(model, qat_model, config, data, out, log=print, latency_runs=50):
    """Writes the requested TFLite files; returns `{kind: {path, bytes, accuracy, ...}}`.

    `"float"` and `"dynamic"` come from the float model; `"int8"` from the
    QAT model when there is one, else post-training quantization of the
    float model calibrated on up to 100 training images. Each file's top-1
    accuracy on the validation images (up to 1000) is measured with the
    LiteRT interpreter, and with `config.latency` its batch-1,
    single-thread latency (the paper's protocol); without `ai-edge-litert`
    the files are written and these measurements skipped with a warning.
    """
    if not config.export:
        return {}
    # The files are written by TensorFlow's converter; running them needs the
    # LiteRT interpreter (an optional extra): without it, say so and skip.
    can_run = importlib.util.find_spec("ai_edge_litert") is not None
    if not can_run:
        warnings.warn(
            "The TFLite files are written, but their accuracy and latency are not "
            "measured: the LiteRT interpreter (`ai-edge-litert`) is not installed. "
            'Install it with: pip install "mnv3-layers[litert]"',
            UserWarning,
            stacklevel=2,
        )
    val_images, val_labels = dataset_to_arrays(data.val, limit=1000)
    representative = None
    if "int8" in config.export and qat_model is None:
        representative = np.stack([np.asarray(x) for x, _ in data.representative])
    results = {}
    for kind in config.export:
        path = os.path.join(out, f"model_{kind}.tflite")
        source = _export_file(kind, path, model, qat_model, representative)
        entry = results[kind] = {"path": path, "bytes": os.path.getsize(path),
                                 "source": source}
        text = f"exported {os.path.basename(path)}: {_size_text(entry['bytes'])}"
        if can_run:
            text += _measure_accuracy(entry, val_images, val_labels)
        text += f" ({source})"
        if config.latency and can_run:
            text += _measure_speed(entry, latency_runs)
        log(text)
    return results


def _export_file(kind, path, model, qat_model, representative):
    """Writes the `kind` TFLite file to `path`; returns where it came from."""
    from mnv3_layers.quantization import export_tflite

    if kind == "int8" and qat_model is not None:
        export_tflite(qat_model, path, quantization="int8")
        return "QAT model"
    if kind == "int8":
        export_tflite(model, path, quantization="int8", representative_data=representative)
        return f"post-training quantization, {len(representative)} calibration images"
    export_tflite(model, path, quantization=None if kind == "float" else "dynamic")
    return "float model"


def _measure_accuracy(entry, images, labels):
    from mnv3_layers.quantization import evaluate_tflite

    _, accuracy = evaluate_tflite(entry["path"], images, labels)
    entry["accuracy"] = float(accuracy)
    entry["accuracy_images"] = int(len(images))
    return f", validation accuracy {accuracy:.3f}"


def _measure_speed(entry, runs):
    from mnv3_layers.latency import measure_latency

    report = measure_latency(entry["path"], runtime="tflite", num_threads=1, warmup=5,
                             runs=runs)
    entry["latency_ms"] = report.median_ms
    entry["latency_p10_ms"] = report.p10_ms
    entry["latency_p90_ms"] = report.p90_ms
    return f", latency {report.median_ms:.2f} ms (batch 1, 1 thread, median)"


# === Report ===


def _size_text(num_bytes):
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 2**20 else f"{num_bytes / 2**20:.2f} MiB"


def format_report(report):
    """A few readable lines summarizing a run's metrics or demo report."""
    lines = [
        f"validation accuracy (float, Keras): {report['val_accuracy']:.3f}"
        + (f"  [QAT: {report['qat_val_accuracy']:.3f}]" if "qat_val_accuracy" in report else "")
    ]
    for kind, entry in report.get("exports", {}).items():
        line = f"  {kind:>7}: {os.path.basename(entry['path'])}  {_size_text(entry['bytes'])}"
        if "accuracy" in entry:
            line += f"  accuracy {entry['accuracy']:.3f}"
        if "latency_ms" in entry:
            line += f"  latency {entry['latency_ms']:.2f} ms (1 thread, batch 1)"
        lines.append(line)
    if report.get("plots"):
        lines.append("  plots: " + ", ".join(os.path.basename(p) for p in report["plots"]))
    lines.append(f"  total time: {report.get('seconds', float('nan')):.0f} s")
    return "\n".join(lines)
