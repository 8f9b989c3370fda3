"""The hybrid path: a bottom-up model's people refined by a top-down model (Predictor(refine=...),
`higherhrnet predict --refine`), and a top-down model refused where it cannot be used alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet import ConfigError, Predictor
from higherhrnet.data.synthetic import SyntheticSpec, render_scene
from higherhrnet.predictor import SyntheticModelWarning, TopDownRefiner
from higherhrnet.results import Person
from higherhrnet.topdown import MIN_POSE_BOX, boxes_from_poses, estimate_poses, rescore

from conftest import randomize, tiny_pose_hrnet_cfg

BOTTOM_UP = "synthetic_w16_256"


@pytest.fixture(scope="module")
def topdown_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "tiny_topdown.pth"
    cfg = tiny_pose_hrnet_cfg()
    torch.manual_seed(0)
    higherhrnet.save_model(path, randomize(higherhrnet.build_model(cfg)), cfg)
    return path


def test_boxes_from_poses_by_hand():
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[0, :2] = [[10, 20, 0.5], [60, 120, 0.4]]     # two found joints; the others value 0 at (0, 0)
    keypoints[1, 0] = [30, 40, 0.9]                        # one joint: the minimum size around it
    boxes = boxes_from_poses(keypoints)
    # joints' box 10..60 x 20..120, 10% of 50 and 100 added on each side
    np.testing.assert_allclose(boxes[0], [5, 10, 60, 120])
    np.testing.assert_allclose(boxes[1], [30 - MIN_POSE_BOX / 2, 40 - MIN_POSE_BOX / 2, MIN_POSE_BOX, MIN_POSE_BOX])


def test_refiner_re_estimates_and_rescores(topdown_file):
    refiner = TopDownRefiner.load(str(topdown_file), "cpu")
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 0] = np.linspace(40, 80, 17)
    keypoints[:, 1] = np.linspace(20, 100, 17)
    keypoints[:, 2] = 0.6
    people = [Person(keypoints=keypoints, score=0.5, tags=np.zeros((17, 1), np.float32))]
    refined = refiner.refine(image, people)
    expected = estimate_poses(refiner.network, image, boxes_from_poses(keypoints[None]), refiner.params).keypoints
    np.testing.assert_array_equal(refined[0].keypoints, expected[0])
    assert refined[0].score == pytest.approx(rescore(expected, [0.5], refiner.params.in_vis_thre)[0])
    assert refiner.refine(image, []) == []


def test_predictor_refine_gives_refined_people(topdown_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        plain = Predictor(BOTTOM_UP, device="cpu")
        hybrid = Predictor(BOTTOM_UP, device="cpu", refine=str(topdown_file))
    image, _ = render_scene(np.random.default_rng(3), SyntheticSpec(crowd_prob=0.0, unlabelled_prob=0.0))
    found = plain(image)
    assert len(found) > 0
    refined = hybrid(image)
    expected = sorted(hybrid.refiner.refine(image, list(found), clip_to_image=True), key=lambda p: -p.score)
    assert len(refined) == len(expected) > 0
    for got, want in zip(refined, expected):
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
        assert got.score == want.score
    assert hybrid.describe()["refine"] == "tiny_topdown.pth" and plain.describe()["refine"] is None
    # box score x a mean of joint values below 1: never above the bottom-up score
    assert max(p.score for p in refined) <= max(p.score for p in found)


def test_predictor_from_model_refines_as_the_named_predictor(topdown_file):
    from higherhrnet.hub import resolve_model

    resolved = resolve_model(BOTTOM_UP)
    network = higherhrnet.build_model(resolved.cfg)
    higherhrnet.load_checkpoint(network, resolved.weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        named = Predictor(BOTTOM_UP, device="cpu", refine=str(topdown_file))
    from_model = Predictor.from_model(resolved.cfg, network, device="cpu", refine=str(topdown_file))
    assert from_model.refiner is not None and from_model.describe()["refine"] == "tiny_topdown.pth"
    image, _ = render_scene(np.random.default_rng(3), SyntheticSpec(crowd_prob=0.0, unlabelled_prob=0.0))
    got, want = from_model(image), named(image)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=1e-5, atol=1e-3)


def test_predictor_refuses_a_top_down_model_before_downloading(monkeypatch, topdown_file):
    def no_download(*args, **kwargs):
        raise AssertionError("downloaded")

    monkeypatch.setattr(higherhrnet.hub, "resolve_weights", no_download)
    with pytest.raises(ConfigError, match="top-down model.*refine"):
        Predictor("pose_hrnet_w32_256x192")
    with pytest.raises(ConfigError, match="bottom-up model; refinement needs a top-down"):
        TopDownRefiner.load("higherhrnet_w32_512")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="top-down model"):
        Predictor(str(topdown_file), device="cpu")


def test_predict_cli_refine(topdown_file, tmp_path):
    image = tmp_path / "people.png"
    import cv2
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    run = [sys.executable, "-m", "higherhrnet", "predict", "--weights", BOTTOM_UP, "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(run + ["--refine", str(topdown_file), "--out", str(tmp_path / "out"), str(image)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/people.json").read_text())
    assert record["model"]["refine"] == "tiny_topdown.pth"
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "predict", "--weights", str(topdown_file),
                             "--device", "cpu", "--out", str(tmp_path / "alone"), str(image)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and "is a top-down model" in result.stderr


@pytest.mark.slow
def test_eval_cli_refine_scores_the_refined_people(topdown_file, tmp_path):
    from tinycoco import write_tiny_coco

    write_tiny_coco(tmp_path / "data", split="val", num_images=2)
    run = [sys.executable, "-m", "higherhrnet", "eval", "--weights", BOTTOM_UP, "--device", "cpu", "--workers", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    outputs = {}
    for name, extra in (("alone", []), ("refined", ["--refine", str(topdown_file)])):
        result = subprocess.run(run + ["--out", str(tmp_path / name), *extra, "DATASET.ROOT", str(tmp_path / "data"),
                                       "DATASET.TEST", "val"], capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert "s per image)" in result.stdout and "| AP |" in result.stdout
        outputs[name] = json.loads((tmp_path / name / "keypoints_val_results.json").read_text())
    alone, refined = outputs["alone"], outputs["refined"]
    # every grouped person is kept (raw, as eval does) and re-estimated: the same people, other joints
    assert len(refined) == len(alone) > 0
    assert [r["image_id"] for r in refined] == [r["image_id"] for r in alone]
    assert all(r["keypoints"] != a["keypoints"] for r, a in zip(refined, alone))
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "eval", "--weights", str(topdown_file), "--device",
                             "cpu", "--refine", str(topdown_file), "--out", str(tmp_path / "twice"),
                             "DATASET.ROOT", str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and "already a top-down model" in result.stderr


def test_a_refined_video_streams_its_frames_within_the_predictors_threads(topdown_file, tmp_path, monkeypatch):
    """With a refiner, the top-down network runs in the same thread as the bottom-up one, inside the
    Predictor's thread setting (threads=1 here: CallThreads is held by one thread at a time), and the frames
    are those of predict_batch one at a time."""
    import threading

    from higherhrnet.video import VideoWriter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        hybrid = Predictor(BOTTOM_UP, device="cpu", refine=str(topdown_file), threads=1)
    image, _ = render_scene(np.random.default_rng(3), SyntheticSpec(crowd_prob=0.0, unlabelled_prob=0.0))
    with VideoWriter(str(tmp_path / "clip"), 10.0, (image.shape[1], image.shape[0])) as writer:
        for i in range(3):
            writer.write(np.roll(image, 5 * i, axis=1))
    where = {"network": set(), "refine": set()}
    maps, refine = Predictor._maps, TopDownRefiner.refine

    def recording(name, function):
        def wrapper(self, *args, **kwargs):
            where[name].add((threading.current_thread().name, torch.get_num_threads()))
            return function(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(Predictor, "_maps", recording("network", maps))
    monkeypatch.setattr(TopDownRefiner, "refine", recording("refine", refine))
    streamed = list(hybrid.stream(writer.path, track=False))
    (thread_name, _), = where["network"]
    assert thread_name != threading.main_thread().name and where["refine"] == {(thread_name, 1)}
    for result in streamed:
        # Not bit for bit: the tiny top-down network's joint values vary in the last bits from run to run
        # (test_predictor_refine_gives_refined_people meets it too).
        (one,) = hybrid.predict_batch([result.image])
        assert len(result) == len(one) > 0
        for got, want in zip(result, one):
            np.testing.assert_allclose(got.keypoints, want.keypoints, rtol=0, atol=1e-5)
