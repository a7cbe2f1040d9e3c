"""The fine-tuning workflow (`mnv3_layers.training`): folder checks, output folder,
recipes, freezing, weights, resume after SIGKILL, MirroredStrategy parity."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnv3_layers import training
from mnv3_layers.training import (
    DataError,
    OutputFolderError,
    TrainConfig,
    prepare_output_folder,
    scan_image_folder,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent


def _write_png(path, seed=0, size=8):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.write_bytes(tf.io.encode_png(pixels).numpy())
    return path


def _folder(root, classes=("a", "b"), per_class=2):
    root = pathlib.Path(root)
    for c, name in enumerate(classes):
        for i in range(per_class):
            _write_png(root / name / f"{i}.png", seed=10 * c + i)
    return root


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# === Folder checks (before training) ===


def test_scan_counts_classes_and_ignores_hidden_files(tmp_path):
    root = _folder(tmp_path / "data", classes=("cat", "dog"), per_class=3)
    _write_png(root / "dog" / "nested" / "extra.png", seed=99)  # keras reads sub-folders too
    (root / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    folder = scan_image_folder(root)
    assert folder.class_names == ("cat", "dog")
    assert folder.counts == (3, 4)
    assert folder.num_images == 7
    assert folder.bad_files == ()


def test_scan_rejects_a_single_class(tmp_path):
    root = _folder(tmp_path / "data", classes=("only",))
    with pytest.raises(DataError, match="at least 2 class folders.*'only'"):
        scan_image_folder(root)


def test_scan_rejects_an_empty_class_folder(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "empty_class").mkdir()
    with pytest.raises(DataError, match="Empty class folder.*'empty_class'"):
        scan_image_folder(root)


def test_scan_rejects_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data=.*nowhere.*not a folder"):
        scan_image_folder(tmp_path / "nowhere")


def test_scan_names_a_non_image_file(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.txt.*is not an image file"):
        scan_image_folder(root)


def test_scan_names_a_corrupt_image(tmp_path):
    root = _folder(tmp_path / "data")
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"broken\.png.*cannot be decoded.*--skip-bad-images"):
        scan_image_folder(root)


def test_scan_skips_bad_files_with_a_warning(tmp_path):
    root = _folder(tmp_path / "data", per_class=2)
    (root / "b" / "broken.jpg").write_bytes(b"no jpeg here")
    (root / "a" / "readme.md").write_text("# hi")
    with pytest.warns(UserWarning, match="Skipping") as record:
        folder = scan_image_folder(root, skip_bad_images=True)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.jpg" in messages and "readme.md" in messages
    assert folder.counts == (2, 2)
    assert len(folder.bad_files) == 2


def test_scan_rejects_images_outside_class_folders(tmp_path):
    root = _folder(tmp_path / "data")
    _write_png(root / "stray.png")
    with pytest.raises(DataError, match="stray.png"):
        scan_image_folder(root)


def test_scan_checks_validation_classes(tmp_path):
    root = _folder(tmp_path / "val", classes=("a", "c"))
    with pytest.raises(DataError, match=r"training classes \['a', 'b'\]"):
        scan_image_folder(root, class_names=("a", "b"), what="val_data")


def test_train_val_subfolders_are_detected(tmp_path):
    _folder(tmp_path / "data" / "train")
    _folder(tmp_path / "data" / "val")
    train, val = training.resolve_data_folders(tmp_path / "data")
    assert (train, val) == (str(tmp_path / "data" / "train"), str(tmp_path / "data" / "val"))
    plain = _folder(tmp_path / "plain")
    assert training.resolve_data_folders(plain) == (str(plain), None)


def test_load_datasets_batches_and_skips_bad_images(tmp_path):
    root = _folder(tmp_path / "data", per_class=3)
    (root / "a" / "broken.png").write_bytes(b"broken")
    config = TrainConfig(data=str(root), out=str(tmp_path / "out"), image_size=32,
                         batch_size=2, augment="none", skip_bad_images=True,
                         validation_split=0.34)
    with pytest.warns(UserWarning, match="broken.png"):
        data = training.load_datasets(config, num_replicas=2, log=lambda *_: None)
    assert data.global_batch_size == 4
    assert data.num_train + data.num_val == 6
    images, labels = training.dataset_to_arrays(data.train)
    assert images.shape == (data.num_train, 32, 32, 3)
    assert set(labels.tolist()) <= {0, 1}
    assert 0.0 <= images.min() and images.max() <= 255.0


def test_flip_augmentations_are_independent():
    """flip and vflip draw separately: all four orientations occur, not only 0 and 180 deg."""
    augment = training.make_augmentation("flip,vflip", seed=0)
    image = np.arange(16, dtype="float32").reshape(4, 4, 1)
    batch = np.repeat(image[None], 64, axis=0)
    flipped = np.asarray(augment(batch, training=True))
    orientations = {
        "identity": image, "horizontal": image[:, ::-1], "vertical": image[::-1],
        "both": image[::-1, ::-1],
    }
    seen = {name for x in flipped for name, o in orientations.items() if np.array_equal(x, o)}
    assert seen == set(orientations)


# === Configuration and output folder ===


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "`epochs` must be a positive integer"),
        ({"epochs": 2, "freeze_epochs": 3}, "`freeze_epochs` must be <= `epochs`"),
        ({"recipe": "adamw"}, "`recipe` must be one of"),
        ({"export": ("fp16",)}, "`export` must be one of"),
        ({"qat_hard_swish": "fused"},
         r"`qat_hard_swish` must be one of \('op', 'elementwise'\). "
         r"Received: qat_hard_swish='fused'"),
        ({"augment": "blur"}, "`augment` must be 'none' or"),
        ({"image_size": 16}, "`image_size` must be >= 32"),
        ({"distribution": "gpu"}, "`distribution` must be one of"),
        ({"tpu": "grpc://x"}, "`tpu` is only used with distribution='tpu'"),
        ({"weights": 5}, "`weights` must be None, 'imagenet' or the path"),
        ({"validation_split": 1.0}, "`validation_split` must be in"),
        ({"learning_rate": -1.0}, "`learning_rate` must be a positive number"),
        ({"weights": "imagenet", "alpha": 0.35}, "`alpha` must be 0.75 or 1.0"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data="photos", **overrides)


def test_a_missing_weights_file_stops_the_run_before_anything_is_written(tmp_path):
    # The configuration checks arguments only; the file is checked when the run starts.
    config = TrainConfig(data=str(_folder(tmp_path / "data")), out=str(tmp_path / "out"),
                         weights=str(tmp_path / "no_such.weights.h5"))
    assert config.weights == str(tmp_path / "no_such.weights.h5")
    with pytest.raises(ValueError, match="`weights` must be None, 'imagenet' or the path to "
                       "an existing weights file. Received: weights=.*no_such"):
        training.train(config, log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_output_folder_keeps_other_runs(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(data="photos", out=str(out), epochs=2)
    assert prepare_output_folder(config) == "new"
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    assert prepare_output_folder(config) == "resume"  # same configuration
    (out / "model.keras").write_bytes(b"results of the first run")
    other = TrainConfig(data="photos", out=str(out), epochs=3)
    with pytest.raises(OutputFolderError, match=r"different configuration \(epochs: 2 -> 3\)"
                       r".*--overwrite"):
        prepare_output_folder(other)
    assert (out / "model.keras").read_bytes() == b"results of the first run"
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    (out / "my_notes.txt").write_text("keep me")
    assert prepare_output_folder(other, overwrite=True) == "new"
    assert not (out / "model.keras").exists()
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert json.loads((out / "config.json").read_text())["epochs"] == 3


def test_output_folder_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    config = TrainConfig(data="photos", out=str(tmp_path))
    with pytest.raises(OutputFolderError, match="not empty.*thesis.tex"):
        prepare_output_folder(config)
    assert not (tmp_path / "config.json").exists()


def test_output_folder_without_results_takes_a_new_configuration(tmp_path):
    out = tmp_path / "run"
    prepare_output_folder(TrainConfig(data="photos", out=str(out), weights="imagenet"))
    # e.g. the ImageNet download failed before anything was trained
    new = TrainConfig(data="photos", out=str(out), weights=None)
    assert prepare_output_folder(new) == "resume"
    assert json.loads((out / "config.json").read_text())["weights"] is None


def test_truncate_csv_log_keeps_earlier_epochs(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n")
    training.run_folder.truncate_csv_log(str(path), 2)
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.9"]
    assert training.read_training_log(str(path)) == {"epoch": [0.0, 1.0], "loss": [1.0, 0.9]}


# === Recipes ===


def test_paper_recipe():
    recipe = training.get_recipe("paper", global_batch_size=512, total_steps=200_000,
                                 pretrained=True)
    assert recipe.optimizer == "rmsprop"
    assert recipe.learning_rate == pytest.approx(0.1 * 512 / 4096)
    assert recipe.ema_momentum == 0.9999
    assert (recipe.bn_momentum, recipe.l2, recipe.dropout_rate) == (0.99, 1e-5, 0.2)
    short = training.get_recipe("paper", 32, total_steps=100, pretrained=False)
    assert short.ema_momentum == pytest.approx(0.9)  # 1 - 10 / 100: spans the run's end

    optimizer = training.make_optimizer(recipe, recipe.learning_rate, total_steps=3000)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert (optimizer.rho, optimizer.momentum, optimizer.use_ema) == (0.9, 0.9, True)
    assert optimizer.ema_momentum == 0.9999

    def lr(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    # 100 staircase decays of x0.99 over the run ("0.01 every 3 epochs" of a 300-epoch run)
    assert lr(0) == pytest.approx(recipe.learning_rate)
    assert lr(29) == pytest.approx(recipe.learning_rate)
    assert lr(30) == pytest.approx(recipe.learning_rate * 0.99)
    assert lr(3000) == pytest.approx(recipe.learning_rate * 0.99**100)


def test_default_recipe_and_overrides():
    scratch = training.get_recipe("default", 32, 100, pretrained=False)
    assert (scratch.optimizer, scratch.learning_rate, scratch.bn_momentum) == ("adam", 3e-3, 0.9)
    tuned = training.get_recipe("default", 32, 100, pretrained=True, learning_rate=5e-4,
                                dropout_rate=0.0)
    assert (tuned.learning_rate, tuned.bn_momentum, tuned.dropout_rate) == (5e-4, 0.99, 0.0)
    optimizer = training.make_optimizer(scratch, 3e-3, total_steps=100)

    def lr(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    # linear warmup over 10 % of the steps, then cosine decay to 5 %
    assert (lr(0), lr(5), lr(10)) == pytest.approx((0.0, 1.5e-3, 3e-3))
    assert lr(55) == pytest.approx(3e-3 * (0.05 + 0.95 * 0.5))
    assert lr(100) == pytest.approx(3e-3 * 0.05)
    sgd = training.make_optimizer(training.get_recipe("sgd", 32, 10, False), 0.01, 10)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9


# === Model: freezing, L2, weights ===


@pytest.fixture(scope="module")
def small_classifier():
    keras.utils.set_random_seed(0)
    return training.build_classifier("small", num_classes=3, image_size=32, alpha=0.35,
                                     dropout_rate=0.0, bn_momentum=0.9)


def _moving_means(model):
    return [np.array(w) for w in model.weights if w.path.endswith("moving_mean")]


def test_freeze_trains_only_the_head_with_bn_in_inference_mode(small_classifier):
    model = small_classifier
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    training.set_backbone_trainable(model, False)
    try:
        trainable = sorted(w.path for w in model.trainable_weights)
        assert trainable == ["last_stage/head_conv/bias", "last_stage/head_conv/kernel",
                             "logits/bias", "logits/kernel"]
        before = _moving_means(model)
        # Frozen batch norms use and keep their moving statistics in training mode.
        np.testing.assert_allclose(model(x, training=True), model(x, training=False),
                                   rtol=1e-5, atol=1e-6)
        for a, b in zip(before, _moving_means(model)):
            np.testing.assert_array_equal(a, b)
        training.set_backbone_trainable(model, True)
        assert len(model.trainable_weights) > 4 * 10
        model(x, training=True)
        changed = [not np.array_equal(a, b) for a, b in zip(before, _moving_means(model))]
        assert all(changed)
    finally:
        training.set_backbone_trainable(model, True)


def test_apply_l2_regularizes_conv_and_classifier_kernels(small_classifier):
    model = small_classifier
    try:
        count = training.apply_l2(model, 1e-5)
        kernels = [w for w in model.trainable_weights if w.regularizer is not None]
        assert len(kernels) == count > 20
        assert not any("depthwise" in w.path or "bn" in w.path for w in kernels)
        assert all(w.path.endswith("kernel") for w in kernels)
        expected = sum(1e-5 * float(np.sum(np.square(np.asarray(w)))) for w in kernels)
        total = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
        assert total == pytest.approx(expected, rel=1e-4)
    finally:
        for w in model.trainable_weights:
            w.regularizer = None


def test_build_classifier_loads_backbone_weights_from_a_file(tmp_path):
    from mnv3_layers.applications import MobileNetV3Small
    from random_weights import randomize_weights

    source = MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.35, include_top=False,
                              weights=None)
    randomize_weights(source, np.random.default_rng(1))
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    model = training.build_classifier("small", 4, 32, alpha=0.35, weights=path)
    np.testing.assert_array_equal(model.get_layer("expanded_conv_3").get_weights()[0],
                                  source.get_layer("expanded_conv_3").get_weights()[0])
    np.testing.assert_array_equal(model.get_layer("last_stage").conv_bn.get_weights()[2],
                                  source.get_layer("last_stage").conv_bn.get_weights()[2])
    assert model.output_shape == (None, 4)


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.make_strategy("multiworker")
    assert training.make_strategy("none").num_replicas_in_sync == 1


# === Nothing lost: SIGKILL mid-run, then resume ===


@pytest.mark.slow
def test_killed_run_resumes_at_the_epoch_reached(tmp_path, capsys):
    """`python -m mnv3_layers train` killed (SIGKILL) after its first checkpoint resumes there."""
    from mnv3_layers import cli

    data = tmp_path / "data"
    training.write_shapes_folder(str(data), 16, 32, seed=0)
    (data / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut off")
    out = tmp_path / "run"
    epochs = 2
    argv = ["train", "--data", str(data), "--out", str(out), "--weights", "none",
            "--image-size", "32", "--alpha", "0.35", "--epochs", str(epochs),
            "--batch-size", "4", "--augment", "none", "--validation-split", "0.25",
            "--skip-bad-images", "--run-eagerly"]
    state = out / "checkpoints" / "state.json"
    process = subprocess.Popen([sys.executable, "-m", "mnv3_layers"] + argv,
                               env=_subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not state.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        printed = process.communicate(timeout=60)[0]
    assert process.returncode == -signal.SIGKILL, printed[-3000:]
    assert state.exists(), printed[-3000:]
    # --skip-bad-images: the broken file was named in a warning and left out.
    assert "Skipping" in printed and "broken.png" in printed
    saved = json.loads(state.read_text())
    reached = saved["epoch"]
    assert 1 <= reached < epochs and saved["phase"] == "finetune"
    assert (out / "checkpoints" / f"epoch-{reached:04d}-finetune.weights.h5").is_file()
    assert not (out / "metrics.json").exists() and not (out / "model.keras").exists()

    # Rerun the same command: it continues after the epoch reached, not from 0.
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"resuming from the checkpoint after epoch {reached}" in printed
    assert f"epochs {reached + 1}-{epochs} of {epochs}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == epochs and metrics["resumed_from_epoch"] == reached
    # 16 readable images (the broken one skipped). The optimizer step counter
    # came back from the checkpoint: the steps of every epoch, counted once.
    assert metrics["num_train_images"] + metrics["num_val_images"] == 16
    steps = -(-metrics["num_train_images"] // 4)
    assert metrics["optimizer_iterations"] == epochs * steps
    log = training.read_training_log(str(out / "logs" / "training_log.csv"))
    assert log["epoch"] == [float(e) for e in range(epochs)]  # each epoch logged once
    assert (out / "model.keras").is_file() and not (out / "checkpoints").exists()

    # A finished run is not trained again; another configuration is refused.
    assert cli.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    other = [a if a != str(epochs) else str(epochs + 1) for a in argv]
    assert cli.main(other) == 1
    error = capsys.readouterr().err
    assert "different configuration" in error and f"epochs: {epochs} -> {epochs + 1}" in error
    assert json.loads((out / "metrics.json").read_text()) == metrics


# === Distribution: MirroredStrategy on 2 logical CPUs == one device, same global batch ===

MIRRORED_DRIVER = textwrap.dedent(
    """
    import json, os, sys, warnings
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from mnv3_layers import training
    from mnv3_layers.applications import MobileNetV3Small
    from random_weights import randomize_weights

    warnings.simplefilter("ignore")
    root = sys.argv[1]
    # A backbone whose activations stay O(1) (random weights file, passed as --weights PATH).
    backbone = MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.35, include_top=False,
                                weights=None)
    randomize_weights(backbone, np.random.default_rng(0))
    weights = os.path.join(root, "backbone.weights.h5")
    backbone.save_weights(weights)
    training.write_shapes_folder(os.path.join(root, "train"), 16, 32, 0)
    training.write_shapes_folder(os.path.join(root, "val"), 6, 32, 1)
    # Deterministic: frozen backbone (batch norms in inference mode), no dropout,
    # no shuffling or augmentation, SGD; 2 steps of a global batch of 8.
    common = dict(data=os.path.join(root, "train"), val_data=os.path.join(root, "val"),
                  weights=weights, alpha=0.35, image_size=32, epochs=1, freeze_epochs=1,
                  recipe="sgd", learning_rate=0.1, dropout_rate=0.0, augment="none",
                  shuffle=False, run_eagerly=True)
    class Capture(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.names = [w.path for w in self.model.weights]
            self.initial = [np.array(w) for w in self.model.weights]

        def on_train_end(self, logs=None):
            self.final = [np.array(w) for w in self.model.weights]

    runs = {}
    for name, batch_size, distribution in (("single", 8, "none"), ("mirrored", 4, "mirrored")):
        capture = Capture()
        metrics = training.train(training.TrainConfig(
            out=os.path.join(root, name), batch_size=batch_size, distribution=distribution,
            **common), callbacks=[capture])
        runs[name] = (metrics, capture)
    (single, a), (mirrored, b) = runs["single"], runs["mirrored"]
    head = [i for i, n in enumerate(a.names) if n.startswith(("logits", "last_stage/head"))]
    print("RESULT " + json.dumps({
        "replicas": [single["num_replicas"], mirrored["num_replicas"]],
        "global_batch": [single["global_batch_size"], mirrored["global_batch_size"]],
        "iterations": [single["optimizer_iterations"], mirrored["optimizer_iterations"]],
        "train_loss": [single["train_loss"], mirrored["train_loss"]],
        "same_start": all(np.array_equal(x, y) for x, y in zip(a.initial, b.initial)),
        "head": [a.names[i] for i in head],
        "diff": [float(np.max(np.abs(a.final[i] - b.final[i]))) for i in head],
        "moved": [float(np.max(np.abs(a.final[i] - a.initial[i]))) for i in head],
        "backbone_diff": max(float(np.max(np.abs(x - y))) for x, y in zip(a.final, b.final)),
    }))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_matches_a_single_device(tmp_path):
    """`distribution="mirrored"` on 2 logical CPUs == one device with the same global batch.

    The run trains the head on a frozen backbone: a backbone whose batch norms
    train would normalize with per-replica batch statistics (batch 4 instead of
    8), which differs by design (that needs SyncBatchNormalization). Tolerance:
    the two runs sum the same float32 terms in a different order (two partial
    sums all-reduced vs one sum), so they may differ by rounding, ~1e-7
    relative per step; the bound, 1e-5 absolute + 1e-4 of how far each weight
    moved, is far above rounding and far below any real error - e.g. a loss not
    scaled to the global batch would double (or halve) the update, a difference
    of about the whole move.
    """
    result = subprocess.run([sys.executable, "-c", MIRRORED_DRIVER, str(tmp_path)],
                            env=_subprocess_env(), capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout + result.stderr)[-4000:]
    report = json.loads(lines[-1][len("RESULT "):])
    print("mirrored vs single device:", json.dumps(report))  # shown with pytest -s / -rP
    assert report["replicas"] == [1, 2]
    assert report["global_batch"] == [8, 8]
    assert report["iterations"] == [2, 2]
    assert report["same_start"]
    assert report["train_loss"][0] == pytest.approx(report["train_loss"][1], rel=1e-5)
    assert len(report["head"]) == 4
    for name, diff, moved in zip(report["head"], report["diff"], report["moved"]):
        # Training moved every head weight, and both runs moved it the same way.
        assert moved > 1e-3, (name, moved)
        assert diff <= 1e-5 + 1e-4 * moved, (name, diff, moved)
    assert report["backbone_diff"] <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("hard_swish", ["op", "elementwise"])
def test_qat_epochs_export_an_int8_model_from_the_qat_model(tmp_path, hard_swish):
    """`--qat-epochs 1 --export int8,dynamic`: QAT after the float epoch, int8 from the QAT model."""
    from mnv3_layers.quantization import inspect_tflite

    data = tmp_path / "data"
    training.write_shapes_folder(str(data), 12, 32, seed=0)
    out = tmp_path / "run"
    config = TrainConfig(data=str(data), out=str(out), weights="none", image_size=32,
                         alpha=0.35, epochs=1, batch_size=4, augment="none", qat_epochs=1,
                         qat_hard_swish=hard_swish, export=("int8", "dynamic"),
                         run_eagerly=True)
    metrics = training.train(config, log=lambda *args: None)
    assert metrics["epochs_completed"] == 2  # 1 float + 1 QAT epoch
    assert 0.0 <= metrics["qat_val_accuracy"] <= 1.0
    assert (out / "model_qat.keras").is_file() and (out / "model.keras").is_file()
    int8 = metrics["exports"]["int8"]
    assert int8["source"] == "QAT model" and int8["bytes"] == os.path.getsize(int8["path"])
    report = inspect_tflite(int8["path"])
    assert report.float_ops == () and report.stray_quantize_pairs == ()
    if hard_swish == "op":
        assert report.op_histogram["HARD_SWISH"] > 0
    else:  # --qat-hard-swish elementwise: ADD/MUL/MUL instead, still fully int8
        assert "HARD_SWISH" not in report.op_histogram and report.is_fully_int8
        assert report.op_histogram["MUL"] > 2 * report.op_histogram["ADD"] > 0
    dynamic = metrics["exports"]["dynamic"]
    assert dynamic["source"] == "float model" and os.path.isfile(dynamic["path"])
    # The dynamic-range file keeps float activations: its compute ops are float.
    assert inspect_tflite(dynamic["path"]).float_ops
