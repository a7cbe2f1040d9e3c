"""NetAdapt-style search: proposals, weight inheritance, resumable search, bad inputs.

The search itself runs on a tiny three-block table with a deterministic
stand-in latency table (`FakeTable`), so its decisions are reproducible;
the example's smoke run uses real measurements.
"""

import dataclasses
import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest

from mnv3_layers import LARGE, SMALL, ArchitectureSpec, BlockSpec, resolve_architecture
from mnv3_layers.architecture.block_spec import LastStageSpec, StemSpec
from mnv3_layers.datasets import make_shapes_classification
from mnv3_layers.latency_table import OVERHEAD_KEY, STAT_KEYS, LatencyTable, model_configs
from mnv3_layers.search import (
    Proposal,
    SearchInterrupted,
    apply_proposal,
    architecture_from_dict,
    architecture_to_dict,
    bottleneck_groups,
    build_classifier,
    candidate_widths,
    enumerate_proposals,
    flatten_architecture,
    inherit_weights,
    minimal_architecture,
    netadapt_search,
)

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

TINY = ArchitectureSpec(
    name="tiny",
    stem=StemSpec(16, 3, 2, "hard_swish"),
    blocks=(
        BlockSpec(3, 32, 16, False, "relu", 2),
        BlockSpec(3, 48, 16, True, "hard_swish", 1),
        BlockSpec(3, 64, 24, False, "hard_swish", 2),
    ),
    last_stage=LastStageSpec(64, 1024, "hard_swish"),
)
SHAPE = (32, 32, 3)


class FakeTable(LatencyTable):
    """Latency proportional to multiply-adds: exact, deterministic, instant."""

    def _measure_many(self, configs):
        results = []
        for c in configs:
            if c == OVERHEAD_KEY:
                value = 0.001
            elif c.kind == "stem":
                value = c.height * c.width * c.filters * 27 / c.strides ** 2
            elif c.kind == "bneck":
                oh, ow = c.output_size
                expand = c.expanded_filters != c.in_channels
                value = (c.height * c.width * c.in_channels * c.expanded_filters * expand
                         + oh * ow * c.expanded_filters * (c.kernel_size ** 2 + c.filters))
            else:
                value = c.height * c.width * c.in_channels * c.filters + c.filters * c.classes
            ms = 0.001 + 1e-6 * value if c != OVERHEAD_KEY else value
            results.append({**{k: ms for k in STAT_KEYS}, "runs": 1, "warmup": 0})
        return results


def structure(spec):
    return [(b.has_expand, b.use_residual) for b in resolve_architecture(spec).blocks]


def all_widths(spec):
    arch = resolve_architecture(spec)
    return ([arch.stem.filters, arch.last_stage_filters]
            + [w for b in arch.blocks for w in (b.expanded_filters, b.filters)])


# === Architecture helpers ===


@pytest.mark.parametrize("variant", ["small", "large"])
@pytest.mark.parametrize("alpha", [0.35, 0.75, 1.0, 1.25])
@pytest.mark.parametrize("minimalistic", [False, True])
def test_flatten_architecture_matches_resolve(variant, alpha, minimalistic):
    flat = flatten_architecture(variant, alpha, minimalistic)
    want = resolve_architecture(variant, alpha, minimalistic)
    got = resolve_architecture(flat)
    strip = [dataclasses.replace(b, expansion=0) for b in want.blocks]
    assert [dataclasses.replace(b, expansion=0) for b in got.blocks] == strip
    assert got.stem.filters == want.stem.filters
    assert got.stem_activation == want.stem_activation
    assert got.last_stage_filters == want.last_stage_filters
    assert architecture_from_dict(architecture_to_dict(flat)) == flat


def test_bottleneck_groups():
    assert bottleneck_groups(SMALL) == [[0], [1], [2, 3], [4, 5, 6], [7, 8], [9, 10, 11]]
    assert bottleneck_groups(LARGE) == [
        [0, 1], [2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12], [13, 14, 15]]


def test_proposals_and_candidates_small():
    spec = flatten_architecture("small", 0.75)
    proposals = enumerate_proposals(spec)
    # Small's block 0 has no expand convolution (exp 16 == input 16).
    assert [p.name for p in proposals[:2]] == ["expansion[1]", "expansion[2]"]
    assert Proposal("last_stage") in proposals
    assert sum(p.kind == "bottleneck" for p in proposals) == 6
    for proposal in proposals:
        widths = [w for w, _ in candidate_widths(spec, proposal)]
        assert widths == sorted(widths, reverse=True)
        assert all(w % 8 == 0 and w >= 8 for w in widths)
        for _, new in candidate_widths(spec, proposal)[:3]:
            assert structure(new) == structure(spec)
            assert all(w % 8 == 0 for w in all_widths(new))


