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


# --- large images ---------------------------------------------------------------------------------


class PerPixelModel:
    """Scores (N, K, H, W) that depend on each pixel alone: tiles must give exactly the whole image's labels."""

    def forward(self, x):
        return np.concatenate([x, -x, x[:, :1] * 0.5], axis=1)

    def clear_cache(self):
        pass


@pytest.mark.parametrize("length, tile, margin", [(100, 512, 64), (512, 512, 64), (513, 512, 64), (1300, 256, 32),
                                                   (2049, 160, 64)])
def test_tile_spans_keep_every_pixel_once_and_stay_within_the_tile(length, tile, margin):
    from minifcn.inference import tile_spans

    kept = np.zeros(length, int)
    for start, stop, keep_start, keep_stop in tile_spans(length, tile, margin):
        assert 0 <= start <= keep_start < keep_stop <= stop <= length and stop - start <= tile
        assert keep_start - start >= min(margin, keep_start) and stop - keep_stop >= min(margin, length - keep_stop)
        kept[keep_start:keep_stop] += 1
    assert (kept == 1).all()


def test_tiled_prediction_and_evaluation_equal_the_whole_image_for_a_per_pixel_model():
    from minifcn.data.transforms import PREPROCESSING_FROM_SCRATCH
    from minifcn.inference import evaluate_model, predict_labels

    image = np.random.default_rng(0).integers(0, 256, (700, 450, 3), dtype=np.uint8)
    whole = predict_labels(PerPixelModel(), image, PREPROCESSING_FROM_SCRATCH, "cpu", tile_size=None)
    tiled = predict_labels(PerPixelModel(), image, PREPROCESSING_FROM_SCRATCH, "cpu", tile_size=160, margin=40)
    np.testing.assert_array_equal(tiled, whole)

    class Model(PerPixelModel):
        training = False

        def eval(self):
            pass

    images = np.random.default_rng(1).standard_normal((1, 3, 300, 420)).astype(np.float32)
    labels = np.random.default_rng(2).integers(0, 7, (1, 300, 420)).astype(np.int32)
    labels[0, :50] = 255
    scores_whole, loss_whole = evaluate_model(Model(), [(images, labels)], 7, 255, "cpu", progress=False)
    scores_tiled, loss_tiled = evaluate_model(Model(), [(images, labels)], 7, 255, "cpu", progress=False,
                                              tile_size=160, margin=40)
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
        assert scores_tiled[key] == pytest.approx(scores_whole[key])
    assert loss_tiled == pytest.approx(loss_whole, rel=1e-5)


# Runs predict and prints its peak resident memory in bytes: VmHWM, the high-water mark of this
# program's own memory (ru_maxrss would also count the forking parent's, inherited across exec).
PEAK_RSS = """
import re, sys
from minifcn.cli import run
from minifcn.predict import main
code = run(main, sys.argv[1:], "predict")
status = open("/proc/self/status").read()
print("peak", int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024, flush=True)
sys.exit(code)
"""


@pytest.mark.slow
def test_predict_on_a_12_megapixel_image_stays_within_bounded_memory(trained, tmp_path):
    """4000 x 3000 pixels: the label map is full size, and the process peaks well under what segmenting
    it whole would take (the whole image's float copy alone is 144 MB; each activation of the first
    block, at width 0.0625, another 190 MB)."""
    photo = tmp_path / "photo.jpg"
    small = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(small).resize((4000, 3000)).save(photo)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(photo), "--weights", str(trained), "--out",
                             str(out), "--no-progress"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split("peak")[1])
    assert Image.open(out / "photo_labels.png").size == (4000, 3000)
    assert max(Image.open(out / "photo_overlay.png").size) <= 2048 + 300  # the preview plus its legend
    assert peak < 1024 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"


# --- refused before any work ---------------------------------------------------------------------


def _cli(module, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=1800, **kwargs)


