"""Random weights for whole models, shared by the parity and weights-file tests."""

import numpy as np


def randomize_weights(model, rng):
    """Sets every weight of `model` (Keras 3 or tf_keras) to random values.

    Kernels are He-normal, BN gamma in [0.5, 1], moving variance in [1, 2],
    biases, betas and moving means N(0, 0.2): activations stay O(1) through
    the whole network (wider ranges let them grow to ~100, where float32
    rounding alone reaches 1e-4), so an absolute tolerance is meaningful.
    """
    for layer in model.layers:
        depthwise = "Depthwise" in type(layer).__name__
        values = []
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            shape = tuple(weight.shape)
            if name in ("kernel", "depthwise_kernel"):
                fan_in = shape[0] * shape[1] * (1 if depthwise else shape[2])
                value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            elif name == "moving_variance":
                value = rng.uniform(1.0, 2.0, shape)
            elif name == "gamma":
                value = rng.uniform(0.5, 1.0, shape)
            else:
                value = rng.normal(0.0, 0.2, shape)
            values.append(value.astype("float32"))
        if values:
            layer.set_weights(values)
