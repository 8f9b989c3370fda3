from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
import torch

import higherhrnet

from conftest import REPO, randomize, tiny_cfg

pytestmark = pytest.mark.slow   # starts processes: left out of the quick subset (docs/testing.md)

J = 17
OPTS = ("DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "[32, 64]")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny random model (finds low-scoring 'people' everywhere) and one whose heatmaps are all negative."""
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
    """demo/inference.py, the thin wrapper around `higherhrnet predict`."""
    return subprocess.run([sys.executable, str(REPO / "demo/inference.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def run_predict(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "higherhrnet", "predict", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, **kwargs)


def write(path, image):
    assert cv2.imwrite(str(path), image)
    return path


def check_person(person, width, height):
    """The compact JSON of one person: score, box around the visible joints, J [x, y, score] triples."""
    assert set(person) >= {"score", "box", "keypoints"}
    assert isinstance(person["score"], float) and len(person["box"]) == 4
    assert len(person["keypoints"]) == J and all(len(k) == 3 for k in person["keypoints"])
    xy = np.array(person["keypoints"], dtype=float)
    assert np.isfinite(xy).all()
    assert all(round(v, 1) == v for k in person["keypoints"] for v in k[:2])          # rounded
    visible = xy[xy[:, 2] >= 0.2] if (xy[:, 2] >= 0.2).any() else xy
    x, y, w, h = person["box"]
    assert x == pytest.approx(visible[:, 0].min(), abs=0.051) and w == pytest.approx(np.ptp(visible[:, 0]), abs=0.11)


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
    (photos / "readme.txt").write_text("not an image extension: skipped, and said so")
    (photos / ".hidden.jpg").write_bytes(good)
    (photos / "sub").mkdir()
    write(photos / "sub" / "inner.jpg", rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    out = tmp_path / "out"

    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--folder", photos, "--out", out, "--all", "--coco-json", tmp_path / "results.json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "3 of 7 inputs failed" in result.stderr
    assert "skipped 1 hidden, 1 subfolders (see --recursive), 1 files of other types" in result.stderr
    for bad, reason in (("cut.jpg", "truncated JPEG"), ("notes.jpg", "not a readable image"),
                        ("panorama.png", "aspect ratio")):
        assert any(bad in line and reason in line for line in result.stderr.splitlines()), (bad, result.stderr)

    coco = json.loads((tmp_path / "results.json").read_text())
    for stem, (w, h) in {"street": (120, 90), "gray": (50, 70), "tiny": (3, 2), "deep": (60, 40)}.items():
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["image"], record["width"], record["height"]) == (f"{stem}{'.jpg' if stem == 'street' else '.png'}", w, h)
        assert len(record["keypoint_names"]) == J
        assert len(record["people"]) > 0
        scores = [p["score"] for p in record["people"]]
        assert scores == sorted(scores, reverse=True)
        for person in record["people"]:
            check_person(person, w, h)
        drawn = cv2.imread(str(out / f"{stem}_pose.jpg"))
        assert drawn.shape[:2] == (h, w)
        assert f"{stem}" in result.stdout
        mine = [r for r in coco if r["image_id"] == record["image_id"]]
        assert len(mine) == len(record["people"]) and all(len(r["keypoints"]) == 3 * J for r in mine)
    assert not (out / "cut.json").exists() and not (out / "inner.json").exists()

    recursive = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                            photos / "sub", photos, "--recursive", "--out", tmp_path / "rec", "--all")
    assert recursive.returncode == 1 and "3 of 9 inputs failed" in recursive.stderr
    assert (tmp_path / "rec" / "inner.json").exists() and (tmp_path / "rec" / "inner_2.json").exists()


def test_default_filtering_keeps_fewer_people_than_all(tmp_path, model_files):
    image = write(tmp_path / "street.jpg", np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    counts = {}
    for mode, extra in (("all", ["--all"]), ("default", []), ("no-nms", ["--nms", "0", "--min-score", "0"])):
        result = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth", image,
                             "--out", tmp_path / mode, *extra)
        assert result.returncode == 0, result.stderr
        counts[mode] = len(json.loads((tmp_path / mode / "street.json").read_text())["people"])
    assert counts["all"] == counts["no-nms"] > counts["default"]


def test_options_and_overrides_in_any_order(tmp_path, model_files):
    image = write(tmp_path / "a.jpg", np.full((60, 80, 3), 90, np.uint8))
    result = run_predict("TEST.FLIP_TEST", "False", "--weights", model_files / "nobody.pth", image,
                         "--threshold", "0.5", "--cfg", model_files / "tiny.yaml", "TEST.ADJUST", "False",
                         "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out/a.json").read_text())["people"] == []


def test_nobody_and_multi_scale_override(tmp_path, model_files):
    image = write(tmp_path / "empty_room.jpg", np.full((100, 80, 3), 128, np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "nobody.pth",
                      "--image", image, "--out", tmp_path / "out", "TEST.SCALE_FACTOR", "[0.5,1.0,2.0]")
    assert result.returncode == 0, result.stderr
    assert "0 people" in result.stdout
    assert json.loads((tmp_path / "out/empty_room.json").read_text())["people"] == []
    assert (tmp_path / "out/empty_room_pose.jpg").exists()


def test_large_images_are_read_reduced_or_refused(tmp_path, model_files):
    big = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    jpeg, png = write(tmp_path / "big.jpg", big), write(tmp_path / "big.png", big)
    result = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth", jpeg, png,
                         "--out", tmp_path / "out", "--max-pixels", "2700", "--all")
    assert result.returncode == 1, result.stderr
    record = json.loads((tmp_path / "out/big.json").read_text())
    assert record["inference_downscale"] == 0.5 and (record["width"], record["height"]) == (120, 90)
    assert "read at x0.50 of its size" in result.stdout
    assert "big.png: 120x90 image (10,800 pixels) is over the limit of 2,700 pixels" in result.stderr


def write_video(path, frames=6, size=(96, 64), fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i % 255, np.uint8))
    writer.release()
    return path


def test_video_with_stride_max_frames_and_tracks(tmp_path, model_files):
    video = write_video(tmp_path / "clip.mp4", frames=7)
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth",
                      "--video", video, "--out", tmp_path / "out", "--frame-stride", "2", "--max-frames", "3", "--all")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/clip.json").read_text())
    assert [f["frame"] for f in record["frames"]] == [0, 2, 4]
    assert [f["time"] for f in record["frames"]] == [0.0, 0.2, 0.4]
    assert (record["width"], record["height"], record["frame_stride"]) == (96, 64, 2)
    for frame in record["frames"]:
        for person in frame["people"]:
            assert isinstance(person["track_id"], int)
            check_person(person, 96, 64)
    assert "frames/s" in result.stdout
    written = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("clip_pose.")]
    assert len(written) == 1 and not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    capture = cv2.VideoCapture(str(written[0]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_unwritable_output_fails_before_loading_the_model(tmp_path, model_files):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    image = write(tmp_path / "a.jpg", np.zeros((10, 10, 3), np.uint8))
    result = run_demo("--cfg", model_files / "tiny.yaml", "--weights", tmp_path / "does-not-exist.pth",
                      "--image", image, "--out", blocker / "sub")
    assert result.returncode == 2
    assert "cannot write to output folder" in result.stderr and "does-not-exist" not in result.stderr


def test_bad_weights_config_sources_and_display_are_one_line_errors(tmp_path, model_files):
    image = write(tmp_path / "a.jpg", np.zeros((10, 10, 3), np.uint8))
    common = ["--cfg", model_files / "tiny.yaml", "--out", tmp_path / "out"]
    cases = [
        (["--weights", tmp_path / "missing.pth", image], "checkpoint not found"),
        (["--weights", model_files / "random.pth", image, "TEST.FLIP", "True"], "unknown config key TEST.FLIP"),
        (["--weights", model_files / "random.pth", tmp_path / "nothing_here.jpg"], "no such file"),
        (["--weights", model_files / "random.pth", str(tmp_path / "*.tif")], "no image or video file matches"),
        (["--weights", model_files / "random.pth", image, "--frame-stride", "0"], "--frame-stride"),
        (["--weights", "higherhrnet_w23_512", image], "Did you mean higherhrnet_w32_512"),
        ([], "nothing to run on"),
    ]
    for args, message in cases:
        result = run_predict(*common, *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, \
            (args, result.stderr)
    result = run_predict(*common, "--weights", model_files / "random.pth", image, "--show",
                         env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    assert result.returncode == 2 and "--show needs a display" in result.stderr
    result = run_predict(*common, "--weights", model_files / "random.pth", "7")
    assert result.returncode == 1 and "cannot open webcam 7" in result.stderr


def test_globs_and_urls(tmp_path, model_files):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        write(shots / name, np.full((40, 50, 3), 100, np.uint8))
    data = (shots / "c.jpg").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/photos/street.jpg"
        result = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "nobody.pth",
                             str(shots / "*.png"), url, "--out", tmp_path / "out")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["a.json", "b.json", "street.json"]
    assert json.loads((tmp_path / "out/street.json").read_text())["width"] == 50


def test_a_model_file_of_ours_brings_its_config(tmp_path, model_files):
    """Without --cfg, a model file this toolkit wrote supplies the config it was trained with (its meta); files
    without one (official, mmpose, bare state dicts) and unknown names are refused in one line."""
    image = write(tmp_path / "a.jpg", np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    with_cfg = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth", image,
                           "--out", tmp_path / "with", "--all")
    without = run_predict("--weights", model_files / "random.pth", image, "--out", tmp_path / "without", "--all")
    assert with_cfg.returncode == 0 and without.returncode == 0, without.stderr
    people = json.loads((tmp_path / "without/a.json").read_text())["people"]
    assert people and people == json.loads((tmp_path / "with/a.json").read_text())["people"]
    # Overrides apply on top of the saved config; one contradicting its input size is named with its source.
    bad = run_predict("--weights", model_files / "random.pth", image, "DATASET.OUTPUT_SIZE", "[16, 32]")
    assert bad.returncode == 2 and "the config saved in" in bad.stderr and "Traceback" not in bad.stderr
    torch.save(higherhrnet.build_model(tiny_cfg(*OPTS)).state_dict(), tmp_path / "bare.pth")
    for weights, message in ((tmp_path / "bare.pth", "--cfg is required: "),
                             ("higherhrnet_w23_512", "Did you mean higherhrnet_w32_512")):
        result = run_predict("--weights", weights, image, "--out", tmp_path / "out")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, \
            result.stderr


def test_coco_ids_are_stable_and_explained_and_json_names_the_model(tmp_path, model_files):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for name in ("000000000785.jpg", "shot #1.jpg", "beach.png"):
        write(photos / name, rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    runs = []
    for order in ([photos / "beach.png", photos / "000000000785.jpg", photos / "shot #1.jpg"],
                  [photos / "shot #1.jpg", photos / "beach.png", photos / "000000000785.jpg"]):
        out = tmp_path / f"out{len(runs)}"
        result = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth", *order,
                             "--out", out, "--coco-json", out / "coco.json", "--threshold", "0.3")
        assert result.returncode == 0, result.stderr
        images = json.loads((out / "coco_images.json").read_text())
        runs.append({i["file_name"]: i["id"] for i in images["images"]})
        assert images["model"]["name"] == "random.pth" and images["threshold"] == 0.3
        coco = json.loads((out / "coco.json").read_text())
        assert {r["image_id"] for r in coco} <= set(runs[-1].values())
        record = json.loads((out / "shot #1.json").read_text())      # a '#' is part of a local file's name
        assert record["image"] == "shot #1.jpg" and record["image_id"] == runs[-1]["shot #1.jpg"]
        assert record["model"]["min_score"] == 0.2 and record["model"]["oks_nms_threshold"] == 0.5
    assert runs[0] == runs[1] and runs[0]["000000000785.jpg"] == 785      # the same ids whatever the order
    assert len(set(runs[0].values())) == 3


def test_output_folders_are_never_overwritten_silently(tmp_path, model_files):
    image = write(tmp_path / "a.jpg", np.full((60, 80, 3), 90, np.uint8))
    common = ["--cfg", model_files / "tiny.yaml", "--weights", model_files / "nobody.pth", image]
    for expected in ("demo_output", "demo_output2", "demo_output3"):
        result = subprocess.run([sys.executable, "-m", "higherhrnet", "predict", *map(str, common)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith(f"-> {expected}") and (tmp_path / expected / "a.json").exists()
    refused = run_predict(*common, "--out", tmp_path / "demo_output")
    assert refused.returncode == 2 and "already holds files" in refused.stderr and "--exist-ok" in refused.stderr
    assert run_predict(*common, "--out", tmp_path / "demo_output", "--exist-ok").returncode == 0


def test_no_track_gives_frames_without_track_ids(tmp_path, model_files):
    video = write_video(tmp_path / "clip.mp4", frames=3)
    result = run_predict("--cfg", model_files / "tiny.yaml", "--weights", model_files / "random.pth", video,
                         "--out", tmp_path / "out", "--all", "--no-track")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/clip.json").read_text())
    people = [p for f in record["frames"] for p in f["people"]]
    assert people and all("track_id" not in p for p in people) and "tracks" not in result.stdout
