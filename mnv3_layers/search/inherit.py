"""Weight inheritance between two search models (NetAdapt's filter pruning)."""

import numpy as np

from mnv3_layers.architecture.block_spec import block_name, get_architecture
from mnv3_layers.architecture.resolve import resolve_architecture
from mnv3_layers.search.space import channel_structure, bottleneck_groups


def _bn_axes(layer, space):
    return [(v, [space]) for v in layer.weights]


def _conv_axes(layer, kernel_axes, bias_space=None):
    pairs = [(layer.kernel, kernel_axes)]
    if getattr(layer, "bias", None) is not None:
        pairs.append((layer.bias, [bias_space]))
    return pairs


def _variable_axes(model, spec):
    """Every variable of a `build_classifier` model with the channel space of each axis."""
    arch = resolve_architecture(spec)
    group_of = {}
    for g, tensors in enumerate(bottleneck_groups(spec)):
        for t in tensors:
            group_of[t] = f"g{g}"
    backbone = model.get_layer("backbone")
    stem = group_of[0]
    pairs = _conv_axes(backbone.get_layer("conv"), [None, None, None, stem])
    pairs += _bn_axes(backbone.get_layer("conv_bn"), stem)
    for block in arch.blocks:
        layer = backbone.get_layer(block_name(block.index))
        space_in, space_out = group_of[block.index], group_of[block.index + 1]
        exp = f"e{block.index}" if block.has_expand else space_in
        if layer.expand is not None:
            pairs += _conv_axes(layer.expand, [None, None, space_in, exp])
            pairs += _bn_axes(layer.expand_bn, exp)
        pairs += _conv_axes(layer.depthwise, [None, None, exp, None])
        pairs += _bn_axes(layer.depthwise_bn, exp)
        if layer.squeeze_excite is not None:
            se = f"s{block.index}"
            pairs += _conv_axes(layer.squeeze_excite.reduce, [None, None, exp, se], se)
            pairs += _conv_axes(layer.squeeze_excite.expand, [None, None, se, exp], exp)
        pairs += _conv_axes(layer.project, [None, None, exp, space_out])
        pairs += _bn_axes(layer.project_bn, space_out)
    last_stage = backbone.get_layer("last_stage")
    last_in = group_of[len(arch.blocks)]
    pairs += _conv_axes(last_stage.conv, [None, None, last_in, "last"])
    pairs += _bn_axes(last_stage.conv_bn, "last")
    pairs += _conv_axes(model.get_layer("classifier"), ["last", None], None)
    return pairs


def inherit_weights(parent, child, parent_spec, child_spec):
    """Copies `parent`'s weights into the narrower `child` (NetAdapt-style pruning).

    Both are `build_classifier` models with the same structure (same
    expand convolutions and residuals). For each channel space (a
    bottleneck group, a block's expanded width, its SE squeeze width, the
    last stage), the channels kept are those with the largest L2 norm of the
    parent's kernels along that channel (normalized per kernel and summed
    over every kernel touching it), in their original order; every variable
    is sliced along each axis accordingly.

    Raises:
        ValueError: the two models do not have the same structure or a child
            space is wider than the parent's.
    """
    parent_spec, child_spec = get_architecture(parent_spec), get_architecture(child_spec)
    if channel_structure(parent_spec) != channel_structure(child_spec):
        raise ValueError(
            "`parent_spec` and `child_spec` must have the same expand convolutions and "
            "residual connections to inherit weights."
        )
    parent_pairs = _variable_axes(parent, parent_spec)
    child_pairs = _variable_axes(child, child_spec)
    if len(parent_pairs) != len(child_pairs):
        raise ValueError("The parent and child models have different variable lists.")
    values = [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v, _ in parent_pairs]
    importance = {}
    for value, (variable, axes) in zip(values, parent_pairs):
        if value.ndim < 2:
            continue
        for axis, space in enumerate(axes):
            if space is None:
                continue
            other = tuple(a for a in range(value.ndim) if a != axis)
            norms = np.sqrt(np.sum(np.square(value.astype(np.float64)), axis=other))
            norms = norms / (norms.mean() + 1e-12)
            importance[space] = importance.get(space, 0.0) + norms
    widths = {}
    for (cvar, axes) in child_pairs:
        for axis, space in enumerate(axes):
            if space is not None:
                widths[space] = int(cvar.shape[axis])
    keep = {}
    for space, width in widths.items():
        scores = importance.get(space)
        if scores is None:
            raise ValueError(f"No parent kernel covers channel space {space!r}.")
        if width > scores.size:
            raise ValueError(
                f"The child is wider than the parent in {space!r}: {width} > {scores.size}."
            )
        order = np.argsort(-scores, kind="stable")[:width]
        keep[space] = np.sort(order)
    for value, (cvar, axes) in zip(values, child_pairs):
        for axis, space in enumerate(axes):
            if space is not None and value.shape[axis] != cvar.shape[axis]:
                value = np.take(value, keep[space], axis=axis)
        if tuple(value.shape) != tuple(cvar.shape):
            raise ValueError(
                f"Cannot slice {tuple(value.shape)} into {tuple(cvar.shape)} ({cvar.path})."
            )
        cvar.assign(value.astype(cvar.dtype))
