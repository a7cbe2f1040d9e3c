"""`train(config)`: the phases of a fine-tuning run, exports and report."""

import dataclasses
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
    _read_json,
    _truncate_csv_log,
    plot_training_curves,
    prepare_output_folder,
    read_checkpoint_state,
    read_training_log,
)

# === Training ===


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


def _tensorboard_available():
    """Whether TensorBoard event files can be written (TF 2.21 does not install it)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return True
    warnings.warn(
        "TensorBoard logs are skipped: the `tensorboard` package is not installed "
        f"(install it with: {TENSORBOARD_INSTALL_HINT}). The CSV log is written.",
        UserWarning,
        stacklevel=3,
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


def _fit_verbose():
    return 1 if sys.stdout.isatty() else 2


def _size_text(num_bytes):
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 2**20 else f"{num_bytes / 2**20:.2f} MiB"


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
    import importlib.util

    from mnv3_layers.latency import measure_latency
    from mnv3_layers.quantization import evaluate_tflite, export_tflite

    results = {}
    if not config.export:
        return results
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
    for kind in config.export:
        path = os.path.join(out, f"model_{kind}.tflite")
        if kind == "int8" and qat_model is not None:
            export_tflite(qat_model, path, quantization="int8")
            source = "QAT model"
        elif kind == "int8":
            if representative is None:
                representative = np.stack([np.asarray(x) for x, _ in data.representative])
            export_tflite(model, path, quantization="int8", representative_data=representative)
            source = f"post-training quantization, {len(representative)} calibration images"
        else:
            export_tflite(model, path, quantization=None if kind == "float" else "dynamic")
            source = "float model"
        entry = {"path": path, "bytes": os.path.getsize(path), "source": source}
        text = f"exported {os.path.basename(path)}: {_size_text(entry['bytes'])}"
        if can_run:
            _, accuracy = evaluate_tflite(path, val_images, val_labels)
            entry["accuracy"] = float(accuracy)
            entry["accuracy_images"] = int(len(val_images))
            text += f", validation accuracy {accuracy:.3f}"
        text += f" ({source})"
        if config.latency and can_run:
            report = measure_latency(path, runtime="tflite", num_threads=1, warmup=5,
                                     runs=latency_runs)
            entry["latency_ms"] = report.median_ms
            entry["latency_p10_ms"] = report.p10_ms
            entry["latency_p90_ms"] = report.p90_ms
            text += f", latency {report.median_ms:.2f} ms (batch 1, 1 thread, median)"
        results[kind] = entry
        log(text)
    return results


def train(config, overwrite=False, callbacks=(), log=print):
    """Runs (or resumes) the fine-tuning run of `config`; returns its metrics.

    See the module docstring for the steps. Rerunning the same `config`
    into the same `out` folder resumes at the epoch reached; a finished run
    returns its stored metrics.

    Args:
        config: a `TrainConfig`.
        overwrite: start over: remove an earlier run (of any configuration)
            from `config.out` first; other files there are kept.
            Defaults to `False`.
        callbacks: extra Keras callbacks for every `fit`. Defaults to `()`.
        log: function that prints progress lines. Defaults to `print`.

    Returns:
        The metrics dict also written to `out/metrics.json`: validation
        `val_accuracy`/`val_loss` of the float model (inference mode),
        `qat_val_accuracy`, `exports` (path, bytes, accuracy, latency per
        TFLite file), `epochs_completed`, `resumed_from_epoch`,
        `num_replicas`, `global_batch_size`, `optimizer_iterations`,
        `seconds` (this call), ...

    Raises:
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
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"`config` must be a TrainConfig. Received: config of type {type(config).__name__}"
        )
    start_time = time.perf_counter()
    out = config.out
    strategy = make_strategy(config.distribution, config.tpu)
    chief = is_chief(strategy)
    status = prepare_output_folder(config, overwrite=overwrite, write=chief)
    metrics_path = os.path.join(out, "metrics.json")
    if status == "complete":
        log(f"{out!r} holds a finished run of this configuration; nothing to do "
            "(pass --overwrite to train again).")
        return _read_json(metrics_path)

    keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    data = load_datasets(config, num_replicas=replicas, log=log)
    if chief:
        write_json_atomic(os.path.join(out, "labels.json"), {
            "class_names": list(data.class_names),
            "image_size": config.image_size,
            "variant": config.variant,
            "alpha": config.alpha,
            "minimalistic": config.minimalistic,
        })
    if replicas > 1:
        log(f"distribution: {type(strategy).__name__} with {replicas} replicas; global batch "
            f"{data.global_batch_size} = {config.batch_size} per replica x {replicas}")

    phases = plan_phases(config)
    state = read_checkpoint_state(out)
    resumed_from = state["epoch"] if state else 0
    if state:
        log(f"resuming from the checkpoint after epoch {state['epoch']} "
            f"(phase {state['phase']!r})")
    pretrained = config.weights is not None
    if config.freeze_epochs and not pretrained:
        warnings.warn(
            "`freeze_epochs` with `weights=None` trains a classifier on a randomly "
            "initialized, frozen backbone.", UserWarning, stacklevel=2,
        )
    # Recipe values shared by every phase (model hyper-parameters).
    base = get_recipe(config.recipe, data.global_batch_size, data.steps_per_epoch,
                      pretrained, config.learning_rate, config.bn_momentum,
                      config.dropout_rate)
    log_dir = os.path.join(out, LOG_DIR)
    csv_path = os.path.join(log_dir, CSV_LOG)
    if chief:
        os.makedirs(log_dir, exist_ok=True)
        _truncate_csv_log(csv_path, resumed_from)

    with strategy.scope():
        model = build_classifier(
            config.variant, len(data.class_names), config.image_size, alpha=config.alpha,
            minimalistic=config.minimalistic,
            # A checkpoint holds every weight: do not fetch the pretrained ones again.
            weights=None if state else config.weights,
            dropout_rate=base.dropout_rate, bn_momentum=base.bn_momentum,
        )
        apply_l2(model, base.l2)
    log(f"model: MobileNetV3{config.variant.capitalize()} alpha={config.alpha}"
        f"{' minimalistic' if config.minimalistic else ''}, {model.count_params():,} "
        f"parameters, weights={config.weights or 'none'}, recipe={config.recipe}")

    checkpoint_dir = os.path.join(out, CHECKPOINT_DIR)
    phase_names = [p.name for p in phases]
    state_index = phase_names.index(state["phase"]) if state else -1
    float_model_path = os.path.join(out, "model.keras")
    qat_model = None
    float_metrics = None
    current = model
    for index, phase in enumerate(phases):
        if index < state_index:
            continue  # finished before the checkpoint; its weights are in the checkpoint
        if phase.qat and float_metrics is None:
            if index == state_index:
                # Resuming inside QAT: the float model was saved before QAT began.
                with strategy.scope():
                    model = keras.models.load_model(float_model_path, compile=False)
                _compile(model, "adam", config.run_eagerly)
                float_metrics = _finish_float(model, data, float_model_path, False, log)
            else:
                float_metrics = _finish_float(model, data, float_model_path, chief, log)
        phase_steps = data.steps_per_epoch * (phase.end - phase.start)
        recipe = get_recipe(config.recipe, data.global_batch_size, phase_steps, pretrained,
                            config.learning_rate, config.bn_momentum, config.dropout_rate)
        with strategy.scope():
            if phase.qat:
                from mnv3_layers.quantization import quantize_model

                current = quantize_model(model, engine="keras",
                                         hard_swish=config.qat_hard_swish)
            else:
                set_backbone_trainable(model, phase.train_backbone)
            optimizer = make_optimizer(recipe, recipe.learning_rate * phase.lr_factor,
                                       phase_steps)
            _compile(current, optimizer, config.run_eagerly)
            initial_epoch = phase.start
            if index == state_index:
                optimizer.build(current.trainable_variables)
                current.load_weights(state["weights"])
                initial_epoch = state["epoch"]
        if phase.qat:
            qat_model = current
        if initial_epoch >= phase.end:
            if recipe.ema_momentum is not None:
                # As at the end of `fit`: the averaged weights become the weights.
                optimizer.finalize_variable_values(current.trainable_variables)
            continue
        trainable = sum(int(np.prod(v.shape)) for v in current.trainable_variables)
        log(f"phase {phase.name!r}: epochs {initial_epoch + 1}-{phase.end} of "
            f"{phases[-1].end}, {trainable:,} trainable parameters, "
            f"{recipe.optimizer} lr {recipe.learning_rate * phase.lr_factor:.3g} "
            f"({recipe.schedule} schedule"
            f"{', warmup' if recipe.warmup_fraction else ''})")
        fit_callbacks = []
        if config.latency:
            from mnv3_layers.callbacks import LatencyCallback

            fit_callbacks.append(LatencyCallback(every_n_epochs=1, runs=10))
        if chief:
            fit_callbacks.append(keras.callbacks.CSVLogger(csv_path, append=True))
        fit_callbacks.append(EpochCheckpoint(checkpoint_dir, phase.name, write=chief))
        if chief and _tensorboard_available():
            fit_callbacks.append(keras.callbacks.TensorBoard(
                os.path.join(log_dir, "tensorboard"), write_graph=False, profile_batch=0,
            ))
        if recipe.ema_momentum is not None:
            # Validate with the averaged weights; the checkpoint (before it in
            # the list) saves the raw ones.
            fit_callbacks.append(keras.callbacks.SwapEMAWeights())
        fit_callbacks.extend(callbacks or ())
        with warnings.catch_warnings():
            # The per-epoch Keras latency runs on TensorFlow's training thread
            # pools (they cannot change once training runs); the exported
            # TFLite files are measured single-threaded.
            warnings.filterwarnings("ignore", message="num_threads=1 was not applied",
                                    category=RuntimeWarning)
            current.fit(
                data.train,
                validation_data=data.val,
                epochs=phase.end,
                initial_epoch=initial_epoch,
                callbacks=fit_callbacks,
                shuffle=False,  # the dataset is shuffled (or not) by `load_datasets`
                verbose=_fit_verbose(),
            )

    if float_metrics is None:
        float_metrics = _finish_float(model, data, float_model_path, chief, log)
    metrics = dict(float_metrics)
    if qat_model is not None:
        qat_loss, qat_accuracy = qat_model.evaluate(data.val, verbose=0)
        metrics["qat_val_accuracy"] = float(qat_accuracy)
        metrics["qat_val_loss"] = float(qat_loss)
        log(f"QAT model: validation accuracy {qat_accuracy:.3f}")
        if chief:
            save_model_atomic(qat_model, os.path.join(out, "model_qat.keras"))
    exports = export_and_measure(model, qat_model, config, data, out, log) if chief else {}
    history = read_training_log(csv_path)
    last = {k: v[-1] for k, v in history.items() if v and k != "epoch"}
    metrics.update({
        "train_accuracy": last.get("accuracy"),
        "train_loss": last.get("loss"),
        "epochs_completed": phases[-1].end,
        "resumed_from_epoch": resumed_from,
        "class_names": list(data.class_names),
        "num_train_images": data.num_train,
        "num_val_images": data.num_val,
        "num_replicas": replicas,
        "strategy": type(strategy).__name__,
        "per_replica_batch_size": config.batch_size,
        "global_batch_size": data.global_batch_size,
        "optimizer_iterations": int(keras.ops.convert_to_numpy(current.optimizer.iterations)),
        "exports": exports,
        "seconds": round(time.perf_counter() - start_time, 1),
    })
    if config.latency and "latency_ms" in history:
        measured = [v for v in history["latency_ms"] if not math.isnan(v)]
        if measured:
            metrics["keras_latency_ms_last_epoch"] = measured[-1]
    if chief:
        metrics["plots"] = plot_training_curves(csv_path, out)
        write_json_atomic(metrics_path, metrics)
        # The run is complete: the final model is in model.keras.
        if os.path.isdir(checkpoint_dir):
            shutil.rmtree(checkpoint_dir)
    return metrics


def _finish_float(model, data, path, chief, log):
    """Evaluates the float model in inference mode and saves `model.keras`."""
    loss, accuracy = model.evaluate(data.val, verbose=0)
    log(f"validation accuracy (float model, inference mode): {accuracy:.3f} "
        f"(loss {loss:.3f}, chance {1 / len(data.class_names):.3f})")
    if chief:
        save_model_atomic(model, path)
    return {"val_accuracy": float(accuracy), "val_loss": float(loss),
            "model": os.path.abspath(path)}
