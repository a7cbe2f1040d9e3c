"""NetAdapt-style latency-targeted width search (paper section 4.2).

`netadapt_search` drives a `NetAdaptRun` (`start`, `iterate`, `verify`,
`finish`) whose `SearchState` is `state.json`, so a rerun resumes. Output
folder: `architecture.json`, `model.keras`, `search_log.jsonl`, `result.json`,
`state.json` + `*.weights.h5`. Measured searches: `benchmarks/README.md`.

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section
4.2; Yang et al., "NetAdapt", ECCV 2018.
"""

import contextlib
import dataclasses
import gc
import json
import math
import numbers
import os
import time
import warnings

from mnv3_layers._validation import (
    check_choice,
    check_finite_positive,
    check_fraction,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)
from mnv3_layers.datasets.intake import ClassificationData
from mnv3_layers.files import save_model_atomic, save_weights_atomic, write_json_atomic
from mnv3_layers.latency.table import LatencyTable
from mnv3_layers.search.inherit import inherit_weights
from mnv3_layers.search.results import SearchLog, SearchResult, json_default
from mnv3_layers.search.sizing import CalibratedLatency, size_proposal
from mnv3_layers.search.space import (
    PROPOSAL_KINDS,
    architecture_from_dict,
    architecture_to_dict,
    channel_structure,
    enumerate_proposals,
    flatten_architecture,
    minimal_architecture,
    proposal_width,
)

STATE_VERSION = 1
STATE_FILE = "state.json"
LOG_FILE = "search_log.jsonl"
ARCHITECTURE_FILE = "architecture.json"
MODEL_FILE = "model.keras"
RESULT_FILE = "result.json"
START_WEIGHTS = "start.weights.h5"


class SearchInterrupted(Exception):
    """Raise from `on_iteration_end` to stop a search; rerun to continue it."""


def build_classifier(spec, input_shape, num_classes, bn_momentum=0.9, dropout_rate=0.0,
                     name="netadapt_classifier"):
    """`mnv3_layers.applications.build_classifier(spec, ..., head="dense")` at the search's defaults.

    Args:
        spec: an `ArchitectureSpec` (or its dict form), used at alpha 1.0.
        input_shape: `(height, width, channels)`.
        num_classes: classifier width.
        bn_momentum: batch-norm momentum (short fine-tunes). Defaults to `0.9`.
        dropout_rate: dropout before the classifier. Defaults to `0.0`.
        name: model name. Defaults to `"netadapt_classifier"`.

    Returns:
        A functional `keras.Model` (inputs in [0, 255]).
    """
    from mnv3_layers.applications.classifier import build_classifier as build

    return build(spec, input_shape, num_classes, head="dense", bn_momentum=bn_momentum,
                 dropout_rate=dropout_rate, name=name)


# === Arguments and state ===


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """The checked scalar arguments of `netadapt_search` (see there)."""

    target_ms: object
    target_ratio: object
    delta_ratio: float
    finetune_steps: int
    final_finetune_steps: int
    pretrain_steps: int
    batch_size: int
    learning_rate: float
    bn_momentum: float
    proposal_kinds: tuple
    max_iterations: int
    calibrate: bool
    latency_tolerance: float
    run_eagerly: object
    seed: int
    verbose: int
    start_weights: object = None


def _check_target(target_ms, target_ratio):
    if (target_ms is None) == (target_ratio is None):
        raise ValueError(
            "Pass exactly one of `target_ms` (milliseconds) and `target_ratio` (fraction "
            "of the starting model's latency). "
            f"Received: target_ms={target_ms!r}, target_ratio={target_ratio!r}"
        )
    name, value = ("target_ms", target_ms) if target_ms is not None else (
        "target_ratio", target_ratio)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not (
        math.isfinite(value)
    ):
        raise TypeError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    check_positive_number(name, value)
    if name == "target_ratio" and value >= 1:
        raise ValueError(
            "`target_ratio` must be in (0, 1): a fraction of the starting model's "
            f"latency. Received: target_ratio={value!r}"
        )


