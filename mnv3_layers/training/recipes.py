"""Training recipes (optimizer, schedule, regularization) and the classifier they train."""

import dataclasses

import keras

from mnv3_layers._validation import check_choice, check_positive_int
from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.training.config import (
    HEAD_LAYERS,
    PAPER_BASE_BATCH,
    PAPER_BASE_LEARNING_RATE,
    PAPER_DECAY_RATE,
    PAPER_EMA_MOMENTUM,
    PAPER_L2,
    PAPER_NUM_DECAYS,
    RECIPES,
)

# === Recipes ===


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Optimizer and regularization settings of a run (from `get_recipe`).

    `schedule`: `"cosine"` (to 5 % of the peak) or `"step"` (staircase);
    `l2` 0 and `ema_momentum` `None` mean none.
    """

    name: str
    optimizer: str
    learning_rate: float
    schedule: str
    bn_momentum: float
    dropout_rate: float
    l2: float = 0.0
    ema_momentum: float = None
    warmup_fraction: float = 0.0


def get_recipe(name, global_batch_size, total_steps, pretrained, learning_rate=None,
               bn_momentum=None, dropout_rate=None):
    """Resolves a recipe name into a `Recipe` for a run.

    - `"default"`: Adam, 10 % linear warmup, cosine decay to 5 %; peak rate
      3e-3 (1e-3 pretrained), batch-norm momentum 0.9 (0.99 pretrained),
      dropout 0.2.
    - `"sgd"`: SGD with momentum 0.9, peak rate 0.01, otherwise `"default"`.
    - `"paper"` (section 6.1): RMSProp (rho 0.9, momentum 0.9, epsilon
      0.002), rate 0.1 per 4096 images of global batch, 100 staircase decays
      of x0.99, weight EMA 0.9999 (at most `1 - 10 / total_steps`),
      batch-norm momentum 0.99, L2 1e-5 (`apply_l2`), dropout 0.2.

    Why these values: `benchmarks/README.md`, "Training recipes".

    Args:
        name: `"default"`, `"sgd"` or `"paper"`.
        global_batch_size: images per step over all replicas.
        total_steps: optimizer steps of the phase the recipe schedules.
        pretrained: whether the backbone starts from trained weights.
        learning_rate, bn_momentum, dropout_rate: overrides, or `None`.

    Returns:
        A `Recipe`.

    Example:

    >>> from mnv3_layers.training import get_recipe
    >>> recipe = get_recipe("paper", global_batch_size=256, total_steps=5000,
    ...                     pretrained=False)
    >>> recipe.optimizer, recipe.learning_rate, recipe.ema_momentum, recipe.l2
    ('rmsprop', 0.00625, 0.998, 1e-05)
    """
    check_choice("recipe", name, RECIPES)
    check_positive_int("global_batch_size", global_batch_size)
    check_positive_int("total_steps", total_steps)
    if name == "paper":
        recipe = Recipe(
            name="paper",
            optimizer="rmsprop",
            learning_rate=PAPER_BASE_LEARNING_RATE * global_batch_size / PAPER_BASE_BATCH,
            schedule="step",
            bn_momentum=0.99,
            dropout_rate=0.2,
            l2=PAPER_L2,
            ema_momentum=min(PAPER_EMA_MOMENTUM, max(0.0, 1.0 - 10.0 / total_steps)),
        )
    else:
        recipe = Recipe(
            name=name,
            optimizer="adam" if name == "default" else "sgd",
            learning_rate=(1e-3 if pretrained else 3e-3) if name == "default" else 0.01,
            schedule="cosine",
            bn_momentum=0.99 if pretrained else 0.9,
            dropout_rate=0.2,
            warmup_fraction=0.1,
        )
    overrides = {}
    if learning_rate is not None:
        overrides["learning_rate"] = float(learning_rate)
    if bn_momentum is not None:
        overrides["bn_momentum"] = float(bn_momentum)
    if dropout_rate is not None:
        overrides["dropout_rate"] = float(dropout_rate)
    return dataclasses.replace(recipe, **overrides)


def make_optimizer(recipe, learning_rate, total_steps):
    """Builds the Keras optimizer of `recipe` with its schedule over `total_steps`.

    `learning_rate` is the peak rate (after the warmup, if any).
    """
    total_steps = check_positive_int("total_steps", total_steps)
    warmup = int(total_steps * recipe.warmup_fraction)
    if recipe.schedule == "cosine" and warmup:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total_steps - warmup), alpha=0.05,
            warmup_target=learning_rate, warmup_steps=warmup,
        )
    elif recipe.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps, alpha=0.05
        )
    else:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            learning_rate,
            decay_steps=max(1, total_steps // PAPER_NUM_DECAYS),
            decay_rate=PAPER_DECAY_RATE,
            staircase=True,
        )
    ema = {}
    if recipe.ema_momentum is not None:
        ema = {"use_ema": True, "ema_momentum": recipe.ema_momentum}
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, **ema)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, **ema)
    return keras.optimizers.RMSprop(schedule, rho=0.9, momentum=0.9, epsilon=0.002, **ema)


# === Model ===


def _walk_layers(layer, seen=None):
    """Yields `layer` and every layer nested in it (attributes and `.layers`)."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    children = list(getattr(layer, "layers", []) or [])
    children += [v for v in vars(layer).values() if isinstance(v, keras.layers.Layer)]
    for child in children:
        yield from _walk_layers(child, seen)