def _one_line(result, code=2):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_nonsense_values_are_refused_in_one_line(trained, tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for args, message in ((["--alpha", "5"], "--alpha must be between 0 and 1"),
                          (["--alpha", "nan"], "--alpha must be between 0 and 1"),
                          (["--tile-size", "10"], "--tile-size must be at least"),
                          (["--overlay-max-size", "-1"], "--overlay-max-size must be 0 or more")):
        assert message in _one_line(_cli("minifcn.predict", image, "--weights", trained, "--out", tmp_path / "o",
                                         *args))
    assert not (tmp_path / "o").exists()
    for args, message in ((["--batch-size", "-1"], "--batch-size must be positive"),
                          (["--max-images", "-3"], "--max-images must be positive"),
                          (["--tile-size", "7"], "--tile-size must be at least"),
                          (["--json", tmp_path / "nowhere" / "s.json"], "does not exist")):
        result = _cli("minifcn.evaluate", "--weights", trained, *args)
        assert message in _one_line(result) and "mean IoU" not in result.stdout  # refused before the work


def test_evaluate_writes_strict_json(trained, tmp_path):
    """A class absent from the images has no IoU: null, never NaN, which strict JSON parsers reject."""
    json_path = tmp_path / "scores.json"
    assert evaluate_main(["--weights", str(trained), "--json", str(json_path), "--no-progress",
                          "--max-images", "1", "--batch-size", "1"]) == 0

    def refuse(constant):
        raise AssertionError(f"{constant} in strict JSON")

    report = json.loads(json_path.read_text(), parse_constant=refuse)
    assert all(value is None or 0 <= value <= 1 for value in report["per_class_iou"])
    assert report["loss"] is None or np.isfinite(report["loss"])


def test_nan_weights_are_refused_by_every_command_that_loads_them(trained, tmp_path):
    def poison(state):
        state["conv1_1.weight"] = state["conv1_1.weight"].copy()
        state["conv1_1.weight"][0, 0, 0, 0] = np.nan

    weights = _rewritten(trained, tmp_path, "nan.npz", state_change=poison)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    results = [_cli("minifcn.evaluate", "--weights", weights, "--json", tmp_path / "s.json"),
               _cli("minifcn.predict", image, "--weights", weights, "--out", tmp_path / "o"),
               _cli("minifcn.train", *TINY, "--init", weights, "--out", tmp_path / "run")]
    for result in results:
        assert "conv1_1.weight holds NaN or infinite values" in _one_line(result)
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "o").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("fc_channels", [4_000_000, 30_000])  # 16 million million parameters; 900 million
def test_a_tiny_checkpoint_asking_for_an_enormous_model_is_refused_before_building_it(trained, tmp_path, fc_channels):
    checkpoint = load_checkpoint(trained)
    options = dict(checkpoint.metadata["options"], fc_channels=fc_channels)
    from minifcn.files.checkpoint import save_checkpoint

    bomb = tmp_path / "bomb.npz"
    save_checkpoint(bomb, {"conv1_1.bias": checkpoint.state["conv1_1.bias"]}, dict(checkpoint.metadata, options=options))
    assert bomb.stat().st_size < 8192
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(image), "--weights", str(bomb), "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 2 and "refused before building it" in result.stderr, result.stderr
    assert int(result.stdout.split("peak")[1]) < 400 * 2**20


# Runs a command whose work (evaluate_model or predict_labels) is replaced by a long wait, announced on
# stdout, so that a signal surely lands in the middle of the work.
SLOW_WORK = """
import importlib, sys, time
module = importlib.import_module(sys.argv[1])
def slow(*args, **kwargs):
    print("working", flush=True)
    time.sleep(600)
setattr(module, sys.argv[2], slow)
from minifcn.cli import run
sys.exit(run(module.main, sys.argv[3:], module.PROG))
"""


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("signum, code, said", [(2, 130, "interrupted"), (15, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_during_evaluate_or_predict_is_one_line(trained, tmp_path, command, signum, code, said):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    args = {"evaluate": ["minifcn.evaluate", "evaluate_model", "--weights", trained, "--json", tmp_path / "s.json"],
            "predict": ["minifcn.predict", "predict_labels", image, "--weights", trained, "--out", tmp_path / "o"]}
    process = subprocess.Popen([sys.executable, "-c", SLOW_WORK, *map(str, args[command]), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "working"
    process.send_signal(signum)
    _, err = process.communicate(timeout=600)
    assert process.returncode == code and said in err and "Traceback" not in err, err
    assert not (tmp_path / "s.json").exists() and not list(tmp_path.glob("o/*"))


def test_running_out_of_memory_in_predict_advises_predicts_own_options(trained, tmp_path, monkeypatch, capsys):
    import minifcn.predict
    from minifcn.cli import run

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 6.00 GiB for an array")

    monkeypatch.setattr(minifcn.predict, "predict_labels", out_of_memory)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code = run(minifcn.predict.main, [str(image), "--weights", str(trained), "--out", str(tmp_path / "o"),
                                      "--no-progress"], minifcn.predict.PROG)
    err = capsys.readouterr().err
    assert code == 2 and "try a smaller --tile-size" in err and "--crop-size" not in err, err