def test_bottleneck_proposal_updates_the_whole_group():
    spec = flatten_architecture("large", 1.0)
    # Group 0 = stem output + block 0 (residual, no expand conv): 16 wide.
    new = apply_proposal(spec, Proposal("bottleneck", 0), 8)
    assert new.stem.filters == 8
    assert (new.blocks[0].exp_size, new.blocks[0].filters) == (8, 8)
    assert structure(new) == structure(spec)
    # Group 3 = tensors 7-10 (80 wide); block 10 expands from it.
    new = apply_proposal(spec, Proposal("bottleneck", 3), 64)
    assert [b.filters for b in new.blocks[6:10]] == [64] * 4
    assert new.blocks[10].exp_size == spec.blocks[10].exp_size


def test_proposals_never_add_residuals_or_drop_expand_convs():
    spec = flatten_architecture("small", 1.0)
    # Group 4 (48 wide) after group 3 (40 wide) through a stride-1 block:
    # 40 would make block 6 residual.
    widths = [w for w, _ in candidate_widths(spec, Proposal("bottleneck", 4))]
    assert 40 not in widths and 32 in widths
    assert apply_proposal(spec, Proposal("bottleneck", 4), 40) is None
    # Block 2 expands 24 -> 88: 24 would remove its expand convolution.
    widths = [w for w, _ in candidate_widths(spec, Proposal("expansion", 2))]
    assert 24 not in widths and 16 in widths


def test_minimal_architecture():
    spec = flatten_architecture("small", 0.5)
    smallest = minimal_architecture(spec)
    assert structure(smallest) == structure(spec)
    for proposal in enumerate_proposals(smallest):
        assert candidate_widths(smallest, proposal, tuple(map(tuple, structure(spec)))) == []
    assert sum(all_widths(smallest)) < sum(all_widths(spec))


# === Weight inheritance ===


def test_inherit_weights_identity():
    parent = build_classifier(TINY, SHAPE, 3)
    child = build_classifier(TINY, SHAPE, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2,) + SHAPE).astype("float32")
    inherit_weights(parent, child, TINY, TINY)
    np.testing.assert_array_equal(np.asarray(child(x)), np.asarray(parent(x)))


def test_inherit_weights_keeps_the_strongest_channels():
    parent = build_classifier(TINY, SHAPE, 3)
    block = parent.get_layer("backbone").get_layer("expanded_conv")  # 16 -> 32 -> 16, no SE.
    dead = np.arange(1, 32, 4)  # 8 scattered channels that contribute nothing.
    for variable, axis in ((block.expand.kernel, 3), (block.depthwise.kernel, 2),
                           (block.project.kernel, 2)):
        value = np.array(variable.numpy())
        index = [slice(None)] * value.ndim
        index[axis] = dead
        value[tuple(index)] = 0.0
        variable.assign(value)
    child_spec = apply_proposal(TINY, Proposal("expansion", 0), 24)
    child = build_classifier(child_spec, SHAPE, 3)
    inherit_weights(parent, child, TINY, child_spec)
    kept = np.setdiff1d(np.arange(32), dead)
    child_block = child.get_layer("backbone").get_layer("expanded_conv")
    np.testing.assert_array_equal(child_block.depthwise.kernel.numpy(),
                                  block.depthwise.kernel.numpy()[:, :, kept])
    x = np.random.default_rng(1).uniform(0, 255, (2,) + SHAPE).astype("float32")
    np.testing.assert_allclose(np.asarray(child(x)), np.asarray(parent(x)), rtol=1e-5,
                               atol=1e-6)


def test_inherit_weights_bottleneck_and_se_shapes():
    parent = build_classifier(TINY, SHAPE, 3)
    for proposal, width in ((Proposal("bottleneck", 1), 8), (Proposal("expansion", 1), 24),
                            (Proposal("last_stage"), 16)):
        child_spec = apply_proposal(TINY, proposal, width)
        child = build_classifier(child_spec, SHAPE, 3)
        inherit_weights(parent, child, TINY, child_spec)
        out = np.asarray(child(np.zeros((1,) + SHAPE, "float32")))
        assert out.shape == (1, 3) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="same expand convolutions"):
        first = dataclasses.replace(TINY.blocks[0], exp_size=16)
        other = dataclasses.replace(TINY, blocks=(first,) + TINY.blocks[1:])
        inherit_weights(parent, build_classifier(other, SHAPE, 3), TINY, other)


# === The search ===


@pytest.fixture(scope="module")
def shapes_data():
    train = make_shapes_classification(48, image_size=32, seed=0)
    val = make_shapes_classification(16, image_size=32, seed=1)
    return train, val


