"""`tf.distribute` strategies for a run (mirrored, multi-worker, TPU)."""

import json
import os

from mnv3_layers._validation import check_choice
from mnv3_layers.training.config import DISTRIBUTIONS

# === Distribution ===


def make_strategy(distribution="none", tpu=None):
    """The `tf.distribute` strategy for `distribution`.

    `"none"`: the default strategy; `"mirrored"`: over the local GPUs, else
    every logical CPU; `"multiworker"`: cluster from `TF_CONFIG` (same command
    on every worker); `"tpu"`: on `tpu` (`""`/`None`: local or from the
    environment).

    Raises:
        ValueError: an unknown `distribution`, or `"multiworker"` without a
            valid `TF_CONFIG`.
    """
    import tensorflow as tf

    distribution = "none" if distribution is None else distribution
    check_choice("distribution", distribution, DISTRIBUTIONS)
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if distribution == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        try:
            tf_config = json.loads(raw) if raw else None
        except ValueError:
            tf_config = None
        if not isinstance(tf_config, dict) or "cluster" not in tf_config or "task" not in tf_config:
            raise ValueError(
                "distribution='multiworker' needs the TF_CONFIG environment variable "
                "with 'cluster' and 'task' entries, e.g. TF_CONFIG='{\"cluster\": "
                "{\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": "
                "\"worker\", \"index\": 0}}'. "
                f"Received: TF_CONFIG={raw!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's files (always, except non-chief workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type in (None, "chief"):
        return True
    if task_type == "worker":
        cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
        return "chief" not in cluster and task_id == 0
    return False
