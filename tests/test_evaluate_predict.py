"""python -m minifcn.evaluate and python -m minifcn.predict on a checkpoint trained in the test."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minifcn.files.checkpoint import load_checkpoint
from minifcn.evaluate import main as evaluate_main
from minifcn.inference import load_trained_model
from minifcn.metrics import ConfusionMatrix
from minifcn.predict import main as predict_main
from minifcn.train import main as train_main

from .test_train import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert train_main(TINY + ["--out", str(out), "--epochs", "1"]) == 0
    return out / "best.npz"


def test_evaluate_matches_a_hand_rolled_evaluation(trained, tmp_path, capsys):
    """The scores evaluate prints and writes equal a confusion matrix built here from the model's argmax."""
    from minifcn.data import BatchLoader, open_dataset

    json_path = tmp_path / "scores.json"
    assert evaluate_main(["--weights", str(trained), "--json", str(json_path), "--no-progress"]) == 0
    report = json.loads(json_path.read_text())
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and "disc" in printed

    model, metadata = load_trained_model(trained)
    dataset = open_dataset("synthetic", split="val", size=8, image_size=32, seed=0)
    confusion = ConfusionMatrix(6)
    for images, labels in BatchLoader(dataset, 8, metadata["preprocessing"], shuffle=False):
        confusion.update(model.forward(images).argmax(axis=1), labels)
    expected = confusion.scores()
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
        assert report[key] == pytest.approx(expected[key], nan_ok=True)
    # Never overwrite: a second run with the same --json is refused, the default path gets a new name.
    assert subprocess.run([sys.executable, "-m", "minifcn.evaluate", "--weights", str(trained), "--json",
                           str(json_path)], capture_output=True).returncode == 2


def test_predict_writes_palette_labels_and_overlays_for_any_image_kind(trained, tmp_path):
    """RGB, greyscale, RGBA and an EXIF-rotated JPEG of odd sizes all give label maps of their size."""
    rng = np.random.default_rng(0)
    paths = []
    rgb = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(rgb)
    grey = tmp_path / "grey.png"
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8), mode="L").save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(rng.integers(0, 255, (33, 33, 4), dtype=np.uint8), mode="RGBA").save(rgba)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rng.integers(0, 255, (20, 50, 3), dtype=np.uint8)).save(rotated, exif=exif)
    paths = [rgb, grey, rgba, rotated]
    out = tmp_path / "out"
    assert predict_main([*map(str, paths), "--weights", str(trained), "--out", str(out), "--no-progress"]) == 0
    expected_sizes = {"rgb": (53, 37), "grey": (30, 40), "rgba": (33, 33), "rotated": (20, 50)}
    for stem, size in expected_sizes.items():
        labels = Image.open(out / f"{stem}_labels.png")
        assert labels.mode == "P" and labels.size == size
        assert np.asarray(labels).max() < 6
        assert (out / f"{stem}_overlay.png").exists()
    # Existing outputs are not overwritten without --overwrite.
    result = subprocess.run([sys.executable, "-m", "minifcn.predict", str(rgb), "--weights", str(trained),
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 2 and "exists" in result.stderr


@pytest.mark.parametrize("make_bad, message", [
    (lambda tmp: tmp / "missing.npz", "no such file"),
    (lambda tmp: (tmp / "junk.npz").write_bytes(b"not a zip") and tmp / "junk.npz", "not a minifcn checkpoint"),
])
def test_bad_checkpoints_exit_2(make_bad, message, tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    weights = make_bad(tmp_path)
    for module, extra in (("minifcn.predict", [str(image), "--out", str(tmp_path / "o")]), ("minifcn.evaluate", [])):
        result = subprocess.run([sys.executable, "-m", module, "--weights", str(weights), *extra],
                                capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_predict_refuses_a_non_image(trained, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    result = subprocess.run([sys.executable, "-m", "minifcn.predict", str(text), "--weights", str(trained),
                             "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and "notes.png" in result.stderr and "Traceback" not in result.stderr


def test_predict_on_camvid_with_a_freshly_converted_checkpoint(camvid_root, vgg16_weights_path, tmp_path):
    """convert --arch fcn8s from the real VGG16 weights, then predict a CamVid frame: well-formed files."""
    checkpoint = tmp_path / "fcn8s.npz"
    result = subprocess.run([sys.executable, "-m", "minifcn.convert", str(vgg16_weights_path), str(checkpoint),
                             "--arch", "fcn8s", "--num-classes", "11", "--fc-channels", "64", "--random-fc",
                             "--geometry", "compact"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    image = sorted((camvid_root / "test").glob("*.png"))[0]
    out = tmp_path / "out"
    assert predict_main([str(image), "--weights", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    labels = Image.open(out / f"{image.stem}_labels.png")
    assert labels.mode == "P" and labels.size == (480, 360)
    assert load_checkpoint(checkpoint).metadata["preprocessing"]["channel_order"] == "BGR"


def _rewritten(trained, tmp_path, name, arch=None, state_change=None):
    """best.npz saved again under another architecture name, or with its arrays changed."""
    from minifcn.files.checkpoint import save_checkpoint

    checkpoint = load_checkpoint(trained)
    metadata = dict(checkpoint.metadata, arch=arch or checkpoint.metadata["arch"])
    state = dict(checkpoint.state)
    if state_change:
        state_change(state)
    path = tmp_path / name
    save_checkpoint(path, state, metadata)
    return path


def test_truncated_other_architecture_and_wrong_shapes_are_one_line_errors(trained, tmp_path):
    """What is wrong is listed (every mismatching name), the exit code is 2, and nothing crashes."""
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])

    def shrink_fc7(state):
        state["fc7.weight"] = state["fc7.weight"][:, :4]

    cases = [
        (truncated, ["truncated"]),
        # An FCN-8s's arrays labelled FCN-32s: the skip layers are unexpected there.
        (_rewritten(trained, tmp_path, "as_fcn32s.npz", arch="fcn32s"),
         ["does not fit FCN32s", "missing: upscore.weight", "unexpected: score_pool4.weight", "score_pool3.weight"]),
        (_rewritten(trained, tmp_path, "wrong_shape.npz", state_change=shrink_fc7), ["fc7.weight", "expected"]),
    ]
    for weights, fragments in cases:
        result = subprocess.run([sys.executable, "-m", "minifcn.evaluate", "--weights", str(weights),
                                 "--data", "synthetic", "--max-images", "2"], capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        for fragment in fragments:
            assert fragment in result.stderr, (weights.name, result.stderr)