def apply_l2(model, l2):
    """Adds an L2 penalty `l2 * sum(w**2)` on convolution and classifier kernels.

    Depthwise kernels, biases and batch norms are left out (as in TF-slim);
    returns the number of kernels regularized.
    """
    if not l2:
        return 0
    regularizer = keras.regularizers.L2(l2)
    count = 0
    for layer in _walk_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
            layer, keras.layers.DepthwiseConv2D
        ):
            layer.kernel.regularizer = regularizer
            count += 1
    return count


def set_backbone_trainable(model, trainable):
    """Freezes (`False`) or unfreezes (`True`) everything but the classifier head.

    The head is the pooled part of `last_stage` and `logits`; frozen batch
    norms run in inference mode. Recompile the model after calling.
    """
    for layer in model.layers:
        if layer.name in HEAD_LAYERS:
            layer.trainable = True
        elif isinstance(layer, EfficientLastStage):
            layer.trainable = True
            layer.conv.trainable = trainable
            layer.conv_bn.trainable = trainable
        else:
            layer.trainable = trainable


def build_classifier(variant, num_classes, image_size, alpha=1.0, minimalistic=False,
                     weights=None, dropout_rate=0.2, bn_momentum=0.99):
    """A MobileNetV3 classifier for `num_classes`, optionally with a pretrained backbone.

    `mnv3_layers.applications.build_classifier(..., head="applications")` on a
    square input; `weights` fill everything up to the last-stage convolution.

    Args:
        variant: `"small"` or `"large"`.
        num_classes: classes, >= 2.
        image_size: square input size, >= 32.
        alpha, minimalistic: as in the applications.
        weights: `None`, `"imagenet"` or a weights file path. Defaults to
            `None`.
        dropout_rate: dropout before the classifier. Defaults to `0.2`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        WeightsDownloadError: `"imagenet"` without network access.
        ValueError: bad arguments, or a weights file of another variant.

    Example:

    >>> from mnv3_layers.training import build_classifier
    >>> model = build_classifier("small", num_classes=5, image_size=64, alpha=0.35)
    >>> model.output_shape
    (None, 5)
    """
    from mnv3_layers.applications.classifier import build_classifier as build

    return build(variant, (image_size, image_size, 3), num_classes, head="applications",
                 alpha=alpha, minimalistic=minimalistic, weights=weights,
                 dropout_rate=dropout_rate, bn_momentum=bn_momentum)
