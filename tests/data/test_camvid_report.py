"""examples/camvid_report.py, the last step of examples/camvid.sh: after a tiny run on a tiny CamVid
layout and its test evaluation, the report shows the evaluated scores beside the published ones and
draws its two figures."""

import importlib.util
import json
from pathlib import Path

import pytest

from minifcn import evaluate, train
from minifcn.data.camvid import BUILTIN_CLASSES

REPORT_PATH = Path(__file__).resolve().parents[2] / "examples" / "camvid_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("camvid_report", REPORT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_puts_each_published_figure_beside_its_class(report):
    names = [name for name, _, _ in BUILTIN_CLASSES]
    scores = {"pixel_accuracy": 0.9012, "mean_accuracy": 0.7, "mean_iou": 0.5551, "frequency_weighted_iou": 0.8,
              "per_class_iou": [k / 100 for k in range(11)], "class_names": names}
    lines = report.scores_table(scores).splitlines()
    assert "| pixel (global) accuracy | 90.1 | 88.0 |" in lines
    assert "| **mean IoU** | **55.5** | **57.0** |" in lines
    # classes.txt order: Sky 0, Building 1, Pole 2, ..., Bicyclist 10; the paper's names differ
    assert "| IoU Sky | 0.0 | 88.7 |" in lines
    assert "| IoU Pole | 2.0 | 19.9 |" in lines
    assert "| IoU Pavement | 4.0 | 72.7 |" in lines
    assert "| IoU SignSymbol | 6.0 | 32.7 |" in lines
    assert "| IoU Bicyclist | 10.0 | 31.0 |" in lines
    assert sorted(report.PUBLISHED_IOU) == sorted(names)


def test_report_after_a_tiny_camvid_run(make_camvid, tmp_path, capsys, report):
    root, _ = make_camvid({"train": 4, "val": 2, "test": 3}, size=(40, 48))
    run = tmp_path / "run"
    assert train.main(["--data", "camvid", "--data-root", str(root), "--width", "0.0625", "--fc-channels", "8",
                       "--geometry", "compact", "--batch-size", "1", "--epochs", "2", "--warmup", "1",
                       "--no-progress", "--out", str(run)]) == 0
    scores_path = tmp_path / "test_scores.json"
    assert evaluate.main(["--weights", str(run / "best.npz"), "--data", "camvid", "--data-root", str(root),
                          "--split", "test", "--json", str(scores_path), "--no-progress"]) == 0
    scores = json.loads(scores_path.read_text())
    assert scores["images"] == 3
    capsys.readouterr()

    out = tmp_path / "docs"
    assert report.main([str(run), str(scores_path), "--data-root", str(root), "--out", str(out),
                        "--images", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"| **mean IoU** | **{scores['mean_iou'] * 100:.1f}** | **57.0** |" in printed
    assert f"| IoU Class3 | {scores['per_class_iou'][3] * 100:.1f} |  |" in printed
    for name in ("camvid_curves.png", "camvid_test.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