def search_kwargs(tmp_path, data, **overrides):
    train, val = data
    kwargs = dict(
        train_data=train, output_dir=str(tmp_path / "search"), validation_data=val,
        target_ratio=0.7, variant=TINY, latency_table=FakeTable(tmp_path / "table.json"),
        delta_ratio=0.2, pretrain_steps=2, finetune_steps=1, final_finetune_steps=1,
        batch_size=8, calibrate=False, run_eagerly=True, verbose=0,
    )
    kwargs.update(overrides)
    return kwargs


def read_log(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_search_interrupt_resume_and_outputs(tmp_path, shapes_data):
    # Bottleneck proposals only and no per-proposal training keep this fast;
    # the example's smoke run covers expansion proposals and fine-tuning.
    kwargs = search_kwargs(tmp_path, shapes_data, proposal_kinds=("bottleneck",),
                           finetune_steps=0, pretrain_steps=1)
    out = pathlib.Path(kwargs["output_dir"])

    def stop_after_first(record):
        if record["iteration"] == 1:
            raise SearchInterrupted("stop")

    with pytest.raises(SearchInterrupted):
        netadapt_search(**kwargs, on_iteration_end=stop_after_first)
    state = json.loads((out / "state.json").read_text())
    assert state["phase"] == "search" and state["iteration"] == 1
    first_log = read_log(out / "search_log.jsonl")
    assert [r["iteration"] for r in first_log if r["event"] == "iteration"] == [1]
    assert not (out / "architecture.json").exists()

    result = netadapt_search(**kwargs)
    log = read_log(out / "search_log.jsonl")
    assert log[: len(first_log)] == first_log  # Resumed, not restarted.
    iterations = [r["iteration"] for r in log if r["event"] == "iteration"]
    assert iterations == list(range(1, result.iterations + 1)) and result.iterations >= 2
    assert sum(r["event"] == "start" for r in log) == 1
    assert result.reached and result.final_predicted_ms <= result.target_ms
    assert result.target_ms == pytest.approx(0.7 * result.start_predicted_ms)
    latencies = [h["predicted_ms"] for h in result.history]
    assert latencies == sorted(latencies, reverse=True)
    previous = {r["iteration"]: r["previous_ms"] for r in log if r["event"] == "iteration"}
    parents = {1: next(r for r in log if r["event"] == "start")["architecture"]}
    parents.update({r["iteration"] + 1: r["architecture"] for r in log
                    if r["event"] == "iteration"})
    table = kwargs["latency_table"]
    sized = 0
    for record in log:
        if record["event"] == "proposal" and record["feasible"]:
            assert record["to"] % 8 == 0 and record["to"] < record["from"]
            # Each proposal cuts at least delta (0.2 x current latency, or what
            # is left to the target) according to the table.
            current = previous[record["iteration"]]
            required = min(0.2 * current, current - result.target_ms)
            assert current - record["predicted_ms"] >= required - 1e-9
            # ... and is the largest width that does (the next multiple of 8
            # up, where valid, cuts less).
            parent = architecture_from_dict(parents[record["iteration"]])
            kind, _, index = record["proposal"].partition("[")
            proposal = Proposal(kind, int(index[:-1]) if index else None)
            wider = apply_proposal(parent, proposal, record["to"] + 8)
            if wider is not None and record["to"] + 8 < record["from"]:
                wider_ms = table.predict_configs(
                    model_configs(wider, 1.0, False, SHAPE, "dense", 3)).total_ms
                assert current - wider_ms < required
            sized += 1
    assert sized >= result.iterations
    assert all(w % 8 == 0 for w in all_widths(result.spec))
    assert structure(result.spec) == structure(TINY)

    # The block table builds a backbone; the model file reloads.
    from mnv3_layers.applications import MobileNetV3Backbone

    architecture = json.loads((out / "architecture.json").read_text())
    assert architecture_from_dict(architecture) == result.spec
    backbone = MobileNetV3Backbone(variant=architecture, input_shape=SHAPE)
    assert backbone.output_shape[-1] == result.spec.last_stage.exp_size
    x = shapes_data[1][0][:2]
    reloaded = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0),
                               result.model.predict(x, verbose=0), atol=1e-6)
    saved = json.loads((out / "result.json").read_text())
    assert saved["iterations"] == result.iterations
    assert saved["final_accuracy"] == pytest.approx(result.final_accuracy)

    # A finished search returns its result without training again.
    again = netadapt_search(**kwargs)
    assert again.spec == result.spec and again.final_accuracy == result.final_accuracy
    assert read_log(out / "search_log.jsonl") == log

    with pytest.raises(ValueError, match="other settings"):
        netadapt_search(**{**kwargs, "delta_ratio": 0.3})