def _check_kinds(proposal_kinds):
    kinds = tuple(proposal_kinds) if not isinstance(proposal_kinds, str) else (proposal_kinds,)
    if not kinds or any(k not in PROPOSAL_KINDS for k in kinds):
        raise ValueError(
            f"`proposal_kinds` must be a non-empty subset of {PROPOSAL_KINDS}. "
            f"Received: proposal_kinds={proposal_kinds!r}"
        )
    return kinds


def check_options(*, target_ms, target_ratio, delta_ratio, finetune_steps, final_finetune_steps,
                  pretrain_steps, batch_size, learning_rate, bn_momentum, proposal_kinds,
                  max_iterations, calibrate, latency_tolerance, run_eagerly, seed, verbose,
                  start_weights):
    """Checks the scalar arguments of `netadapt_search`; returns `SearchOptions`."""
    _check_target(target_ms, target_ratio)
    delta_ratio = check_fraction("delta_ratio", delta_ratio, allow_zero=False)
    steps = [check_non_negative_int(name, value) for name, value in (
        ("finetune_steps", finetune_steps), ("final_finetune_steps", final_finetune_steps),
        ("pretrain_steps", pretrain_steps))]
    batch_size = check_positive_int("batch_size", batch_size)
    max_iterations = check_positive_int("max_iterations", max_iterations)
    check_finite_positive("learning_rate", learning_rate)
    check_fraction("bn_momentum", bn_momentum)
    if isinstance(latency_tolerance, bool) or not isinstance(latency_tolerance, numbers.Real) or (
        latency_tolerance < 0
    ):
        raise ValueError(
            "`latency_tolerance` must be a number >= 0. "
            f"Received: latency_tolerance={latency_tolerance!r}"
        )
    kinds = _check_kinds(proposal_kinds)
    check_choice("run_eagerly", run_eagerly, (True, False, "auto"))
    if start_weights is not None and not os.path.isfile(os.fspath(start_weights)):
        raise FileNotFoundError(
            f"`start_weights` must be an existing .weights.h5 file. "
            f"Received: start_weights={start_weights!r}"
        )
    return SearchOptions(
        target_ms=target_ms, target_ratio=target_ratio, delta_ratio=delta_ratio,
        finetune_steps=steps[0], final_finetune_steps=steps[1], pretrain_steps=steps[2],
        batch_size=batch_size, learning_rate=learning_rate, bn_momentum=bn_momentum,
        proposal_kinds=kinds, max_iterations=max_iterations, calibrate=calibrate,
        latency_tolerance=latency_tolerance, run_eagerly=run_eagerly, seed=seed,
        verbose=verbose, start_weights=start_weights,
    )


def _latency_table(latency_table):
    if latency_table is None:
        return LatencyTable()
    if isinstance(latency_table, (str, os.PathLike)):
        return LatencyTable(latency_table)
    if not isinstance(latency_table, LatencyTable):
        raise TypeError(
            "`latency_table` must be a LatencyTable, a path to its file or None. "
            f"Received: latency_table of type {type(latency_table).__name__}"
        )
    return latency_table


def _num_classes(data, num_classes):
    if num_classes is None:
        num_classes = data.infer_num_classes()
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")
    return num_classes


