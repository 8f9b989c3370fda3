from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import higherhrnet

from conftest import REPO, randomize, tiny_cfg

J = 17
OPTS = ("DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "[32, 64]")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny random model (finds 'people' everywhere) and one whose heatmaps are all negative (nobody)."""
    folder = tmp_path_factory.mktemp("models")
    cfg = tiny_cfg(*OPTS)
    (folder / "tiny.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(cfg))
    higherhrnet.save_model(folder / "random.pth", model, cfg)
    with torch.no_grad():
        for layer in model.final_layers:
            layer.weight.zero_()
            layer.bias.fill_(-1.0)
    higherhrnet.save_model(folder / "nobody.pth", model, cfg)
    return folder


def run_demo(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "demo/inference.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def write(path, image):
    assert cv2.imwrite(str(path), image)
    return path


def test_folder_run_writes_outputs_and_reports_bad_files(tmp_path, model_files):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    write(photos / "street.jpg", rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    write(photos / "gray.png", rng.integers(0, 255, (70, 50), dtype=np.uint8))
    write(photos / "tiny.png", rng.integers(0, 255, (2, 3, 3), dtype=np.uint8))     # smaller than the stride
    write(photos / "deep.png", (rng.integers(0, 65535, (40, 60, 3))).astype(np.uint16))
    good = (photos / "street.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(good[: len(good) // 2])
    (photos / "notes.jpg").write_text("hello")
    write(photos / "panorama.png", rng.integers(0, 255, (4, 4000, 3), dtype=np.uint8))
    (photos / "readme.txt").write_text("not an image extension: ignored")
    out = tmp_path / "out"

    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--folder", photos, "--out", out, "--threshold", "0.0")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "3 of 7 inputs failed" in result.stderr
    for bad, reason in (("cut.jpg", "truncated JPEG"), ("notes.jpg", "not a readable image"),
                        ("panorama.png", "aspect ratio")):
        assert any(bad in line and reason in line for line in result.stderr.splitlines()), (bad, result.stderr)

    for stem, (w, h) in {"street": (120, 90), "gray": (50, 70), "tiny": (3, 2), "deep": (60, 40)}.items():
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["width"], record["height"]) == (w, h)
        assert len(record["keypoint_names"]) == J
        assert len(record["people"]) > 0
        for person in record["people"]:
            assert len(person["keypoints"]) == 3 * J and np.isfinite(person["keypoints"]).all()
            assert isinstance(person["score"], float)
        drawn = cv2.imread(str(out / f"{stem}_pose.jpg"))
        assert drawn.shape[:2] == (h, w)
        assert f"{stem}" in result.stdout
    assert not (out / "cut.json").exists()


def test_nobody_and_multi_scale_override(tmp_path, model_files):
    image = write(tmp_path / "empty_room.jpg", np.full((100, 80, 3), 128, np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "nobody.pth",
                      "--image", image, "--out", tmp_path / "out", "TEST.SCALE_FACTOR", "[0.5,1.0,2.0]")
    assert result.returncode == 0, result.stderr
    assert "0 people" in result.stdout
    assert json.loads((tmp_path / "out/empty_room.json").read_text())["people"] == []
    assert (tmp_path / "out/empty_room_pose.jpg").exists()


def test_large_images_are_downscaled_for_inference(tmp_path, model_files):
    image = write(tmp_path / "big.png", np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--image", image, "--out", tmp_path / "out", "--max-pixels", "2700")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/big.json").read_text())
    assert record["inference_downscale"] == 0.5 and (record["width"], record["height"]) == (120, 90)
    assert "downscaled x0.50" in result.stdout


def test_video(tmp_path, model_files):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((64, 96, 3), 40 * i, np.uint8))
    writer.release()
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--video", video, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/clip.json").read_text())
    assert [f["frame"] for f in record["frames"]] == [0, 1, 2]
    capture = cv2.VideoCapture(str(tmp_path / "out/clip_pose.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_unwritable_output_fails_before_loading_the_model(tmp_path, model_files):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    image = write(tmp_path / "a.jpg", np.zeros((10, 10, 3), np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", tmp_path / "does-not-exist.pth",
                      "--image", image, "--out", blocker / "sub")
    assert result.returncode == 2
    assert "cannot write to output folder" in result.stderr and "does-not-exist" not in result.stderr


def test_bad_weights_and_config_are_one_line_errors(tmp_path, model_files):
    image = write(tmp_path / "a.jpg", np.zeros((10, 10, 3), np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", tmp_path / "missing.pth",
                      "--image", image, "--out", tmp_path / "out")
    assert result.returncode == 2 and "checkpoint not found" in result.stderr and "Traceback" not in result.stderr
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--image", image, "--out", tmp_path / "out", "TEST.FLIP", "True")
    assert result.returncode == 2 and "unknown config key TEST.FLIP" in result.stderr