def test_search_target_below_floor(tmp_path, shapes_data):
    kwargs = search_kwargs(tmp_path, shapes_data, target_ratio=None, target_ms=1e-4)
    with pytest.raises(ValueError, match=r"below the smallest latency .*: 0\.\d+ ms"):
        netadapt_search(**kwargs)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_search_one_hot_labels_without_num_classes(tmp_path, shapes_data, as_dataset):
    # The old intake unpacked each labels array as a pair ("too many values to
    # unpack" unless it had exactly two rows); now the one-hot width is used.
    import tensorflow as tf

    (x, y), (vx, vy) = shapes_data
    train, val = (x, np.eye(3, dtype="float32")[y]), (vx, np.eye(3, dtype="float32")[vy])
    if as_dataset:
        train = tf.data.Dataset.from_tensor_slices(train).batch(8)
        val = tf.data.Dataset.from_tensor_slices(val).batch(8)
    kwargs = search_kwargs(tmp_path, (train, val), target_ratio=None, target_ms=1e-4)
    with pytest.raises(ValueError, match="below the smallest latency"):
        netadapt_search(**kwargs)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(target_ratio=None, target_ms=0.0), ValueError, "`target_ms` must be a positive"),
        (dict(target_ratio=None, target_ms=-2.0), ValueError, "`target_ms` must be a positive"),
        (dict(target_ratio=1.5), ValueError, r"`target_ratio` must be in \(0, 1\)"),
        (dict(target_ratio=-0.5), ValueError, "`target_ratio` must be a positive"),
        (dict(target_ratio=None), ValueError, "exactly one of"),
        (dict(target_ms=3.0), ValueError, "exactly one of"),
        (dict(delta_ratio=0.0), ValueError, "delta_ratio"),
        (dict(proposal_kinds=("width",)), ValueError, "proposal_kinds"),
        (dict(latency_table=42), TypeError, "latency_table"),
        (dict(start_weights="missing.weights.h5"), FileNotFoundError, "start_weights"),
        (dict(finetune_steps=-1), ValueError, "finetune_steps"),
        (dict(variant="medium"), ValueError, "variant"),
        (dict(run_eagerly="yes"), ValueError, "`run_eagerly` must be"),
    ],
)
def test_search_bad_arguments(tmp_path, shapes_data, overrides, error, match):
    with pytest.raises(error, match=match):
        netadapt_search(**search_kwargs(tmp_path, shapes_data, **overrides))


def test_search_empty_data(tmp_path, shapes_data):
    import tensorflow as tf

    empty = (np.zeros((0,) + SHAPE, "float32"), np.zeros((0,), "int32"))
    with pytest.raises(ValueError, match="`train_data` is empty"):
        netadapt_search(**search_kwargs(tmp_path, shapes_data, train_data=empty))
    with pytest.raises(ValueError, match="`validation_data` is empty"):
        netadapt_search(**search_kwargs(tmp_path, shapes_data, validation_data=empty))
    dataset = tf.data.Dataset.from_tensor_slices(empty).batch(4)
    with pytest.raises(ValueError, match="`train_data` is empty: the dataset yields no batch"):
        netadapt_search(**search_kwargs(tmp_path, shapes_data, train_data=dataset))
    full = tf.data.Dataset.from_tensor_slices(shapes_data[0]).batch(4)
    with pytest.raises(ValueError, match="`validation_data` is required"):
        netadapt_search(**search_kwargs(tmp_path, shapes_data, train_data=full,
                                        validation_data=None))


# === Example ===


@pytest.mark.slow
def test_latency_search_example_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("latency_search",
                                                  EXAMPLES / "latency_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--smoke", "--output", str(tmp_path)])
    assert report["reload_max_abs_diff"] == 0.0
    # Calibrated: the starting model and the result measured end to end.
    assert report["start_latency_ms"] > 0 and report["final_latency_ms"] > 0
    log = read_log(tmp_path / "search_log.jsonl")
    final = [r for r in log if r["event"] == "final"]
    assert len(final) == 1 and final[0]["start_measured_now_ms"] > 0
    assert final[0]["final_latency_ms"] == pytest.approx(
        report["start_latency_ms"] * final[0]["measured_now_ms"]
        / final[0]["start_measured_now_ms"])
    assert report["iterations"] >= 1
    assert report["final_predicted_ms"] < report["start_predicted_ms"]
    assert report["backbone_output_shape"][-1] == report["architecture"]["last_stage"]["exp_size"]
    for name in ("architecture.json", "model.keras", "search_log.jsonl", "state.json",
                 "latency_table.json", "report.json"):
        assert (tmp_path / name).is_file(), name