@dataclasses.dataclass
class SearchState:
    """The resumable state of a search (`state.json`), saved after every step.

    `settings` must match on a rerun; `architecture`, `weights`, `accuracy`,
    `predicted_ms` describe the current model; `scale` is the calibration;
    `log_lines` the log lines covered; `result` is set when `phase == "done"`.
    """

    version: int = STATE_VERSION
    settings: dict = None
    phase: str = "search"
    iteration: int = 0
    architecture: dict = None
    weights: str = START_WEIGHTS
    accuracy: float = None
    predicted_ms: float = None
    scale: float = 1.0
    target_ms: float = None
    floor_ms: float = None
    start: dict = None
    history: list = dataclasses.field(default_factory=list)
    log_lines: int = 0
    result: dict = None

    def to_json(self):
        data = dataclasses.asdict(self)
        if data["result"] is None:
            del data["result"]
        return data

    @classmethod
    def load(cls, path, settings, output_dir):
        """The state in `path`, or `None`; raises ValueError if its settings differ."""
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != STATE_VERSION or data.get("settings") != json.loads(
            json.dumps(settings, default=json_default)
        ):
            raise ValueError(
                f"`output_dir` {output_dir!r} holds a search with other settings "
                f"({STATE_FILE}); use a new `output_dir` or delete it to start over. "
                f"Stored settings: {data.get('settings')!r}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# === The run ===


class NetAdaptRun:
    """One NetAdapt search in `output_dir` (made and `run()` by `netadapt_search`)."""

    def __init__(self, options, data, latency_table, start_spec, num_classes, output_dir):
        self.options = options
        self.data = data
        self.start_spec = start_spec
        self.input_shape = data.image_shape
        self.num_classes = num_classes
        self.output_dir = output_dir
        self.table = latency_table
        self.latency = CalibratedLatency(latency_table, self.input_shape, num_classes)
        self.structure = channel_structure(start_spec)
        self.settings = self._settings()
        os.makedirs(output_dir, exist_ok=True)
        self.state = SearchState.load(self.path(STATE_FILE), self.settings, output_dir)
        self.log = SearchLog(self.path(LOG_FILE), self.state.log_lines if self.state else 0)

    def _settings(self):
        o = self.options
        return {
            "start_architecture": architecture_to_dict(self.start_spec),
            "target_ms": o.target_ms, "target_ratio": o.target_ratio,
            "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "delta_ratio": o.delta_ratio, "finetune_steps": o.finetune_steps,
            "final_finetune_steps": o.final_finetune_steps,
            "pretrain_steps": o.pretrain_steps, "batch_size": o.batch_size,
            "learning_rate": float(o.learning_rate), "bn_momentum": float(o.bn_momentum),
            "proposal_kinds": list(o.proposal_kinds), "calibrate": bool(o.calibrate),
            "latency_tolerance": float(o.latency_tolerance), "seed": o.seed,
            "table_fingerprint": self.table.fingerprint, "table_clock": self.table.clock,
            "table_statistic": self.table.statistic,
        }

    # --- Helpers ---

    def path(self, name):
        return os.path.join(self.output_dir, name)

    def say(self, message):
        if self.options.verbose:
            print(message, flush=True)

    def save_state(self):
        self.state.log_lines = self.log.count
        write_json_atomic(self.path(STATE_FILE), self.state.to_json())

    def compile(self, model, proposal=False):
        import keras

        o = self.options
        eager = o.run_eagerly if o.run_eagerly != "auto" else (
            proposal and o.finetune_steps <= 20)
        one_hot = self.data.one_hot
        loss = (keras.losses.CategoricalCrossentropy() if one_hot
                else keras.losses.SparseCategoricalCrossentropy())
        metric = (keras.metrics.CategoricalAccuracy(name="accuracy") if one_hot
                  else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        model.compile(optimizer=keras.optimizers.Adam(o.learning_rate), loss=loss,
                      metrics=[metric], jit_compile=False, run_eagerly=eager)

    def train(self, model, steps, seed):
        import keras

        if steps:
            keras.utils.set_random_seed(seed)
            model.fit(self.data.training_dataset(seed), steps_per_epoch=steps, epochs=1,
                      shuffle=False, verbose=0)  # The dataset shuffles.

    def evaluate(self, model):
        return float(self.data.evaluate(model)["accuracy"])

    def build(self, spec, weights_path=None, proposal=False):
        model = build_classifier(spec, self.input_shape, self.num_classes,
                                 self.options.bn_momentum)
        if weights_path is not None:
            model.load_weights(weights_path)  # Before compiling: no optimizer state.
        self.compile(model, proposal)
        return model

    def measure_now(self, model):
        """Measured latency of `model`; with `target_ratio`, timed interleaved with the start."""
        if self.options.target_ratio is None:
            return self.latency.measure(model), {}
        reference = self.build(self.start_spec, self.path(START_WEIGHTS))
        start_now, model_now = self.latency.measure_pair(reference, model)
        del reference
        measured = self.state.start["measured_ms"] * model_now / start_now
        return measured, {"start_measured_now_ms": start_now, "measured_now_ms": model_now}

    # --- Steps ---

    def start(self):
        """Builds, calibrates and (pre-)trains the starting model; checks the target."""
        import keras

        o, spec = self.options, self.start_spec
        t0 = time.perf_counter()
        keras.utils.set_random_seed(o.seed)
        model = self.build(spec, o.start_weights)
        # Latency does not depend on the weights: calibrate and check the
        # target before spending time on training.
        raw = self.latency.raw(spec)
        measured = self.latency.measure(model) if o.calibrate else None
        scale = self.latency.scale = measured / raw if o.calibrate else 1.0
        start_ms = raw * scale
        target = o.target_ms if o.target_ms is not None else o.target_ratio * start_ms
        floor_ms = self.latency(minimal_architecture(spec, o.proposal_kinds))
        if target < floor_ms:
            raise ValueError(
                f"The target {target:.4f} ms is below the smallest latency this search can "
                f"reach from {spec.name!r} at input {self.input_shape}: {floor_ms:.4f} ms "
                "(every searched width at its smallest valid multiple of 8, predicted by the "
                "latency table" + (", calibrated" if o.calibrate else "")
                + f"). Received: target_ms={o.target_ms!r}, target_ratio={o.target_ratio!r}"
            )
        self.train(model, o.pretrain_steps, o.seed)
        accuracy = self.evaluate(model)
        save_weights_atomic(model, self.path(START_WEIGHTS))
        start = {"accuracy": accuracy, "measured_ms": measured, "predicted_ms": start_ms,
                 "raw_predicted_ms": raw}
        architecture = architecture_to_dict(spec)
        self.log.write({"event": "start", "iteration": 0, **start, "target_ms": target,
                        "floor_ms": floor_ms, "scale": scale, "architecture": architecture,
                        "seconds": time.perf_counter() - t0})
        self.state = SearchState(
            settings=self.settings, architecture=architecture, accuracy=accuracy,
            predicted_ms=start_ms, scale=scale, target_ms=target, floor_ms=floor_ms,
            start=start,
        )
        self.save_state()
        self.say(f"start: {spec.name}, accuracy {accuracy:.4f}, latency "
                 f"{start_ms:.3f} ms ({'measured' if o.calibrate else 'predicted'}), target "
                 f"{target:.3f} ms, floor {floor_ms:.3f} ms")

    def verify(self, spec, current_ms):
        """Measures the current model; True if it meets the target, else recalibrates."""
        model = self.build(spec, self.path(self.state.weights))
        measured, detail = self.measure_now(model)
        del model
        target = self.state.target_ms
        self.log.write({"event": "verify", "iteration": self.state.iteration,
                        "predicted_ms": current_ms, "measured_ms": measured,
                        "target_ms": target, **detail})
        self.say(f"verify: predicted {current_ms:.3f} ms, measured {measured:.3f} ms, "
                 f"target {target:.3f} ms")
        if measured <= target * (1 + self.options.latency_tolerance):
            return True
        self.state.scale = self.latency.scale = self.latency.scale * measured / current_ms
        self.save_state()
        return False

    def evaluate_proposals(self, spec, current_ms, required, iteration):
        """Sizes, fine-tunes and scores every proposal: `((record, model, spec) or None, count)`."""
        parent = self.build(spec, self.path(self.state.weights))
        best, evaluated = None, 0
        for p_index, proposal in enumerate(enumerate_proposals(spec, self.options.proposal_kinds)):
            sized, _ = size_proposal(spec, proposal, self.latency, current_ms, required,
                                     self.structure)
            if sized is None:
                self.log.write({"event": "proposal", "iteration": iteration,
                                "proposal": proposal.name, "feasible": False})
                continue
            width, new_spec, new_ms = sized
            child = build_classifier(new_spec, self.input_shape, self.num_classes,
                                     self.options.bn_momentum)
            inherit_weights(parent, child, spec, new_spec)
            self.compile(child, proposal=True)
            self.train(child, self.options.finetune_steps,
                       self.options.seed + 1000 * iteration + p_index)
            accuracy = self.evaluate(child)
            evaluated += 1
            score = (accuracy - self.state.accuracy) / max(current_ms - new_ms, 1e-9)
            record = {
                "event": "proposal", "iteration": iteration, "proposal": proposal.name,
                "feasible": True, "from": proposal_width(spec, proposal), "to": width,
                "predicted_ms": new_ms, "accuracy": accuracy, "score": score,
            }
            self.log.write(record)
            self.say(f"  iteration {iteration} {proposal.name}: {record['from']} -> {width}, "
                     f"{new_ms:.3f} ms, accuracy {accuracy:.4f}, score {score:+.4f}")
            if best is None or score > best[0]["score"]:
                best = (record, child, new_spec)
            del child
            gc.collect()
        return best, evaluated

    def iterate(self, spec, current_ms):
        """One NetAdapt iteration; returns its log record, or `None` if no proposal fits."""
        state, iteration = self.state, self.state.iteration + 1
        t0 = time.perf_counter()
        required = max(min(self.options.delta_ratio * current_ms,
                           current_ms - state.target_ms), 1e-9)
        best, evaluated = self.evaluate_proposals(spec, current_ms, required, iteration)
        if best is None:
            warnings.warn(
                f"No proposal can cut {required:.4f} ms from {current_ms:.3f} ms; the search "
                f"stops above the target {state.target_ms:.3f} ms.", RuntimeWarning,
                stacklevel=5,
            )
            return None
        record, child, new_spec = best
        weights_name = f"iteration_{iteration}.weights.h5"
        save_weights_atomic(child, self.path(weights_name))
        del child, best
        previous_weights = state.weights
        summary = {
            "event": "iteration", "iteration": iteration, "chosen": record["proposal"],
            "from": record["from"], "to": record["to"],
            "predicted_ms": record["predicted_ms"], "accuracy": record["accuracy"],
            "previous_ms": current_ms, "previous_accuracy": state.accuracy,
            "proposals_evaluated": evaluated, "seconds": time.perf_counter() - t0,
            "architecture": architecture_to_dict(new_spec),
        }
        self.log.write(summary)
        state.iteration, state.architecture = iteration, summary["architecture"]
        state.weights, state.accuracy = weights_name, record["accuracy"]
        state.predicted_ms = record["predicted_ms"]
        state.history.append({k: v for k, v in summary.items() if k != "architecture"})
        self.save_state()
        if previous_weights != START_WEIGHTS:
            with contextlib.suppress(OSError):
                os.remove(self.path(previous_weights))
        self.say(f"iteration {iteration}: {record['proposal']} {record['from']} -> "
                 f"{record['to']}, {current_ms:.3f} -> {record['predicted_ms']:.3f} ms, "
                 f"accuracy {record['accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)")
        gc.collect()
        return summary

    def search(self, on_iteration_end=None):
        """Iterates until the target is met (and verified), or the search must stop."""
        while self.state.phase == "search":
            spec = architecture_from_dict(self.state.architecture)
            current_ms = self.latency(spec)
            if current_ms <= self.state.target_ms:
                if not self.options.calibrate or self.verify(spec, current_ms):
                    return
                continue
            if self.state.iteration >= self.options.max_iterations:
                warnings.warn(
                    f"The search stopped after max_iterations={self.options.max_iterations} "
                    f"iterations at {current_ms:.3f} ms, above the target "
                    f"{self.state.target_ms:.3f} ms.", RuntimeWarning, stacklevel=4,
                )
                return
            summary = self.iterate(spec, current_ms)
            if summary is None:
                return
            if on_iteration_end is not None:
                on_iteration_end(dict(summary))

    def finish(self):
        """Final fine-tune, measurement and output files; returns the model."""
        o, state = self.options, self.state
        spec = architecture_from_dict(state.architecture)
        model = self.build(spec, self.path(state.weights))
        self.train(model, o.final_finetune_steps, o.seed + 7)
        final_accuracy = self.evaluate(model)
        final_predicted = self.latency(spec)
        final_measured, detail = self.measure_now(model) if o.calibrate else (None, {})
        reached = (final_predicted <= state.target_ms) if not o.calibrate else (
            final_measured <= state.target_ms * (1 + o.latency_tolerance))
        write_json_atomic(self.path(ARCHITECTURE_FILE), architecture_to_dict(spec))
        save_model_atomic(model, self.path(MODEL_FILE))
        fields = {
            "target_ms": state.target_ms, "floor_ms": state.floor_ms,
            "start_latency_ms": state.start["measured_ms"], "final_latency_ms": final_measured,
            "start_predicted_ms": state.start["predicted_ms"],
            "final_predicted_ms": final_predicted, "start_accuracy": state.start["accuracy"],
            "search_accuracy": state.accuracy, "final_accuracy": final_accuracy,
            "iterations": state.iteration, "reached": bool(reached),
        }
        self.log.write({"event": "final", "iteration": state.iteration, **fields, **detail})
        write_json_atomic(self.path(RESULT_FILE), {
            **fields, "architecture": architecture_to_dict(spec), "history": state.history,
        })
        state.phase, state.result = "done", fields
        self.save_state()
        self.say(f"final: accuracy {state.accuracy:.4f} -> {final_accuracy:.4f} after "
                 f"{o.final_finetune_steps} steps; latency {final_predicted:.3f} ms predicted"
                 + (f", {final_measured:.3f} ms measured" if o.calibrate else ""))
        return model

    def run(self, on_iteration_end=None):
        """Runs (or resumes) the whole search; returns a `SearchResult`."""
        import keras

        if self.state is None:
            self.start()
        self.latency.scale = self.state.scale
        self.search(on_iteration_end)
        if self.state.phase != "done":
            model = self.finish()
        else:
            model = keras.saving.load_model(self.path(MODEL_FILE), compile=False)
        return SearchResult(
            spec=architecture_from_dict(self.state.architecture), model=model,
            output_dir=self.output_dir, architecture_path=self.path(ARCHITECTURE_FILE),
            model_path=self.path(MODEL_FILE), log_path=self.path(LOG_FILE),
            history=list(self.state.history), **self.state.result,
        )


def netadapt_search(
    train_data,
    output_dir,
    *,
    target_ms=None,
    target_ratio=None,
    validation_data=None,
    validation_split=0.2,
    variant="small",
    alpha=1.0,
    minimalistic=False,
    num_classes=None,
    latency_table=None,
    delta_ratio=0.05,
    finetune_steps=50,
    final_finetune_steps=200,
    pretrain_steps=0,
    start_weights=None,
    batch_size=32,
    learning_rate=1e-3,
    bn_momentum=0.9,
    proposal_kinds=PROPOSAL_KINDS,
    max_iterations=50,
    calibrate=True,
    latency_tolerance=0.02,
    run_eagerly="auto",
    seed=0,
    on_iteration_end=None,
    verbose=1,
):
    """Shrinks a MobileNetV3's widths until it meets a latency target on this CPU.

    Until the calibrated latency table meets the target, each proposal is
    sized to the largest width cutting `min(delta_ratio x current, current -
    target)`, inherits the weights, is fine-tuned; the best
    `(acc - acc_current) / (latency_current - latency)` becomes current.

    Args:
        train_data: `(images, labels)` arrays (images `(N, H, W, C)` in
            [0, 255], integer labels or one-hot) or a `tf.data.Dataset` of
            such batches.
        output_dir: folder for the results and the resumable state (rerun
            with the same settings to continue).
        target_ms: latency target in milliseconds (the table's clock and
            statistic). Pass this or `target_ratio`.
        target_ratio: target as a fraction in (0, 1) of the starting
            model's latency (measured when `calibrate`, else predicted).
        validation_data: held-out data in the same form, used to rank
            proposals. Required for datasets. Defaults to `None`: the last
            `validation_split` of the `train_data` arrays.
        validation_split: see above. Defaults to `0.2`.
        variant: starting table: `"large"`, `"small"`, an `ArchitectureSpec`
            or its dict form (e.g. an `architecture.json`). Defaults to `"small"`.
        alpha, minimalistic: applied to `variant` once
            (`flatten_architecture`). Defaults to `1.0`, `False`.
        num_classes: classifier width. Defaults to `None`: from the labels.
        latency_table: a `LatencyTable`, a path to its cache file, or `None`
            (`LatencyTable()`; for inputs <= ~96 px use `cache="warm"`).
        delta_ratio: each iteration cuts at least this fraction of the
            current latency. Defaults to `0.05`.
        finetune_steps: training steps per proposal. Defaults to `50`.
        final_finetune_steps: training steps of the result. Defaults to `200`.
        pretrain_steps: training steps of the starting model. Defaults to `0`.
        start_weights: a `.weights.h5` file of `build_classifier(starting
            spec, ...)` to start from. Defaults to `None`.
        batch_size: batch size for array data. Defaults to `32`.
        learning_rate: Adam learning rate of every fine-tune. Defaults to `1e-3`.
        bn_momentum: batch-norm momentum of the models. Defaults to `0.9`.
        proposal_kinds: subset of `("expansion", "bottleneck")`.
            Defaults to both.
        max_iterations: stop after this many iterations. Defaults to `50`.
        calibrate: scale the table to the measured starting model and verify
            the result end to end. Defaults to `True`.
        latency_tolerance: measured latency may exceed the target by this
            fraction. Defaults to `0.02`.
        run_eagerly: `True`, `False`, or `"auto"` (proposals eager when
            `finetune_steps <= 20`). Defaults to `"auto"`.
        seed: random seed. Defaults to `0`.
        on_iteration_end: callable receiving each iteration's record; raising
            (`SearchInterrupted`) stops the search. Defaults to `None`.
        verbose: 0 (silent) or 1 (one line per proposal and iteration).
            Defaults to `1`.

    Returns:
        A `SearchResult`.

    Raises:
        ValueError: bad arguments or data, a target below the reachable
            floor, an `output_dir` holding a search with other settings.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_classification
    >>> from mnv3_layers.latency_table import LatencyTable
    >>> from mnv3_layers.search import netadapt_search
    >>> data = make_shapes_classification(600, image_size=64)
    >>> result = netadapt_search(  # doctest: +SKIP
    ...     data, "out/search", target_ratio=0.8, variant="small", alpha=0.75,
    ...     latency_table=LatencyTable("out/latency_table.json"), pretrain_steps=300)
    >>> print(result)  # doctest: +SKIP
    NetAdapt search (4 iterations, target 1.9 ms, reached): latency 2.4 ms -> 1.9 ms ...
    """
    options = dict(
        target_ms=target_ms, target_ratio=target_ratio, delta_ratio=delta_ratio,
        finetune_steps=finetune_steps, final_finetune_steps=final_finetune_steps,
        pretrain_steps=pretrain_steps, batch_size=batch_size, learning_rate=learning_rate,
        bn_momentum=bn_momentum, proposal_kinds=proposal_kinds, max_iterations=max_iterations,
        calibrate=calibrate, latency_tolerance=latency_tolerance, run_eagerly=run_eagerly,
        seed=seed, verbose=verbose, start_weights=start_weights,
    )
    options = check_options(**options)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(
            "`output_dir` must be a folder path. "
            f"Received: output_dir of type {type(output_dir).__name__}"
        )
    if on_iteration_end is not None and not callable(on_iteration_end):
        raise TypeError("`on_iteration_end` must be callable or None.")
    start_spec = flatten_architecture(variant, alpha, minimalistic)
    latency_table = _latency_table(latency_table)
    data = ClassificationData.from_inputs(train_data, validation_data, validation_split,
                                          options.batch_size)
    if len(data.image_shape) != 3 or any(d is None for d in data.image_shape):
        raise ValueError(
            "The images must have a known (height, width, channels) shape. "
            f"Received: image shape {data.image_shape}"
        )
    num_classes = _num_classes(data, num_classes)
    run = NetAdaptRun(options, data, latency_table, start_spec, num_classes,
                      os.fspath(output_dir))
    return run.run(on_iteration_end)
